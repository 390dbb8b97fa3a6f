"""Turns one source image (a file path or encoded bytes) into the encoded RGB + gray pair stored in a record.

Pure PIL and numpy on purpose: this runs in data-prep worker processes, which must stay small and start fast, so it
must never import TensorFlow. Every way an image can be unusable ends in `SkipImage` with a short, stable reason
that the manifest records; nothing here lets a bad file crash a conversion.
"""

import dataclasses
import io
import os

import numpy as np
from PIL import Image
from PIL import ImageOps
from PIL import UnidentifiedImageError

from colorgan.core import image_files
from colorgan.core import storage

RESIZE_MODES = ("crop", "stretch", "pad")
ENCODINGS = ("png", "jpeg")  # how a record's images are stored

# A pixel is coloured when its channels spread by more than this (0..255); JPEG noise on gray scans stays below.
COLOUR_SPREAD_THRESHOLD = 12
# An image counts as having colour when more than this fraction of its pixels is coloured.
MIN_COLOUR_FRACTION = 0.005

_RESAMPLE = Image.Resampling.LANCZOS


class SkipImage(Exception):
    """Raised for an image that cannot or should not become a training example."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class PrepOptions:
    """What every output example looks like; identical options give byte-identical output. Built from the flags by
    `conversion_config.ConversionConfig.prep_options`, which holds the defaults."""

    image_size: int
    resize: str
    encoding: str
    jpeg_quality: int
    max_pixels: int
    min_size: int


@dataclasses.dataclass(frozen=True)
class Prepared:
    rgb: bytes
    gray: bytes


@dataclasses.dataclass(frozen=True)
class Skipped:
    reason: str
    detail: str


def prepare_task(task):
    """Worker entry point: (source, options) -> Prepared or Skipped; never raises for a bad image. `source` is
    what `load_rgb` takes."""
    source, options = task
    try:
        rgb_bytes, gray_bytes = prepare_pair(source, options)
    except SkipImage as e:
        return Skipped(e.reason, e.detail)
    except Exception as e:  # noqa: BLE001 - any decoder failure on one file must not stop a million-image run.
        return Skipped("unreadable", f"{type(e).__name__}: {e}")
    return Prepared(rgb_bytes, gray_bytes)


def prepare_pair(source, options):
    """Loads, orients, squares and encodes one image; returns (rgb_bytes, gray_bytes)."""
    image = load_rgb(source, options)
    square = resize_square(image, options.image_size, options.resize)
    if not has_colour(np.asarray(square)):
        raise SkipImage("no colour", "gray or nearly gray image")
    gray = square.convert("L")
    return encode(square, options), encode(gray, options)


def load_rgb(source, options):
    """Decodes an image to an upright 8-bit sRGB PIL image, or raises SkipImage. `source`: a path (local, or any
    scheme of colorgan.core.storage), the file's bytes, or a binary file object open on it (seekable)."""
    if isinstance(source, bytes):
        return _load_rgb(io.BytesIO(source), options)
    if isinstance(source, (str, os.PathLike)):
        with storage.open_for_reading(source) as f:
            return _load_rgb(f, options)
    return _load_rgb(source, options)


def _load_rgb(source, options):
    if not source.read(1):
        raise SkipImage("empty file")
    source.seek(0)
    try:
        image = image_files.open_image(source)
    except UnidentifiedImageError:
        raise SkipImage("not an image", "no decoder recognises the content") from None
    with image:
        width, height = image.size
        if width * height > options.max_pixels:
            raise SkipImage("too many pixels", f"{width}x{height} > --max_pixels={options.max_pixels}")
        if min(width, height) < options.min_size:
            raise SkipImage("too small", f"{width}x{height}, shorter side < --min_size={options.min_size}")
        # JPEG can decode at 1/2, 1/4 or 1/8 scale for free: ask for the smallest that still covers the output.
        image.draft(None, _draft_size(width, height, options.image_size, options.resize))
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as e:
            raise SkipImage("corrupt", str(e)) from None
        return image_files.to_srgb(image_files.upright(image))


def _draft_size(width, height, size, mode):
    if mode == "stretch":
        return size, size
    side = min(width, height) if mode == "crop" else max(width, height)
    return -(-size * width // side), -(-size * height // side)


def resize_square(image, size, mode):
    """Squares the image: 'crop' centre-crops (default), 'stretch' ignores aspect (the seed), 'pad' letterboxes."""
    if mode == "crop":
        return ImageOps.fit(image, (size, size), _RESAMPLE)
    if mode == "stretch":
        return image.resize((size, size), _RESAMPLE, reducing_gap=3.0)
    if mode == "pad":
        return ImageOps.pad(image, (size, size), _RESAMPLE, color=(0, 0, 0))
    raise ValueError(f"unknown resize mode {mode!r}; expected one of {RESIZE_MODES}")


def has_colour(rgb):
    """True when enough pixels of an HxWx3 uint8 array have channels that differ beyond JPEG noise."""
    spread = rgb.max(axis=-1).astype(np.int16) - rgb.min(axis=-1)
    return np.count_nonzero(spread > COLOUR_SPREAD_THRESHOLD) > MIN_COLOUR_FRACTION * spread.size


def encode(image, options):
    """Encodes with the dataset's codec; JPEG keeps full-resolution chroma, since chroma is what we learn."""
    buffer = io.BytesIO()
    if options.encoding == "png":
        image.save(buffer, format="PNG")
    elif options.encoding == "jpeg":
        image.save(buffer, format="JPEG", quality=options.jpeg_quality, subsampling=0)
    else:
        raise ValueError(f"unknown encoding {options.encoding!r}")
    return buffer.getvalue()
