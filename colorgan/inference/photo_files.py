"""Reads users' photos for the colorize tool and writes its results.

Real photos are messier than training data: 16-bit archival scans, rotated camera JPEGs, CMYK and colour-managed
files, transparency, animations. `load_photo` turns any of them into the luminance the model sees (plus the colour
original, if any, for evaluation) and fails only with `PhotoError`, whose text is a one-line reason the tool can print
next to the file name. `save_photo` writes atomically, so an interrupted run never leaves a half-written photo under
its final name. Pixels are PIL + numpy (+ tifffile), files go through `storage` (any tf.io.gfile path); TensorFlow
also decodes 16-bit colour PNGs, which Pillow cuts to 8 bits. Decoding goes through `image_files`, so a photo here
is read exactly as data prep reads it.
"""

import dataclasses
import io
import os
import struct
import zlib

import numpy as np
import tifffile
from PIL import Image
from PIL import UnidentifiedImageError

from colorgan.core import image_files
from colorgan.core import storage

DEFAULT_MAX_PIXELS = 50_000_000
# Temporary files are named ".NAME.<pid>.partial" next to their final NAME, so a rerun can recognise stale ones.

_EXIF_HEADER = b"Exif\x00\x00"
_ORIENTATION = 0x0112
# Source modes without colour: their photos have rgb None.
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "F"}) | image_files.HIGH_BIT_GRAY_MODES
# ITU-R 601 luma, the weights of PIL's "L", for sources decoded at 16 bits.
_LUMA = np.array(image_files.LUMA_WEIGHTS, np.float32)
# EXIF orientation -> the numpy view that makes an [H, W, ...] array upright (as ImageOps.exif_transpose does).
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}
# TIFF IFD0 tags that describe the photo rather than its pixel layout: the only ones that may move between a TIFF's
# own IFD and an EXIF block (a JPEG's EXIF may carry ImageWidth and the like, which would corrupt a TIFF).
# ImageDescription, Make, Model, Software, DateTime, Artist, Copyright:
_IMAGE_DESCRIPTION = 0x010E
_TIFF_TEXT_TAGS = (_IMAGE_DESCRIPTION, 0x010F, 0x0110, 0x0131, 0x0132, 0x013B, 0x8298)
_X_RESOLUTION, _Y_RESOLUTION, _RESOLUTION_UNIT = 0x011A, 0x011B, 0x0128
_SUB_IFDS = (0x8769, 0x8825)  # Exif, GPS
_TIFF_EXIF_TAGS = frozenset(_TIFF_TEXT_TAGS + (_X_RESOLUTION, _Y_RESOLUTION, _RESOLUTION_UNIT) + _SUB_IFDS)
_BITS_PER_SAMPLE = 258
# PNG rows are filtered and compressed this many at a time, so a huge 16-bit photo needs no full-size copies.
_PNG_ROWS_PER_BAND = 256
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_WRITABLE_FORMATS = ("JPEG", "PNG", "TIFF", "WEBP", "BMP")
_EXTENSION_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG", ".png": "PNG",
                      ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP", ".bmp": "BMP"}
_FORMAT_OVERRIDES = {"jpeg": ("JPEG", ".jpg"), "png": ("PNG", ".png"), "tiff": ("TIFF", ".tif"),
                     "webp": ("WEBP", ".webp")}


class PhotoError(Exception):
    """A file that cannot be colorized; str(e) is a short one-line reason such as 'not an image' or 'corrupt: ...'."""


@dataclasses.dataclass
class Photo:
    gray: np.ndarray  # float32 [H, W] in [0, 1]: 8-bit sources PIL's "L" / 255 (the training luma), 16-bit v / 65535
    rgb: np.ndarray | None  # uint8 [H, W, 3] upright sRGB original when the source has colour, else None
    bit_depth: int  # 16 for 16-bit sources, else 8
    format: str  # PIL format name of the source
    exif: bytes | None  # the source's EXIF block with Orientation 1 (pixels are upright), or None
    size: tuple  # (width, height) upright


def load_photo(path, max_pixels=DEFAULT_MAX_PIXELS):
    """Decodes one photo upright; raises PhotoError, and nothing else, for a file that cannot be colorized."""
    try:
        info = storage.stat(path)
        if not (info.is_file or info.is_dir):  # a FIFO would block the open forever; a device never ends
            raise PhotoError("unreadable: not a regular file (a pipe, socket or device)")
        file = storage.open_for_reading(path)
    except OSError as e:
        raise PhotoError(f"unreadable: {e.strerror or _one_line(e)}") from None
    with file:
        if file.seek(0, os.SEEK_END) == 0:
            raise PhotoError("empty file")
        file.seek(0)
        try:
            image = image_files.open_image(file)
        except UnidentifiedImageError:
            raise PhotoError("not an image") from None
        except Exception as e:  # noqa: BLE001 - a bad header may raise anything from SyntaxError to struct.error.
            raise PhotoError(f"corrupt: {_one_line(e)}") from None
        with image:
            width, height = image.size
            if width * height > max_pixels:
                raise PhotoError(f"too many pixels: {width}x{height} > --max_pixels={max_pixels}")
            try:
                return _decode(image, file)
            except MemoryError:
                raise PhotoError("unreadable: out of memory") from None
            except Exception as e:  # noqa: BLE001 - decoders signal bad data with many exception types.
                raise PhotoError(f"corrupt: {_one_line(e)}") from None


def _one_line(error):
    return " ".join(str(error).split()) or type(error).__name__


def _decode(image, file):
    """An opened image -> Photo. 16-bit colour is decoded outside Pillow, which keeps only 8 of its bits."""
    sixteen_bit = image.mode in image_files.HIGH_BIT_GRAY_MODES or _has_16bit_samples(image, file)
    # An ICC profile needs Pillow's colour management, which works at 8 bits: correct colours beat extra bits.
    if sixteen_bit and image.mode not in image_files.HIGH_BIT_GRAY_MODES and not image.info.get("icc_profile"):
        samples = _read_16bit_colour(image.format, file)
        if samples is not None:
            upright = _UPRIGHT.get(_orientation(image), np.asarray)(samples)
            return _photo_from_16bit(upright, image.format, _source_exif(image))
    image.load()  # decode fully now: image_files.upright swallows exceptions, and truncated data must end in PhotoError
    exif = _source_exif(image)  # after load(), which reads a PNG's chunks after the pixels, eXIf among them
    upright = image_files.upright(image)
    if upright.mode in image_files.HIGH_BIT_GRAY_MODES:
        gray, rgb = np.clip(np.asarray(upright, np.float32), 0, 65535) / 65535, None
    else:
        srgb = image_files.to_srgb(upright)
        gray = np.asarray(srgb.convert("L"), np.float32) / 255
        rgb = None if upright.mode in _GRAY_MODES else np.asarray(srgb)
    return Photo(gray, rgb, 16 if sixteen_bit else 8, image.format, exif, upright.size)


def _has_16bit_samples(image, file):
    if image.format == "PNG":
        position = file.tell()
        file.seek(24)  # IHDR's bit depth, at a fixed offset in every PNG
        depth = file.read(1)
        file.seek(position)
        return depth == b"\x10"
    if image.format == "TIFF":
        return 16 in np.ravel(image.tag_v2.get(_BITS_PER_SAMPLE, 0))
    return False


def _read_16bit_colour(image_format, file):
    """uint16 [H, W, C] (C: 2 gray+alpha, 3 RGB, 4 RGBA) of a 16-bit PNG/TIFF, or None to let Pillow decode it."""
    position = file.tell()
    file.seek(0)
    try:
        if image_format == "PNG":
            import tensorflow as tf  # noqa: PLC0415 - no small decoder undoes 16-bit PNG filters in reasonable time

            return tf.io.decode_png(file.read(), dtype=tf.uint16).numpy()
        with tifffile.TiffFile(file) as tiff:
            page = tiff.pages.first
            layout = (page.photometric, page.samplesperpixel)
            if layout not in ((tifffile.PHOTOMETRIC.RGB, 3), (tifffile.PHOTOMETRIC.RGB, 4),
                              (tifffile.PHOTOMETRIC.MINISBLACK, 2)) or page.extrasamples not in ((), (2,)):
                return None  # premultiplied or unspecified extra samples, palettes, YCbCr...: Pillow knows these
            return np.moveaxis(page.asarray(), page.axes.index("S"), -1)
    except Exception:  # noqa: BLE001 - e.g. a TIFF codec that needs imagecodecs; Pillow then decodes (or reports).
        return None
    finally:
        file.seek(position)  # where Pillow left it


def _orientation(image):
    try:
        return image.getexif().get(_ORIENTATION, 1)
    except Exception:  # noqa: BLE001 - malformed EXIF leaves the pixels as stored, as image_files.upright does.
        return 1


def _photo_from_16bit(samples, image_format, exif):
    values = samples.astype(np.float32) / 65535
    if values.shape[-1] in (2, 4):  # alpha last: composite on white, as imaging does at 8 bits
        alpha = values[..., -1:]
        values = values[..., :-1] * alpha + (1 - alpha)
    if values.shape[-1] == 1:
        gray, rgb = values[..., 0], None
    else:
        gray, rgb = np.clip(values @ _LUMA, 0, 1), np.round(values * 255).astype(np.uint8)
    return Photo(gray, rgb, 16, image_format, exif, (gray.shape[1], gray.shape[0]))


def _source_exif(image):
    """The EXIF block to copy into the output; a TIFF's is built from its descriptive IFD0 tags."""
    try:
        if image.format != "TIFF":
            return reset_orientation(image.info.get("exif"))
        kept = _tiff_exif(image.getexif())
        return reset_orientation(kept.tobytes()) if len(kept) else None
    except Exception:  # noqa: BLE001 - unparseable EXIF is common in the wild; the photo is fine without it.
        return None


def _tiff_exif(exif):
    """Only the tags of `exif` that a TIFF's IFD0 may exchange with an EXIF block (see _TIFF_EXIF_TAGS)."""
    kept = Image.Exif()
    for tag in _TIFF_EXIF_TAGS & exif.keys():
        kept[tag] = exif.get_ifd(tag) if tag in _SUB_IFDS else exif[tag]
    return kept


def reset_orientation(exif_bytes):
    """The EXIF block with Orientation 1 and no thumbnail IFD, headed by 'Exif\\0\\0'; None if empty or unparseable.

    Written pixels are upright, so a kept Orientation would make viewers rotate them again. The thumbnail shows the
    uncolorized photo in its old orientation, so IFD1 is unlinked. Patched in place rather than re-serialised, so
    maker notes and unknown tags survive byte for byte. Accepts the block with or without the header (PNG eXIf and
    WebP chunks omit it).
    """
    if not exif_bytes:
        return None
    tiff = bytearray(exif_bytes.removeprefix(_EXIF_HEADER))
    try:
        order = {b"II": "<", b"MM": ">"}[bytes(tiff[:2])]
        magic, ifd = struct.unpack_from(order + "HI", tiff, 2)
        if magic != 42:
            return None
        (count,) = struct.unpack_from(order + "H", tiff, ifd)
        for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
            tag, kind = struct.unpack_from(order + "HH", tiff, entry)
            if tag == _ORIENTATION:
                struct.pack_into(order + {3: "H", 4: "I"}[kind], tiff, entry + 8, 1)  # SHORT (standard) or LONG
        struct.pack_into(order + "I", tiff, ifd + 2 + 12 * count, 0)
    except (KeyError, struct.error):
        return None
    return _EXIF_HEADER + bytes(tiff)


def save_photo(rgb, path, format, exif=None, jpeg_quality=95):
    """Writes uint8 or uint16 [H, W, 3] sRGB to `path` atomically (`storage.write_atomic`).

    8-bit-only formats (JPEG, WEBP, BMP) get uint16 rounded to 8 bits. EXIF is copied with Orientation 1 where the
    format has a place for it; no ICC profile is written, since outputs are sRGB. `jpeg_quality` is also WebP's.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"expected a uint8 or uint16 [H, W, 3] array, got {rgb.dtype} {rgb.shape}")
    if format not in _WRITABLE_FORMATS:
        raise ValueError(f"cannot write format {format!r}; expected one of {_WRITABLE_FORMATS}")
    if rgb.dtype == np.uint16 and format not in ("PNG", "TIFF"):
        rgb = ((rgb.astype(np.uint32) + 128) // 257).astype(np.uint8)  # round(v * 255 / 65535)
    exif = reset_orientation(exif)
    encoded = io.BytesIO()
    _write(encoded, rgb, format, exif, jpeg_quality)
    storage.write_atomic(path, encoded.getvalue())


def _write(file, rgb, image_format, exif, jpeg_quality):
    if rgb.dtype == np.uint16:
        (_write_png16 if image_format == "PNG" else _write_tiff16)(file, rgb, exif)
        return
    options = {}
    if image_format in ("JPEG", "WEBP"):
        options["quality"] = jpeg_quality
    if image_format == "JPEG":
        options["subsampling"] = 0  # 4:4:4: chroma is what the colorizer made, keep it at full resolution
    if exif and image_format in ("JPEG", "PNG", "WEBP"):
        options["exif"] = exif
    if exif and image_format == "TIFF":
        options["exif"] = _tiff_exif(_load_exif(exif))
    Image.fromarray(rgb).save(file, format=image_format, **options)


def _load_exif(exif_bytes):
    exif = Image.Exif()
    exif.load(exif_bytes)
    return exif


def _write_tiff16(file, rgb, exif):
    """16-bit RGB TIFF via tifffile (Pillow has no 16-bit RGB mode); EXIF's descriptive IFD0 tags only, no sub-IFDs."""
    tags = _tiff_exif(_load_exif(exif)) if exif else {}
    options = {}
    if _X_RESOLUTION in tags and _Y_RESOLUTION in tags:
        options["resolution"] = (float(tags[_X_RESOLUTION]), float(tags[_Y_RESOLUTION]))
        options["resolutionunit"] = tags.get(_RESOLUTION_UNIT, 2)
    # Pillow decoded the strings as latin-1: encoding back restores the bytes (often UTF-8, which tifffile's str
    # check would refuse as not 7-bit ASCII).
    # ImageDescription is tifffile's own place for its metadata: a copied one makes tifffile warn on reading.
    extratags = [(tag, "s", 0, tags[tag].encode("latin-1", "replace"), True)
                 for tag in _TIFF_TEXT_TAGS if isinstance(tags.get(tag), str) and tag != _IMAGE_DESCRIPTION]
    tifffile.imwrite(file, rgb, photometric="rgb", metadata=None, software=False, extratags=extratags, **options)


def _write_png16(file, rgb, exif):
    """16-bit RGB PNG, which Pillow cannot write (it has no 16-bit RGB mode).

    numpy + zlib rather than tf.io.encode_png: writing needs no TensorFlow, the eXIf chunk goes in directly instead
    of being spliced into TensorFlow's output, and rows are compressed in bands instead of whole-image copies. Every
    row uses the Up filter: vectorised, and within ~4% of libpng's adaptive filters on 16-bit photos.
    """
    height, width, _ = rgb.shape
    file.write(_PNG_SIGNATURE)
    _png_chunk(file, b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
    if exif:
        _png_chunk(file, b"eXIf", exif.removeprefix(_EXIF_HEADER))
    compressor = zlib.compressobj()
    previous = np.zeros((1, width * 6), np.uint8)
    for start in range(0, height, _PNG_ROWS_PER_BAND):
        rows = rgb[start:start + _PNG_ROWS_PER_BAND].astype(">u2").view(np.uint8).reshape(-1, width * 6)
        filtered = np.diff(rows, axis=0, prepend=previous)  # uint8 wraps modulo 256, as the filter is defined
        previous = rows[-1:]
        band = np.concatenate([np.full((len(rows), 1), 2, np.uint8), filtered], axis=1)  # filter type 2: Up
        _png_chunk(file, b"IDAT", compressor.compress(band.tobytes()))
    _png_chunk(file, b"IDAT", compressor.flush())
    _png_chunk(file, b"IEND", b"")


def _png_chunk(file, tag, data):
    """Writes one chunk; skips empty IDATs, which zlib produces until it has a full block."""
    if data or tag != b"IDAT":
        file.write(struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data)))


def output_format(path, override=""):
    """(PIL format name, extension) of the output for input `path`: its own format, or PNG for what we cannot write.

    The input's extension is kept (case included) when the output format is the input's, so IMG_1.JPG stays .JPG.
    `override` is the --format flag: jpeg, png, tiff or webp, any case.
    """
    extension = os.path.splitext(path)[1]
    own_format = _EXTENSION_FORMATS.get(extension.lower())
    if not override:
        return (own_format, extension) if own_format else ("PNG", ".png")
    try:
        image_format, default_extension = _FORMAT_OVERRIDES[override.lower()]
    except KeyError:
        raise ValueError(f"--format={override!r} is not one of {', '.join(_FORMAT_OVERRIDES)}") from None
    return image_format, extension if own_format == image_format else default_extension
