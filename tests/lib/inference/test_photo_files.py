"""Unit tests of colorgan.inference.photo_files: the colorize tool's reading and writing of users' photos, on tiny
files."""

import io
import os
import struct
import zlib

import image_corpus
import numpy as np
import pytest
import tifffile
from PIL import ExifTags
from PIL import Image
from PIL import ImageCms
from PIL import ImageOps
from PIL import JpegImagePlugin

from colorgan.inference import photo_files

MAKE, MODEL, ORIENTATION = 0x010F, 0x0110, 0x0112


def _rgb(width=48, height=32, seed=0):
    return image_corpus.colourful(width, height, seed)


def _save(tmp_path, name, image, **kwargs):
    path = str(tmp_path / name)
    image.save(path, **kwargs)
    return path


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def _luma(path):
    """What training records store: PIL's "L" of the RGB image, divided by 255 in float32."""
    return np.asarray(Image.open(path).convert("RGB").convert("L"), np.float32) / 255


def _ramp16(height, width):
    """uint16 [H, W] spanning 0..65535, mostly odd values: only a true 16-bit path keeps all of them."""
    values = (np.arange(height * width, dtype=np.int64) * 65535 // (height * width - 1)).astype(np.uint16)
    assert values[0] == 0 and values[-1] == 65535 and np.count_nonzero(values % 2) > values.size // 3
    return values.reshape(height, width)


def _rgb16(height=30, width=40):
    """uint16 [H, W, 3] whose low bytes differ per channel, so truncation to 8 bits would show."""
    ramp = _ramp16(height, width)
    return np.stack([ramp, ramp[::-1, ::-1], (ramp.astype(np.uint32) * 7 % 65536).astype(np.uint16)], axis=-1)


def _exif(orientation=None):
    exif = Image.Exif()
    exif[MAKE], exif[MODEL] = "Canon", "EOS 5D"
    if orientation:
        exif[ORIENTATION] = orientation
    return exif.tobytes()


def _decode_png16(data):
    import tensorflow as tf  # an independent reader (libpng), not the writer under test

    return tf.io.decode_png(data, dtype=tf.uint16).numpy()


# Colour and gray 8-bit sources.


def test_colour_png_gray_is_exactly_the_training_luma(tmp_path):
    path = _save(tmp_path, "colour.png", Image.fromarray(_rgb()))
    photo = photo_files.load_photo(path)
    assert photo.gray.dtype == np.float32 and photo.gray.shape == (32, 48)
    np.testing.assert_array_equal(photo.gray, _luma(path))
    np.testing.assert_array_equal(photo.rgb, _rgb())
    assert (photo.bit_depth, photo.format, photo.size, photo.exif) == (8, "PNG", (48, 32), None)


def test_colour_jpeg_rgb_is_the_decoded_pixels(tmp_path):
    path = _save(tmp_path, "colour.jpg", Image.fromarray(_rgb()), quality=90)
    photo = photo_files.load_photo(path)
    decoded = np.asarray(Image.open(path).convert("RGB"))
    assert photo.rgb.dtype == np.uint8
    np.testing.assert_array_equal(photo.rgb, decoded)
    np.testing.assert_array_equal(photo.gray, _luma(path))
    assert (photo.bit_depth, photo.format) == (8, "JPEG")


def test_gray_png_has_no_rgb(tmp_path):
    gray = np.asarray(Image.fromarray(_rgb()).convert("L"))
    photo = photo_files.load_photo(_save(tmp_path, "gray.png", Image.fromarray(gray)))
    assert photo.rgb is None and photo.bit_depth == 8
    np.testing.assert_array_equal(photo.gray, gray.astype(np.float32) / 255)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "1"])
def test_alpha_palette_and_bilevel_sources(tmp_path, mode):
    rgba = Image.fromarray(_rgb()).convert("RGBA")
    alpha = np.full((32, 48), 255, np.uint8)
    alpha[:, :10] = 0  # a transparent strip: it must come out white
    rgba.putalpha(Image.fromarray(alpha))
    image = {"RGBA": rgba, "LA": rgba.convert("LA"), "P": rgba.convert("RGB").quantize(16),
             "1": rgba.convert("1")}[mode]
    photo = photo_files.load_photo(_save(tmp_path, f"{mode}.png", image))
    assert photo.gray.shape == (32, 48)
    if mode in ("RGBA", "LA"):
        assert np.all(photo.gray[:, :10] == 1)
    if mode == "RGBA":
        assert np.all(photo.rgb[:, :10] == 255) and not np.all(photo.rgb[:, 10:] == 255)
    if mode == "P":
        np.testing.assert_array_equal(photo.rgb, np.asarray(image.convert("RGB")))
    if mode == "1":
        assert set(np.unique(photo.gray)) <= {0.0, 1.0} and photo.rgb is None
    assert (photo.rgb is None) == (mode in ("LA", "1"))


def test_animated_gif_first_frame(tmp_path):
    first, second = Image.new("RGB", (20, 10), (200, 30, 30)), Image.new("RGB", (20, 10), (30, 30, 200))
    path = _save(tmp_path, "anim.gif", first, save_all=True, append_images=[second], duration=100)
    photo = photo_files.load_photo(path)
    assert photo.format == "GIF" and np.all(photo.rgb == (200, 30, 30))


def test_cmyk_jpeg_loads_to_the_right_colours(tmp_path):
    rgb = _rgb(64, 48)
    path = _save(tmp_path, "cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), quality=95)
    photo = photo_files.load_photo(path)
    assert Image.open(path).mode == "CMYK"
    pil_rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert np.abs(photo.rgb.astype(int) - pil_rgb).max() <= 1
    assert np.abs(photo.rgb.astype(int) - rgb).mean() < 4  # inverted (Adobe) CMYK would be far off
    np.testing.assert_array_equal(photo.gray, np.asarray(Image.fromarray(photo.rgb).convert("L"), np.float32) / 255)


@pytest.mark.parametrize("image_format, extension", [("PNG", ".png"), ("JPEG", ".jpg")])
def test_wide_gamut_photo_is_converted_to_srgb_with_its_profile(tmp_path, image_format, extension):
    """An Adobe RGB photo: its colour original (and so its luma) is ImageCms's sRGB conversion of the decoded pixels,
    not the numbers read as if they were sRGB."""
    icc = image_corpus.adobe_rgb_icc()
    path = _save(tmp_path, f"adobe{extension}", Image.fromarray(_rgb(64, 48, seed=2)), format=image_format,
                 icc_profile=icc, **({"quality": 95} if image_format == "JPEG" else {}))
    with Image.open(path) as image:
        assert image.info["icc_profile"] == icc
        decoded = image.convert("RGB")
    expected = np.asarray(ImageCms.profileToProfile(decoded, ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                                    ImageCms.createProfile("sRGB"), outputMode="RGB")).astype(int)
    assert np.abs(expected - np.asarray(decoded)).mean() > 4  # the profile changes the colours: the test can tell
    photo = photo_files.load_photo(path)
    assert np.abs(photo.rgb.astype(int) - expected).max() <= 2
    np.testing.assert_array_equal(photo.gray, np.asarray(Image.fromarray(photo.rgb).convert("L"), np.float32) / 255)


def test_gray_png_with_gray_icc_profile_keeps_its_values_and_the_output_has_no_profile(tmp_path):
    icc = image_corpus.gray_icc()
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip() == "gray gamma 2.2"
    gray = np.asarray(Image.fromarray(_rgb()).convert("L"))
    path = _save(tmp_path, "gray_icc.png", Image.fromarray(gray), icc_profile=icc)
    assert Image.open(path).info["icc_profile"] == icc
    photo = photo_files.load_photo(path)
    assert photo.rgb is None
    np.testing.assert_array_equal(photo.gray, gray.astype(np.float32) / 255)
    for image_format, extension in [("PNG", ".png"), ("JPEG", ".jpg"), ("TIFF", ".tif"), ("WEBP", ".webp")]:
        out = str(tmp_path / f"out{extension}")
        photo_files.save_photo(_rgb(), out, image_format)
        assert "icc_profile" not in Image.open(out).info, image_format


# 16-bit sources.


def test_16bit_gray_png_keeps_all_16_bits(tmp_path):
    values = _ramp16(60, 100)
    path = _save(tmp_path, "gray16.png", Image.fromarray(values))
    assert Image.open(path).mode == "I;16"
    photo = photo_files.load_photo(path)
    assert photo.gray.dtype == np.float32 and photo.rgb is None and photo.bit_depth == 16
    np.testing.assert_array_equal(np.round(photo.gray * 65535).astype(np.uint16), values)


@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_16bit_gray_tiff_keeps_all_16_bits(tmp_path, byteorder):
    values = _ramp16(60, 100)
    path = str(tmp_path / "gray16.tif")
    tifffile.imwrite(path, values, byteorder=byteorder)
    photo = photo_files.load_photo(path)
    assert (photo.rgb, photo.bit_depth, photo.format, photo.size) == (None, 16, "TIFF", (100, 60))
    np.testing.assert_array_equal(np.round(photo.gray * 65535).astype(np.uint16), values)


def _expected_16bit_colour(values):
    rgb = values.astype(np.float64)
    return (rgb @ [0.299, 0.587, 0.114]) / 65535, ((values.astype(np.uint32) + 128) // 257).astype(np.uint8)


@pytest.mark.parametrize("layout", ["png", "tiff", "tiff_planar"])
def test_16bit_colour_sources_keep_16_bit_luma(tmp_path, layout):
    values = _rgb16()
    path = str(tmp_path / ("rgb16.png" if layout == "png" else "rgb16.tif"))
    if layout == "png":
        _write(tmp_path, "rgb16.png", image_corpus.png_rgb16(values))
    elif layout == "tiff":
        tifffile.imwrite(path, values, photometric="rgb")
    else:
        tifffile.imwrite(path, np.moveaxis(values, -1, 0), photometric="rgb", planarconfig="separate")
    photo = photo_files.load_photo(path)
    gray, rgb = _expected_16bit_colour(values)
    assert photo.bit_depth == 16 and photo.gray.dtype == np.float32 and photo.rgb.dtype == np.uint8
    np.testing.assert_allclose(photo.gray, gray, atol=1e-6)
    np.testing.assert_array_equal(photo.rgb, rgb)  # rounded, where Pillow truncates to the high byte
    assert not np.allclose(photo.gray * 255, np.round(photo.gray * 255), atol=1e-3)  # finer than 8 bits


def test_16bit_rgba_png_composites_on_white(tmp_path):
    values = _rgb16()
    alpha = np.full(values.shape[:2] + (1,), 65535, np.uint16)
    alpha[:, :10] = 0
    height, width, _ = values.shape  # image_corpus.png_rgb16 writes RGB only: the same recipe, colour type 6
    rgba = np.concatenate([values, alpha], axis=-1)
    raw = b"".join(b"\0" + rgba[row].astype(">u2").tobytes() for row in range(height))
    chunks = [(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 6, 0, 0, 0)), (b"IDAT", zlib.compress(raw)),
              (b"IEND", b"")]
    path = _write(tmp_path, "rgba16.png", b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data)) for tag, data in chunks))
    photo = photo_files.load_photo(path)
    gray, rgb = _expected_16bit_colour(values)
    assert photo.bit_depth == 16
    assert np.all(photo.rgb[:, :10] == 255) and np.all(photo.gray[:, :10] == 1)
    np.testing.assert_array_equal(photo.rgb[:, 10:], rgb[:, 10:])
    np.testing.assert_allclose(photo.gray[:, 10:], gray[:, 10:], atol=1e-6)


def test_16bit_colour_tiff_orientation_is_applied(tmp_path):
    values = _rgb16()
    path = str(tmp_path / "rotated16.tif")
    tifffile.imwrite(path, values, photometric="rgb", extratags=[(ORIENTATION, "H", 1, 6, True)])
    photo = photo_files.load_photo(path)
    _, rgb = _expected_16bit_colour(values)
    assert photo.size == (30, 40)
    np.testing.assert_array_equal(photo.rgb, np.rot90(rgb, -1))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_numpy_orientations_match_pillow(orientation):
    image = Image.fromarray(_rgb(7, 5))
    exif = image.getexif()
    exif[ORIENTATION] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    np.testing.assert_array_equal(photo_files._UPRIGHT.get(orientation, np.asarray)(np.asarray(image)), expected)


def test_16bit_tiff_the_fast_path_cannot_read_falls_back_to_pillow(tmp_path):
    values = _rgb16()
    path = str(tmp_path / "premultiplied16.tif")
    opaque = np.full(values.shape[:2] + (1,), 65535, np.uint16)
    tifffile.imwrite(path, np.concatenate([values, opaque], -1), photometric="rgb", extrasamples=[1])
    photo = photo_files.load_photo(path)
    assert photo.bit_depth == 16
    np.testing.assert_array_equal(photo.rgb, values >> 8)  # Pillow's 8 bits


# EXIF.


@pytest.mark.parametrize("orientation", [3, 6])
def test_exif_orientation_loads_upright_and_is_reset(tmp_path, orientation):
    path = _save(tmp_path, "rotated.jpg", Image.fromarray(_rgb()), quality=95, exif=_exif(orientation))
    photo = photo_files.load_photo(path)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    np.testing.assert_array_equal(photo.rgb, upright)
    assert photo.size == (upright.shape[1], upright.shape[0]) == ((32, 48) if orientation == 6 else (48, 32))
    exif = Image.Exif()
    exif.load(photo.exif)
    assert (exif[ORIENTATION], exif[MAKE], exif[MODEL]) == (1, "Canon", "EOS 5D")

    for image_format, extension in [("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp"), ("TIFF", ".tif")]:
        out = str(tmp_path / f"out{extension}")
        photo_files.save_photo(photo.rgb, out, image_format, exif=photo.exif)
        written = Image.open(out)
        assert written.size == photo.size, image_format  # no viewer rotates it again
        tags = written.getexif()
        assert tags.get(ORIENTATION, 1) == 1 and (tags[MAKE], tags[MODEL]) == ("Canon", "EOS 5D"), image_format


def test_png_exif_after_the_pixel_data_is_found(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(_rgb()).save(buffer, format="PNG", exif=_exif(6))
    data, chunks, offset = buffer.getvalue(), {}, 8
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        chunks[data[offset + 4:offset + 8]] = data[offset:offset + 12 + length]
        offset += 12 + length
    assert list(chunks) == [b"IHDR", b"eXIf", b"IDAT", b"IEND"]
    order = [b"IHDR", b"IDAT", b"eXIf", b"IEND"]  # as some writers do: legal, and read by Pillow only in load()
    photo = photo_files.load_photo(_write(tmp_path, "late_exif.png", data[:8] + b"".join(chunks[c] for c in order)))
    exif = Image.Exif()
    exif.load(photo.exif)
    assert (exif[ORIENTATION], exif[MAKE]) == (1, "Canon") and photo.size == (32, 48)  # and it was applied


def test_tiff_source_exif_keeps_descriptive_tags_only(tmp_path):
    path = str(tmp_path / "scan.tif")
    tifffile.imwrite(path, _rgb(), photometric="rgb",
                     extratags=[(MAKE, "s", 0, "Epson", True), (0x8298, "s", 0, "(c) Archive", True)])
    photo = photo_files.load_photo(path)
    exif = Image.Exif()
    exif.load(photo.exif)
    assert exif[MAKE] == "Epson" and exif[0x8298] == "(c) Archive"
    assert 256 not in exif and 273 not in exif  # ImageWidth, StripOffsets belong to the source's layout


def test_reset_orientation_patches_in_place_and_unlinks_the_thumbnail():
    exif = Image.Exif()
    exif[ORIENTATION], exif[MAKE] = 8, "Nikon"
    exif[0x8769] = {0x9003: "2001:02:03 04:05:06"}  # DateTimeOriginal, in the Exif sub-IFD
    block = bytearray(exif.tobytes()[6:])  # PNG/WebP style: no "Exif\0\0" header
    # Append an IFD1 (thumbnail) and link it from IFD0, as cameras do.
    order = "<" if block[:2] == b"II" else ">"
    ifd0 = struct.unpack_from(order + "I", block, 4)[0]
    next_pointer = ifd0 + 2 + 12 * struct.unpack_from(order + "H", block, ifd0)[0]
    struct.pack_into(order + "I", block, next_pointer, len(block))
    block += struct.pack(order + "HHHIHHI", 1, 0x0103, 3, 1, 6, 0, 0)  # Compression = JPEG
    with_thumbnail = Image.Exif()
    with_thumbnail.load(bytes(block))
    assert with_thumbnail.get_ifd(ExifTags.IFD.IFD1) == {0x0103: 6}

    reset = photo_files.reset_orientation(bytes(block))
    assert reset.startswith(b"Exif\x00\x00") and len(reset) == len(block) + 6
    loaded = Image.Exif()
    loaded.load(reset)
    assert (loaded[ORIENTATION], loaded[MAKE]) == (1, "Nikon")
    assert loaded.get_ifd(0x8769) == {0x9003: "2001:02:03 04:05:06"}
    assert loaded.get_ifd(ExifTags.IFD.IFD1) == {}
    assert photo_files.reset_orientation(reset) == reset


@pytest.mark.parametrize("data", [
    None, b"", b"Exif\x00\x00", b"garbage that is not TIFF",
    b"Exif\x00\x00II*\x00\xff\xff\xff\x00",  # IFD0 offset past the end
    b"II+\x00\x08\x00\x00\x00\x00\x00",  # BigTIFF-style magic, not EXIF
])
def test_reset_orientation_of_missing_or_broken_exif_is_none(data):
    assert photo_files.reset_orientation(data) is None


# Bad files.


def _png_claiming(width, height):
    """A tiny PNG whose IHDR claims width x height (1-bit), with valid CRCs: costs nothing until decoded."""
    buffer = io.BytesIO()
    Image.new("1", (8, 8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _jpeg_bytes():
    buffer = io.BytesIO()
    Image.fromarray(_rgb(160, 120)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _png16_bytes():
    return image_corpus.png_rgb16(_rgb16())


@pytest.mark.parametrize("name, data, reason", [
    ("empty.jpg", b"", "empty file"),
    ("text.jpg", b"this is not an image\n" * 20, "not an image"),
    ("truncated.jpg", _jpeg_bytes()[: len(_jpeg_bytes()) // 2], "corrupt: "),
    ("truncated16.png", _png16_bytes()[: len(_png16_bytes()) - 40], "corrupt: "),
    ("bomb.png", _png_claiming(20000, 20000), "too many pixels: "),
    ("big.png", _png_claiming(4000, 4000), "too many pixels: 4000x4000 > --max_pixels=10000000"),
])
def test_bad_files_raise_photo_error_with_a_one_line_reason(tmp_path, name, data, reason):
    path = _write(tmp_path, name, data)
    with pytest.raises(photo_files.PhotoError) as raised:
        photo_files.load_photo(path, max_pixels=10_000_000)
    message = str(raised.value)
    assert message.startswith(reason) and "\n" not in message, message


def test_missing_file_and_directory_are_unreadable(tmp_path):
    for path in (str(tmp_path / "missing.jpg"), str(tmp_path)):
        with pytest.raises(photo_files.PhotoError, match="^unreadable: "):
            photo_files.load_photo(path)


def test_pixel_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    path = _save(tmp_path, "ok.png", Image.fromarray(_rgb()))
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("decoded a photo over the limit"))
    with pytest.raises(photo_files.PhotoError, match=r"^too many pixels: 48x32 > --max_pixels=1000$"):
        photo_files.load_photo(path, max_pixels=1000)


# Writing.


def test_save_16bit_png_is_exact_and_carries_exif(tmp_path, monkeypatch):
    monkeypatch.setattr(photo_files, "_PNG_ROWS_PER_BAND", 7)  # several bands and IDAT chunks on a tiny image
    values = _rgb16(30, 40)
    out = str(tmp_path / "out16.png")
    photo_files.save_photo(values, out, "PNG", exif=_exif(6))
    with open(out, "rb") as f:
        data = f.read()
    np.testing.assert_array_equal(_decode_png16(data), values)
    assert data.count(b"IDAT") > 1
    tags = Image.open(out).getexif()
    assert tags[ORIENTATION] == 1 and tags[MAKE] == "Canon"
    photo = photo_files.load_photo(out)  # and our own reader takes it back at 16 bits
    assert photo.bit_depth == 16
    np.testing.assert_allclose(photo.gray, _expected_16bit_colour(values)[0], atol=1e-6)


def test_save_16bit_tiff_is_exact_and_carries_descriptive_exif(tmp_path):
    values = _rgb16(30, 40)
    out = str(tmp_path / "out16.tif")
    exif = Image.Exif()
    exif[MAKE], exif[0x8298], exif[0x011A], exif[0x011B], exif[0x0128] = "Epson", "XX Archive", 600, 600, 2
    exif[256] = 9999  # ImageWidth in a (phone) EXIF block must not reach the TIFF's own tags
    utf8 = exif.tobytes().replace(b"XX Archive", "© Archive".encode())  # Pillow would write '?' for the ©
    photo_files.save_photo(values, out, "TIFF", exif=utf8)
    np.testing.assert_array_equal(tifffile.imread(out), values)
    with tifffile.TiffFile(out) as tiff:
        tags = tiff.pages.first.tags
        assert tags["Make"].value == "Epson" and tags["ImageWidth"].value == 40
        assert tags["XResolution"].value == (600, 1) and tags["ResolutionUnit"].value == 2
        assert tags["Copyright"].value == "© Archive"


def test_save_8bit_formats_round_trip(tmp_path):
    rgb = _rgb()
    for image_format, extension in [("PNG", ".png"), ("TIFF", ".tif"), ("BMP", ".bmp")]:
        out = str(tmp_path / f"out{extension}")
        photo_files.save_photo(rgb, out, image_format)
        np.testing.assert_array_equal(np.asarray(Image.open(out)), rgb, err_msg=image_format)
    out = str(tmp_path / "out.jpg")
    photo_files.save_photo(rgb, out, "JPEG", jpeg_quality=97)
    with Image.open(out) as written:
        assert JpegImagePlugin.get_sampling(written) == 0  # 4:4:4
        assert np.abs(np.asarray(written).astype(int) - rgb).mean() < 2


def test_save_reduces_16bit_with_rounding_for_8bit_formats(tmp_path):
    values = _rgb16()
    out = str(tmp_path / "out.bmp")
    photo_files.save_photo(values, out, "BMP")
    np.testing.assert_array_equal(np.asarray(Image.open(out)), (values.astype(np.uint32) + 128) // 257)


@pytest.mark.parametrize("rgb, image_format", [
    (np.zeros((4, 4), np.uint8), "PNG"),
    (np.zeros((4, 4, 4), np.uint8), "PNG"),
    (np.zeros((4, 4, 3), np.float32), "PNG"),
    (np.zeros((4, 4, 3), np.uint8), "GIF"),
])
def test_save_rejects_bad_arrays_and_formats(tmp_path, rgb, image_format):
    with pytest.raises(ValueError):
        photo_files.save_photo(rgb, str(tmp_path / "out"), image_format)
    assert os.listdir(tmp_path) == []


def test_save_leaves_no_partial_file(tmp_path):
    photo_files.save_photo(_rgb(), str(tmp_path / "out.png"), "PNG")
    photo_files.save_photo(_rgb16(), str(tmp_path / "out16.png"), "PNG")
    assert sorted(os.listdir(tmp_path)) == ["out.png", "out16.png"]


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("rgb", [_rgb(), _rgb16()], ids=["8bit", "16bit"])
def test_a_failed_save_keeps_the_old_output_and_leaves_no_file(tmp_path, monkeypatch, error, rgb):
    """An encoder that dies half-way: the photo is encoded in memory before storage.write_atomic writes it (whose
    own failures test_storage covers), so the old output stays whole and nothing else appears."""
    out = tmp_path / "out.png"
    out.write_bytes(b"previous run")
    written = []

    def failing_write(*args, **kwargs):  # stands in for Image.save(self, fp, ...) and _write_png16(file, ...)
        file = next(arg for arg in args if hasattr(arg, "write"))
        file.write(b"\x89PNG half of it")
        written.append(len(b"\x89PNG half of it"))
        raise error("encoder died")

    monkeypatch.setattr(Image.Image, "save", failing_write)
    monkeypatch.setattr(photo_files, "_write_png16", failing_write)
    with pytest.raises(error):
        photo_files.save_photo(rgb, str(out), "PNG")
    assert written and os.listdir(tmp_path) == ["out.png"] and out.read_bytes() == b"previous run"

    (tmp_path / "out.png").unlink()
    with pytest.raises(error):
        photo_files.save_photo(rgb, str(out), "PNG")
    assert os.listdir(tmp_path) == []


# Output formats.


@pytest.mark.parametrize("path, override, expected", [
    ("a/photo.jpg", "", ("JPEG", ".jpg")),
    ("photo.jpeg", "", ("JPEG", ".jpeg")),
    ("IMG_0001.JPG", "", ("JPEG", ".JPG")),
    ("scan.png", "", ("PNG", ".png")),
    ("scan.tif", "", ("TIFF", ".tif")),
    ("scan.TIFF", "", ("TIFF", ".TIFF")),
    ("web.webp", "", ("WEBP", ".webp")),
    ("old.bmp", "", ("BMP", ".bmp")),
    ("anim.gif", "", ("PNG", ".png")),
    ("raw.ppm", "", ("PNG", ".png")),
    ("no_extension", "", ("PNG", ".png")),
    ("scan.tif", "jpeg", ("JPEG", ".jpg")),
    ("photo.jpeg", "JPEG", ("JPEG", ".jpeg")),
    ("photo.jpg", "png", ("PNG", ".png")),
    ("photo.jpg", "Tiff", ("TIFF", ".tif")),
    ("photo.jpg", "webp", ("WEBP", ".webp")),
    ("anim.gif", "png", ("PNG", ".png")),
])
def test_output_format(path, override, expected):
    assert photo_files.output_format(path, override) == expected


@pytest.mark.parametrize("override", ["gif", "jpg", "bmp", "heic"])
def test_output_format_rejects_unknown_override(override):
    with pytest.raises(ValueError, match="--format"):
        photo_files.output_format("photo.jpg", override)


def test_a_16_bit_tiff_output_does_not_carry_the_source_tiffs_description(tmp_path):
    """tifffile writes its own shape metadata into ImageDescription; copied from a gray scan into the RGB output, it
    made tifffile warn on every read ("shaped series shape does not match page shape")."""
    import logging

    tifffile.imwrite(tmp_path / "scan16.tif", (np.arange(30 * 40).reshape(30, 40) * 50).astype(np.uint16))
    photo = photo_files.load_photo(str(tmp_path / "scan16.tif"))
    rgb = np.stack([np.round(photo.gray * 65535).astype(np.uint16)] * 3, axis=-1)
    photo_files.save_photo(rgb, str(tmp_path / "out16.tif"), "TIFF", exif=photo.exif)
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("tifffile").addHandler(handler)
    try:
        assert tifffile.imread(tmp_path / "out16.tif").shape == (30, 40, 3)
    finally:
        logging.getLogger("tifffile").removeHandler(handler)
    assert messages == []


def test_only_the_formats_we_take_are_decoded_whatever_the_name(tmp_path):
    """Pillow's Image.open tries every decoder it has on any content: an icon (or an EPS, which runs Ghostscript)
    named .png was decoded and colorized. Only the formats of image_files.IMAGE_EXTENSIONS are tried now."""
    Image.new("RGB", (32, 32), (200, 40, 40)).save(tmp_path / "icon.png", format="ICO")
    Image.new("RGB", (32, 32), (200, 40, 40)).save(tmp_path / "targa.jpg", format="TGA")
    for name in ("icon.png", "targa.jpg"):
        with pytest.raises(photo_files.PhotoError, match="^not an image$"):
            photo_files.load_photo(str(tmp_path / name))


def test_max_pixels_above_pillows_own_limit_is_honoured(tmp_path, monkeypatch):
    """Pillow refuses past 179 MP (and warns past 89 MP) whatever --max_pixels says: a flag above that was not
    honoured, and the refusal quoted Pillow's limit, not the flag. The header check is now the tool's alone."""
    path = tmp_path / "scan.png"
    path.write_bytes(_png_claiming(20000, 10000))  # 200 MP
    with pytest.raises(photo_files.PhotoError, match=r"^too many pixels: 20000x10000 > --max_pixels=190000000$"):
        photo_files.load_photo(str(path), max_pixels=190_000_000)

    def decoding(self):
        raise RuntimeError("decoding")

    monkeypatch.setattr(Image.Image, "load", decoding)  # reached: the size was accepted (nothing is decoded)
    with pytest.raises(photo_files.PhotoError, match="^corrupt: decoding$"):
        photo_files.load_photo(str(path), max_pixels=300_000_000)
