"""What an encoded image is, told from its bytes before any decoder runs.

Decoders are attack surface. TensorFlow 2.21's `decode_image` corrupts the heap on an animated WebP (the process
aborts: one small upload would kill the service), sniffs formats we never meant to take (JPEG XL among them), and
decodes every frame of a GIF even when asked for the first. So the tools that decode untrusted photos with
TensorFlow first accept a format by its magic bytes, walk a WebP's RIFF chunks and refuse animation or inconsistent
sizes, count a GIF's frames and a JPEG's scans from their block structure, and only then decode. Pure Python, no
decoder: the walks read lengths and markers, never pixels. Inside the export, `inference.safe_decode` makes the
same checks as graph ops.
"""

import dataclasses
import re
import struct

# Formats by their first bytes (PIL's names), as TensorFlow's decoders read them.
MAGIC = {
    "JPEG": (b"\xff\xd8\xff",),
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "GIF": (b"GIF87a", b"GIF89a"),
    "BMP": (b"BM",),
    "WEBP": (b"RIFF",),  # and "WEBP" at byte 8
}
# Formats named in a refusal, never decoded here: TensorFlow's decode_image takes JPEG XL too.
_REFUSED_MAGIC = {"TIFF": (b"II*\0", b"MM\0*"), "JPEG XL": (b"\xff\x0a", b"\0\0\0\x0cJXL "), "PSD": (b"8BPS",),
                  "ICO": (b"\0\0\1\0",), "HEIF/AVIF": (b"\0\0\0\x18ftyp", b"\0\0\0\x1cftyp", b"\0\0\0\x20ftyp")}
# A progressive JPEG has about 10 scans; each more is a full pass over the coefficients (a CPU bomb in a small file).
MAX_JPEG_SCANS = 100
# WebP: the VP8X flag of an animation; the chunks that only animations have.
_VP8X_ANIMATION_FLAG = 0x02
_ANIMATION_CHUNKS = (b"ANIM", b"ANMF")
_FIRST_CHUNKS = (b"VP8 ", b"VP8L", b"VP8X")  # a WebP's image (simple, lossless) or its extended header
# JPEG: a marker that ends entropy-coded data (0xFF not followed by a stuffed 0x00, a restart marker or a fill byte).
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


class RefusedImage(ValueError):
    """Bytes that are not to be decoded; the message is a short reason ("animated WebP", "not an image", ...)."""


@dataclasses.dataclass(frozen=True)
class Header:
    format: str  # one of MAGIC
    width: int
    height: int
    frames: int  # what a decoder of the whole file would decode (GIF: every frame; others 1)

    @property
    def pixels(self):
        """Pixels a decoder makes: every frame of a GIF, at the size of its canvas."""
        return self.width * self.height * self.frames


def sniff_format(data):
    """The MAGIC format `data` starts with, or None."""
    for name, prefixes in MAGIC.items():
        if data.startswith(prefixes) and (name != "WEBP" or data[8:12] == b"WEBP"):
            return name
    return None


def inspect(data, formats=tuple(MAGIC)):
    """The Header of encoded image bytes whose format is one of `formats`; RefusedImage for anything else, for an
    animated or malformed WebP, for a JPEG of more than MAX_JPEG_SCANS scans, and for a header without a size."""
    image_format = sniff_format(data)
    if image_format not in formats:
        named = image_format or next((name for name, prefixes in _REFUSED_MAGIC.items() if data.startswith(prefixes)),
                                     None)
        raise RefusedImage(f"unsupported image format {named} (send {', '.join(formats)})" if named else
                           "not an image")
    if image_format == "WEBP":
        problem = webp_problem(data)
        if problem:
            raise RefusedImage(problem)
    if image_format == "JPEG" and jpeg_scans(data) > MAX_JPEG_SCANS:
        raise RefusedImage(f"a JPEG of more than {MAX_JPEG_SCANS} scans")
    try:
        width, height = _SIZE_READERS[image_format](data)
    except (struct.error, IndexError, ValueError):
        width = height = 0
    if width <= 0 or height <= 0:
        raise RefusedImage(f"corrupt image: no {image_format} size in its header")
    frames = gif_frames(data) if image_format == "GIF" else 1
    if not frames:
        raise RefusedImage("corrupt image: a GIF without an image")
    return Header(image_format, width, height, frames)


def _png_size(data):
    if data[12:16] != b"IHDR":
        raise ValueError("no IHDR")
    return struct.unpack_from(">II", data, 16)


def _gif_size(data):
    return struct.unpack_from("<HH", data, 6)


def _bmp_size(data):
    width, height = struct.unpack_from("<ii", data, 18)
    return width, abs(height)  # a negative height stores rows top-down


def _webp_size(data):
    fourcc, payload = data[12:16], 20
    if fourcc == b"VP8X":  # canvas width - 1 and height - 1, 24 bits each
        return (int.from_bytes(data[payload + 4:payload + 7], "little") + 1,
                int.from_bytes(data[payload + 7:payload + 10], "little") + 1)
    if fourcc == b"VP8L":  # signature 0x2f, then width - 1 and height - 1 in 14 bits each
        if data[payload] != 0x2F:
            raise ValueError("no VP8L signature")
        bits = int.from_bytes(data[payload + 1:payload + 5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if data[payload + 3:payload + 6] != b"\x9d\x01\x2a":  # VP8: a key frame's start code, then 14-bit sizes
        raise ValueError("no VP8 start code")
    width, height = struct.unpack_from("<HH", data, payload + 6)
    return width & 0x3FFF, height & 0x3FFF


def _jpeg_size(data):
    """The size in the first start-of-frame segment (SOF0..SOF15, not DHT, JPG or DAC), by walking the segments."""
    position = 2
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD7:
            position += 1 if marker == 0xFF else 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack_from(">HH", data, position + 5)
            return width, height
        if marker in (0xD9, 0xDA):  # no frame header before the image data
            break
        position += 2 + struct.unpack_from(">H", data, position + 2)[0]
    raise ValueError("no SOF")


_SIZE_READERS = {"JPEG": _jpeg_size, "PNG": _png_size, "GIF": _gif_size, "BMP": _bmp_size, "WEBP": _webp_size}


def webp_problem(data):
    """Why a WebP must not be decoded, or None: an animation (the VP8X animation flag, an ANIM or ANMF chunk), or
    chunk sizes that do not add up to the RIFF size and the file's."""
    if len(data) < 12:
        return "truncated WebP"
    end = 8 + struct.unpack_from("<I", data, 4)[0]
    if end != len(data):
        return f"malformed WebP: the RIFF header says {end} bytes, the file has {len(data)}"
    if data[12:16] not in _FIRST_CHUNKS:
        return f"malformed WebP: it starts with chunk {data[12:16]!r}, not VP8, VP8L or VP8X"
    position = 12
    while position < end:
        if position + 8 > end:
            return "malformed WebP: a truncated chunk header"
        fourcc, size = data[position:position + 4], struct.unpack_from("<I", data, position + 4)[0]
        following = position + 8 + size + (size & 1)
        if following > end:
            return f"malformed WebP: chunk {fourcc!r} runs past the end"
        if fourcc in _ANIMATION_CHUNKS or (fourcc == b"VP8X" and size and data[position + 8] & _VP8X_ANIMATION_FLAG):
            return "animated WebP"
        position = following
    return None


def gif_frames(data):
    """The images of a GIF, counted by walking its blocks (a truncated or malformed tail ends the count)."""
    if len(data) < 13:
        return 0
    position = 13 + _colour_table_size(data[10])
    frames = 0
    while position < len(data):
        block = data[position]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension: label, then sub-blocks
            position = _skip_sub_blocks(data, position + 2)
        elif block == 0x2C:  # image: descriptor, local colour table, LZW minimum code size, sub-blocks
            if position + 10 > len(data):
                break
            frames += 1
            position = _skip_sub_blocks(data, position + 10 + _colour_table_size(data[position + 9]) + 1)
        else:
            break
    return frames


def _colour_table_size(packed):
    return 3 * 2 ** ((packed & 0x07) + 1) if packed & 0x80 else 0


def _skip_sub_blocks(data, position):
    while position < len(data) and data[position]:
        position += 1 + data[position]
    return position + 1


def jpeg_scans(data):
    """The scans (SOS segments) of a JPEG's first image, counted by walking its marker segments; an MPO's later
    pictures, after the first EOI, are not decoded and not counted."""
    position, scans = 2, 0
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0xD9:  # end of image
            break
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
            continue
        segment_end = position + 2 + struct.unpack_from(">H", data, position + 2)[0]
        if marker != 0xDA:
            position = segment_end
            continue
        scans += 1
        following = _NEXT_MARKER.search(data, segment_end)
        if following is None:
            break
        position = following.start()
    return scans
