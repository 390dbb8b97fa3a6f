"""Image files decoded the same way by data prep and by the colorize tools: which names are images, EXIF
orientation, any PIL mode to 8-bit sRGB, and the luma weights of the records' gray.

Pure PIL and numpy: data prep's worker processes import it and must never load TensorFlow.
"""

import io

import numpy as np
from PIL import Image
from PIL import ImageOps

try:
    from PIL import ImageCms
except ImportError:  # Pillow built without littleCMS: embedded colour profiles are then ignored.
    ImageCms = None

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".dib", ".tif", ".tiff", ".gif", ".ppm", ".pnm"}
)
# The Pillow decoders those files need, and the only ones Image.open may try: by default it tries every plugin on
# any content (EPS runs Ghostscript, and dozens of rarely used decoders parse whatever a file named .jpg holds).
PIL_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "DIB", "TIFF", "GIF", "PPM")  # JPEG opens MPO too
# PIL modes of one 16- or 32-bit gray channel.
HIGH_BIT_GRAY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})
# ITU-R 601 luma weights: the records' gray channel (PIL "L").
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

_WHITE = (255, 255, 255, 255)
_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


def open_image(file):
    """PIL's Image.open trying only PIL_FORMATS' decoders, and without Pillow's own pixel limit (a warning past
    89 MP, an error past 179 MP, whatever the tool's --max_pixels): every caller checks the size against its
    --max_pixels right after this reads the header, before anything decodes, so the flag is the limit."""
    Image.MAX_IMAGE_PIXELS = None
    return Image.open(file, formats=PIL_FORMATS)


def upright(image):
    """Applies the EXIF orientation; a broken EXIF block leaves the pixels as stored."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - malformed EXIF is common in the wild and harmless to ignore.
        return image


def to_srgb(image):
    """Any PIL mode -> 8-bit RGB: alpha composited on white, 16-bit scaled, embedded ICC profiles honoured."""
    if image.mode in _ALPHA_MODES or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert("RGB")
    if image.mode in HIGH_BIT_GRAY_MODES:
        values = np.asarray(image).astype(np.float64)
        return Image.fromarray(np.round(np.clip(values, 0, 65535) * (255 / 65535)).astype(np.uint8)).convert("RGB")
    icc = image.info.get("icc_profile")
    if icc and image.mode in ("RGB", "CMYK") and ImageCms is not None:
        try:
            return ImageCms.applyTransform(image, _srgb_transform(icc, image.mode))
        except Exception:  # noqa: BLE001 - a broken profile falls back to the plain conversion below.
            pass
    return image.convert("RGB")


_TRANSFORMS = {}


def _srgb_transform(icc, mode):
    """Cached per (profile, mode): a folder of camera photos shares one profile, and building one costs ms."""
    key = (icc, mode)
    if key not in _TRANSFORMS:
        if len(_TRANSFORMS) > 16:
            _TRANSFORMS.clear()
        _TRANSFORMS[key] = ImageCms.buildTransform(
            ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"), mode, "RGB"
        )
    return _TRANSFORMS[key]
