"""Builds a folder of awkward real-world files: every way a photo folder goes wrong, with the expected outcome."""

import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

OK = None  # expected outcome: written


def colourful(width, height, seed=0):
    """A smooth, colourful RGB test image (gradients plus a few blobs), HxWx3 uint8."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [np.sin(x / width * f1 + y / height * f2 + p) for f1, f2, p in rng.uniform(1, 6, size=(3, 3))]
    return ((np.stack(channels, -1) * 0.5 + 0.5) * 255).astype(np.uint8)


def encoded(image_format, frames=1, size=(16, 12), seed=0, **options):
    """Random-noise images encoded by Pillow (distinct frames, so a GIF or WebP keeps every one)."""
    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), np.uint8)) for _ in range(frames)]
    buffer = io.BytesIO()
    if frames > 1:
        options.update(save_all=True, append_images=images[1:])
    images[0].save(buffer, format=image_format, **options)
    return buffer.getvalue()


def png_rgb16(array16):
    """A 16-bit-per-channel RGB PNG, written by hand (PIL cannot write one)."""
    height, width, _ = array16.shape
    raw = b"".join(b"\0" + array16[row].astype(">u2").tobytes() for row in range(height))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _save(image, path, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, **kwargs)


def make_corpus(root):
    """Writes the corpus under `root`; returns {key: expected skip reason, or OK}."""
    rgb = Image.fromarray(colourful(180, 140))
    expected = {}

    def put(key, outcome, image=None, data=None, **save_kwargs):
        path = os.path.join(root, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if image is not None:
            _save(image, path, **save_kwargs)
        else:
            with open(path, "wb") as f:
                f.write(data)
        expected[key] = outcome

    jpeg = io.BytesIO()
    rgb.save(jpeg, format="JPEG", quality=90)
    png = io.BytesIO()
    rgb.save(png, format="PNG")

    put("plain.jpg", OK, data=jpeg.getvalue())
    put("UPPER CASE.JPG", OK, data=jpeg.getvalue())
    put("long ext.jpeg", OK, data=jpeg.getvalue())
    put("ünïcödé 名前.png", OK, data=png.getvalue())
    put("disguised_png.jpg", OK, data=png.getvalue())
    put("nested/deeper/inner.webp", OK, rgb, format="WEBP", quality=90)
    put("bitmap.bmp", OK, rgb, format="BMP")
    put("scan.tif", OK, rgb, format="TIFF")
    put("animated.gif", OK, rgb.quantize(64), format="GIF", save_all=True,
        append_images=[rgb.quantize(64).transpose(Image.Transpose.FLIP_LEFT_RIGHT)])
    put("palette.png", OK, rgb.quantize(64), format="PNG")
    put("cmyk.jpg", OK, rgb.convert("CMYK"), format="JPEG", quality=90)
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    put("alpha.png", OK, rgba, format="PNG")
    put("gray_alpha.png", "no colour", rgb.convert("LA"), format="PNG")
    put("deep16.png", OK, data=png_rgb16(np.asarray(rgb).astype(np.uint16) * 257))
    put("gray16.png", "no colour", Image.fromarray((np.asarray(rgb.convert("L")).astype(np.uint16) * 257)),
        format="PNG")
    put("gray_as_rgb.jpg", "no colour", rgb.convert("L").convert("RGB"), format="JPEG", quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display.
    put("rotated.jpg", OK, rgb, format="JPEG", quality=90, exif=exif.tobytes())
    put("empty.jpg", "empty file", data=b"")
    put("text.png", "not an image", data=b"this is not an image\n" * 20)
    put("truncated.jpg", "corrupt", data=jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    put("tiny.png", "too small", rgb.resize((20, 20)), format="PNG")
    put("bomb.png", "too many pixels", Image.new("1", (12_000, 12_000)), format="PNG")
    put("notes.txt", "not an image file name", data=b"shot on a sunny day\n")
    os.symlink("missing_target.jpg", os.path.join(root, "dangling.jpg"))
    expected["dangling.jpg"] = "unreadable"
    os.symlink("..", os.path.join(root, "nested", "loop"))
    expected["nested/loop"] = "symlink loop"
    return expected


# Adobe RGB (1998) as its own ICC profile states it: D50-adapted colorants and a pure gamma of 563/256.
ADOBE_RGB_COLORANTS = ((0.60974, 0.31111, 0.01947), (0.20528, 0.62567, 0.06087), (0.14919, 0.06322, 0.74457))
ADOBE_RGB_GAMMA_U8F8 = 563


def _s15(x):
    return struct.pack(">i", round(x * 65536))


def _xyz(values):
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in values)


def icc_profile(color_space, description, tags):
    """A minimal ICC v2 display profile: `color_space` b"RGB " or b"GRAY", a description and the tags of its model
    (colorants and curves). Written by hand: Pillow can only create sRGB, XYZ and LAB profiles, and tests read no
    files from elsewhere."""
    d50 = (0.9642, 1.0, 0.8249)
    text = description.encode() + b"\0"
    tags = {b"desc": b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * 78, b"wtpt": _xyz(d50), **tags,
            b"cprt": b"text\0\0\0\0none\0"}
    offset, table, body = 128 + 4 + 12 * len(tags), b"", b""
    for signature, data in tags.items():
        data += b"\0" * (-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = (struct.pack(">I4sI", offset + len(body), b"\0" * 4, 0x02100000) + b"mntr" + color_space + b"XYZ "
              + b"\0" * 12 + b"acsp" + b"\0" * 28 + b"".join(_s15(v) for v in d50) + b"\0" * 48)
    return header + struct.pack(">I", len(tags)) + table + body


def _gamma_curve(gamma):
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(gamma * 256))


def adobe_rgb_icc():
    """A matrix/TRC profile equivalent to Adobe RGB (1998), a wide-gamut space."""
    curve = _gamma_curve(ADOBE_RGB_GAMMA_U8F8 / 256)
    red, green, blue = ADOBE_RGB_COLORANTS
    return icc_profile(b"RGB ", "Adobe RGB (1998) compatible",
                       {b"rXYZ": _xyz(red), b"gXYZ": _xyz(green), b"bXYZ": _xyz(blue),
                        b"rTRC": curve, b"gTRC": curve, b"bTRC": curve})


def gray_icc(gamma=2.2):
    """A gray display profile with a pure gamma curve."""
    return icc_profile(b"GRAY", f"gray gamma {gamma:g}", {b"kTRC": _gamma_curve(gamma)})
