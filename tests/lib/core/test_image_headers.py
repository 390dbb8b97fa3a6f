"""Tests of colorgan.core.image_headers on a hostile corpus: formats by magic bytes only, animated and malformed WebP
refused, GIF frames and JPEG scans counted from the block structure, as independent encoders (Pillow) write them."""

import struct

import image_corpus
import pytest

from colorgan.core import image_headers


def _riff(*chunks):
    body = b"WEBP" + b"".join(fourcc + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) % 2)
                              for fourcc, payload in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_accepted_formats_are_told_by_their_magic_bytes():
    for image_format, options in (("JPEG", {}), ("JPEG", {"progressive": True}), ("PNG", {}), ("GIF", {}),
                                  ("BMP", {}), ("WEBP", {}), ("WEBP", {"lossless": True}),
                                  ("WEBP", {"exif": b"Exif\0\0II*\0"})):  # simple, lossless, extended (VP8X)
        data = image_corpus.encoded(image_format, size=(37, 21), **options)
        assert image_headers.inspect(data) == image_headers.Header(image_format, 37, 21, 1), (image_format, options)
    assert image_headers.inspect(image_corpus.encoded("MPO", frames=2)).format == "JPEG"  # phones' multi-picture JPEGs
    tiff = image_corpus.encoded("TIFF")
    for data, reason in ((tiff, r"^unsupported image format TIFF \(send JPEG, PNG, GIF, BMP, WEBP\)$"),
                         (b"\xff\x0a" + b"\0" * 64, "unsupported image format JPEG XL"),
                         (b"", "^not an image$"), (b"just text", "^not an image$"),
                         (b"RIFF\x10\0\0\0WAVEfmt ", "^not an image$")):
        with pytest.raises(image_headers.RefusedImage, match=reason):
            image_headers.inspect(data)
    with pytest.raises(image_headers.RefusedImage, match="unsupported image format GIF"):
        image_headers.inspect(image_corpus.encoded("GIF"), formats=("JPEG", "PNG"))


def test_animated_and_malformed_webp_are_refused():
    animated = image_corpus.encoded("WEBP", frames=3, duration=100, loop=0)
    assert b"ANMF" in animated
    vp8x_flag_only = _riff((b"VP8X", b"\x02" + b"\0" * 9))
    for data, reason in ((animated, "animated WebP"), (vp8x_flag_only, "animated WebP"),
                         (_riff((b"VP8 ", b"\0" * 10), (b"ANIM", b"\0" * 6)), "animated WebP"),
                         (animated[:-10], "malformed WebP: the RIFF header says"),
                         (animated + b"tail", "malformed WebP: the RIFF header says"),
                         (_riff((b"VP8 ", b"\0" * 10))[:-4], "malformed WebP"),
                         (b"RIFF\x04\0\0\0WEBP", "malformed WebP: it starts with chunk b''"),
                         (_riff((b"EXIF", b"\0" * 4)), "malformed WebP: it starts with chunk b'EXIF'")):
        with pytest.raises(image_headers.RefusedImage, match=reason):
            image_headers.inspect(data)
    lying_size = bytearray(_riff((b"VP8 ", b"\0" * 10), (b"EXIF", b"\0" * 4)))
    lying_size[16:20] = struct.pack("<I", 1000)  # the first chunk claims more than the file holds
    with pytest.raises(image_headers.RefusedImage, match="malformed WebP: chunk b'VP8 ' runs past the end"):
        image_headers.inspect(bytes(lying_size))


def test_gif_frames_are_counted_from_the_blocks():
    assert image_headers.inspect(image_corpus.encoded("GIF", frames=100)).pixels == 100 * 16 * 12
    assert image_headers.inspect(image_corpus.encoded("GIF", frames=3, comment=b"x" * 600)).frames == 3
    assert image_headers.gif_frames(image_corpus.encoded("GIF", frames=5)[:-40]) <= 5  # a truncated tail ends the count


def test_jpeg_scans_are_counted_and_a_scan_bomb_is_refused():
    baseline = image_corpus.encoded("JPEG", size=(64, 48))
    progressive = image_corpus.encoded("JPEG", size=(64, 48), progressive=True)
    assert image_headers.jpeg_scans(baseline) == 1
    assert 2 < image_headers.jpeg_scans(progressive) <= 12
    # An EXIF thumbnail's own scans are inside an APP1 segment, not counted.
    with_thumbnail = image_corpus.encoded("JPEG", size=(64, 48), exif=b"Exif\0\0" + baseline)
    assert image_headers.jpeg_scans(with_thumbnail) == 1
    # The scans repeated: each one more pass over the image for the decoder, in a file of a few kB.
    header, _, rest = progressive.rpartition(b"\xff\xd9")[0].partition(b"\xff\xda")
    bomb = header + (b"\xff\xda" + rest) * (image_headers.MAX_JPEG_SCANS // 2) + b"\xff\xd9"
    assert image_headers.jpeg_scans(bomb) > image_headers.MAX_JPEG_SCANS
    with pytest.raises(image_headers.RefusedImage, match="a JPEG of more than 100 scans"):
        image_headers.inspect(bomb)


def test_a_header_without_a_size_is_refused():
    png = image_corpus.encoded("PNG")
    for data in (png[:20], png[:12] + b"IDAT" + png[16:], b"\xff\xd8\xff\xd9", b"GIF89a"):
        with pytest.raises(image_headers.RefusedImage, match="corrupt image: no (PNG|JPEG|GIF) size in its header"):
            image_headers.inspect(data)
