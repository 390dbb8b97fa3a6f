"""Tests of colorgan.inference.safe_decode: the export's graph-op checks decide as core.image_headers does, on the same
hostile corpus (formats, animated and malformed WebP, GIF frames, JPEG scan bombs, headers without a size), and the
pixel limit counts every frame of a GIF."""

import struct

import image_corpus
import pytest
import tensorflow as tf

from colorgan.core import image_headers
from colorgan.inference import safe_decode

_inspect = tf.function(safe_decode.inspect, input_signature=[tf.TensorSpec([], tf.string)], autograph=False)


def _graph(data):
    reason, width, height, frames = (value.numpy() for value in _inspect(tf.constant(data)))
    return reason.decode(), int(width), int(height), int(frames)


def _python(data):
    try:
        header = image_headers.inspect(data)
    except image_headers.RefusedImage as e:
        return str(e)
    return header.width, header.height, header.frames


def _riff(*chunks):
    body = b"WEBP" + b"".join(fourcc + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) % 2)
                              for fourcc, payload in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _scan_bomb():
    progressive = image_corpus.encoded("JPEG", size=(64, 48), progressive=True)
    header, _, rest = progressive.rpartition(b"\xff\xd9")[0].partition(b"\xff\xda")
    return header + (b"\xff\xda" + rest) * (image_headers.MAX_JPEG_SCANS // 2) + b"\xff\xd9"


def _corpus():
    png = image_corpus.encoded("PNG")
    animated_webp = image_corpus.encoded("WEBP", frames=3, duration=100, loop=0)
    baseline = image_corpus.encoded("JPEG", size=(64, 48))
    yield from (
        (f"{image_format} {options}", image_corpus.encoded(image_format, size=(37, 21), **options))
        for image_format, options in (("JPEG", {}), ("JPEG", {"progressive": True}), ("PNG", {}), ("GIF", {}),
                                      ("BMP", {}), ("WEBP", {}), ("WEBP", {"lossless": True}),
                                      ("WEBP", {"exif": b"Exif\0\0II*\0"}), ("MPO", {}),
                                      ("JPEG", {"exif": b"Exif\0\0" + baseline}), ("GIF", {"comment": b"x" * 600})))
    yield "GIF of 100 frames", image_corpus.encoded("GIF", frames=100)
    yield "GIF with a truncated tail", image_corpus.encoded("GIF", frames=5)[:-40]
    yield "MPO of 2 pictures", image_corpus.encoded("MPO", frames=2)
    yield "JPEG scan bomb", _scan_bomb()
    yield "TIFF", image_corpus.encoded("TIFF")
    for name, data in (("JPEG XL", b"\xff\x0a" + b"\0" * 64), ("empty", b""), ("text", b"just text"),
                       ("WAVE", b"RIFF\x10\0\0\0WAVEfmt "), ("animated WebP", animated_webp),
                       ("VP8X animation flag", _riff((b"VP8X", b"\x02" + b"\0" * 9))),
                       ("ANIM chunk", _riff((b"VP8 ", b"\0" * 10), (b"ANIM", b"\0" * 6))),
                       ("WebP cut short", animated_webp[:-10]), ("WebP with a tail", animated_webp + b"tail"),
                       ("RIFF only", b"RIFF\x04\0\0\0WEBP"), ("EXIF first", _riff((b"EXIF", b"\0" * 4))),
                       ("PNG cut in its header", png[:20]), ("PNG without IHDR", png[:12] + b"IDAT" + png[16:]),
                       ("JPEG without a frame", b"\xff\xd8\xff\xd9"), ("GIF signature only", b"GIF89a"),
                       ("GIF without an image", image_corpus.encoded("GIF")[:13] + b"\x3b")):
        yield name, data


@pytest.mark.parametrize("name,data", list(_corpus()), ids=lambda value: value if isinstance(value, str) else "")
def test_the_graph_decides_as_image_headers_does(name, data):
    reason, width, height, frames = _graph(data)
    expected = _python(data)
    if isinstance(expected, str):
        assert reason, f"{name}: the graph accepts what image_headers refuses ({expected})"
        for words in ("animated WebP", "not an image", "scans", "corrupt image", "GIF without an image"):
            assert (words in reason) == (words in expected) or words == "not an image" and "unsupported" in expected, (
                name, reason, expected)
    else:
        assert (reason, (width, height, frames)) == ("", expected), name


def test_the_pixel_limit_counts_every_frame_of_a_gif():
    gif = image_corpus.encoded("GIF", frames=100)  # 16 x 12 x 100 = 19,200 pixels
    refusal = tf.function(safe_decode.refusal, autograph=False)
    assert refusal(tf.constant(gif), 19_200).numpy() == b""
    assert refusal(tf.constant(gif), 19_199).numpy() == b"too many pixels: 16x12 x 100 frames > max_pixels=19199"
    bomb = image_corpus.encoded("PNG")[:16] + struct.pack(">II", 7000, 7000)  # a header that declares 49 MP
    assert refusal(tf.constant(bomb), 1_000_000).numpy().startswith(b"too many pixels: 7000x7000 x 1 frames")


def test_gif_frames_are_counted_through_a_million_one_byte_sub_blocks():
    """A step per sub-block would make this 2 MB GIF a 20-second request; the chains are followed all at once, and
    the count is image_headers' (which walks them one by one in Python)."""
    gif = image_corpus.encoded("GIF")
    descriptor = b"\x2c" + struct.pack("<HHHH", 0, 0, 16, 12) + b"\0\x08"
    crafted = (gif[:13 + 3 * 2 ** ((gif[10] & 7) + 1)] + b"\x21\xfe\x00" * 1000
               + (descriptor + b"\x01\x00" * 500_000 + b"\0") * 2 + b"\x3b")
    assert _graph(crafted) == ("", 16, 12, 2) and image_headers.gif_frames(crafted) == 2
