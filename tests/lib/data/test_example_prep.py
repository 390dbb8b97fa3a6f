"""Unit tests of colorgan.data.example_prep: decoding, modes, orientation, resizing and skip reasons on single files."""

import io
import os

import image_corpus
import numpy as np
import pytest
from PIL import Image
from PIL import ImageCms
from PIL import ImageOps

from colorgan.data import conversion_config
from colorgan.data import example_prep


def _options(**flags):
    """PrepOptions as the converter makes them from its flags (ConversionConfig holds the defaults), at 64 px."""
    return conversion_config.ConversionConfig(**{"image_size": 64, **flags}).prep_options()


OPTIONS = _options()  # min_size: 32
LOSSLESS = _options(encoding="png")


def _decode(data):
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("corpus"))
    return root, image_corpus.make_corpus(root)


def test_every_corpus_file_has_its_expected_outcome(corpus):
    root, expected = corpus
    for key, outcome in expected.items():
        path = os.path.join(root, key)
        if outcome in ("not an image file name", "symlink loop"):
            continue  # decided by the folder walk, see test_sources
        result = example_prep.prepare_task((path, OPTIONS))
        if outcome is image_corpus.OK:
            assert isinstance(result, example_prep.Prepared), (key, result)
            assert _decode(result.rgb).shape == (64, 64, 3), key
            assert _decode(result.gray).shape == (64, 64), key
        else:
            assert isinstance(result, example_prep.Skipped), key
            assert result.reason == outcome, (key, result)


def _fit(image):
    return np.asarray(ImageOps.fit(image.convert("RGB"), (64, 64), Image.Resampling.LANCZOS)).astype(int)


def test_animated_gif_gives_its_first_frame(corpus):
    """The corpus GIF's second frame is its first mirrored: a decoder that took another frame, or mixed them, would
    not give the first frame's pixels."""
    root, _ = corpus
    path = os.path.join(root, "animated.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == 2
        first = _fit(gif)
        gif.seek(1)
        second = _fit(gif)
    out = _decode(example_prep.prepare_pair(path, LOSSLESS)[0]).astype(int)
    np.testing.assert_array_equal(out, first)
    assert np.abs(out - second).mean() > 20  # the frames differ enough to tell which one was taken


def test_cmyk_jpeg_gives_the_srgb_colours_it_was_made_from(corpus):
    """The corpus CMYK JPEG is Pillow's CMYK of the corpus picture: reading it back must give that picture's colours
    (JPEG at quality 90 and a draft decode cost a level or two), not inverted (Adobe-style) or K-less ones."""
    root, _ = corpus
    out = _decode(example_prep.prepare_pair(os.path.join(root, "cmyk.jpg"), LOSSLESS)[0]).astype(int)
    difference = np.abs(out - _fit(Image.fromarray(image_corpus.colourful(180, 140))))
    assert difference.mean() < 1.5 and difference.max() <= 6, (difference.mean(), difference.max())


def test_embedded_wide_gamut_profile_is_converted_to_srgb(tmp_path):
    """An Adobe RGB photo's numbers mean other colours than sRGB's: they are converted with its profile, as
    ImageCms itself converts them, not read as if untagged."""
    icc = image_corpus.adobe_rgb_icc()
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    assert ImageCms.getProfileDescription(profile).strip() == "Adobe RGB (1998) compatible"
    pixels = image_corpus.colourful(80, 64, seed=2)
    path = tmp_path / "adobe.png"
    Image.fromarray(pixels).save(path, icc_profile=icc)
    expected = np.asarray(ImageCms.profileToProfile(Image.fromarray(pixels), profile, ImageCms.createProfile("sRGB"),
                                                    outputMode="RGB")).astype(int)
    assert np.abs(expected - pixels).mean() > 4  # the profile changes the colours: the test can tell
    out = np.asarray(example_prep.load_rgb(str(path), OPTIONS)).astype(int)
    assert np.abs(out - expected).max() <= 2
    stored = _decode(example_prep.prepare_pair(str(path), LOSSLESS)[0])
    assert np.abs(stored.astype(int) - _fit(Image.fromarray(expected.astype(np.uint8)))).max() <= 2  # and stored


def test_png_round_trip_equals_reference_resize_and_gray_is_its_luma():
    source = Image.fromarray(image_corpus.colourful(300, 200, seed=3))
    data = io.BytesIO()
    source.save(data, format="PNG")
    rgb_bytes, gray_bytes = example_prep.prepare_pair(data.getvalue(), LOSSLESS)
    expected = ImageOps.fit(source, (64, 64), Image.Resampling.LANCZOS)
    np.testing.assert_array_equal(_decode(rgb_bytes), np.asarray(expected))
    np.testing.assert_array_equal(_decode(gray_bytes), np.asarray(expected.convert("L")))


@pytest.mark.parametrize("mode", ["crop", "stretch", "pad"])
def test_resize_modes_keep_the_expected_content(mode):
    # Left half red, right half blue, 2:1 aspect.
    pixels = np.zeros((100, 200, 3), np.uint8)
    pixels[:, :100, 0] = 255
    pixels[:, 100:, 2] = 255
    out = np.asarray(example_prep.resize_square(Image.fromarray(pixels), 64, mode))
    assert out.shape == (64, 64, 3)
    middle = out[32]
    assert middle[4, 0] > 200 and middle[-5, 2] > 200  # red stays left, blue right
    if mode == "pad":
        assert out[2, 32].max() == 0 and out[-3, 32].max() == 0  # black bars above and below
    else:
        assert out[2, 4, 0] > 200  # no bars


def test_exif_orientation_is_applied(tmp_path):
    # Stored: top half red, bottom half blue; orientation 6 displays it rotated 90 degrees clockwise, so the red half
    # ends up on the right.
    pixels = np.zeros((150, 300, 3), np.uint8)
    pixels[:75, :, 0] = 255
    pixels[75:, :, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, quality=95, exif=exif.tobytes())
    out = _decode(example_prep.prepare_pair(str(path), OPTIONS)[0])
    assert out[32, 58, 0] > 200 and out[32, 58, 2] < 60
    assert out[32, 5, 2] > 200 and out[32, 5, 0] < 60


def test_alpha_is_composited_on_white():
    pixels = np.zeros((80, 80, 4), np.uint8)
    pixels[..., 0] = 255  # red, but fully transparent on the left half
    pixels[:, 40:, 3] = 255
    data = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(data, format="PNG")
    out = _decode(example_prep.prepare_pair(data.getvalue(), _options(image_size=80, encoding="png"))[0])
    np.testing.assert_array_equal(out[40, 5], [255, 255, 255])
    np.testing.assert_array_equal(out[40, 75], [255, 0, 0])


def test_sixteen_bit_rgb_keeps_its_colours():
    array8 = image_corpus.colourful(64, 64, seed=5)
    out = _decode(example_prep.prepare_pair(image_corpus.png_rgb16(array8.astype(np.uint16) * 257),
                                            LOSSLESS)[0])
    np.testing.assert_allclose(out.astype(int), array8.astype(int), atol=1)


def test_max_pixels_guard_reads_only_the_header():
    data = io.BytesIO()
    Image.fromarray(image_corpus.colourful(400, 300)).save(data, format="PNG")
    result = example_prep.prepare_task((data.getvalue(), _options(max_pixels=100_000)))
    assert result == example_prep.Skipped("too many pixels", "400x300 > --max_pixels=100000")


def test_jpeg_encoding_keeps_full_resolution_chroma():
    data = io.BytesIO()
    Image.fromarray(image_corpus.colourful(100, 100)).save(data, format="PNG")
    rgb_bytes, gray_bytes = example_prep.prepare_pair(data.getvalue(), _options(encoding="jpeg"))
    image = Image.open(io.BytesIO(rgb_bytes))
    assert image.format == "JPEG" and Image.open(io.BytesIO(gray_bytes)).mode == "L"
    from PIL import JpegImagePlugin
    assert JpegImagePlugin.get_sampling(image) == 0  # 4:4:4


def test_has_colour_tolerates_jpeg_noise_on_gray():
    rng = np.random.default_rng(0)
    gray = np.repeat(rng.integers(0, 256, (50, 50, 1)), 3, axis=-1)
    noisy = np.clip(gray + rng.integers(-4, 5, gray.shape), 0, 255).astype(np.uint8)
    assert not example_prep.has_colour(noisy)
    noisy[:10, :10, 0] = 255  # a small red patch (4% of pixels) is colour
    noisy[:10, :10, 1:] = 0
    assert example_prep.has_colour(noisy)


def test_only_the_formats_we_take_are_decoded_whatever_the_name(tmp_path):
    """An icon named .png was decoded into the dataset: Pillow tries every decoder it has unless told which."""
    Image.new("RGB", (64, 64), (200, 40, 40)).save(tmp_path / "icon.png", format="ICO")
    assert example_prep.prepare_task((str(tmp_path / "icon.png"), LOSSLESS)) == example_prep.Skipped(
        "not an image", "no decoder recognises the content")
