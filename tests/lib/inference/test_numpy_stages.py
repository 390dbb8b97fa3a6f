"""Tests of colorgan.inference.numpy_stages (and core.color_numpy): the TensorFlow-free canvas and recombination
held to `rendering`'s, which the SavedModel runs, and kept free of TensorFlow."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from colorgan.core import color
from colorgan.core import color_numpy
from colorgan.inference import numpy_stages
from colorgan.inference import rendering

RENDER_SIZE = 32
# Smaller and larger than the canvas, extreme aspects, a one-pixel side, more than one strip of rows.
SIZES = [(37, 53), (300, 200), (20, 20), (64, 300), (1, 5), (90, 1), (600, 301), (32, 32)]


def _gray(height, width, seed=0):
    rng = np.random.default_rng(seed)
    smooth = np.add.outer(np.linspace(0, 1, height), np.linspace(0, 0.5, width)) / 1.5
    return np.clip(smooth + rng.normal(0, 0.2, (height, width)), 0, 1).astype(np.float32)[np.newaxis, ..., np.newaxis]


def _chroma(seed=0):
    """Strong chroma, much of it outside sRGB: gamut fitting is exercised on most pixels."""
    return np.random.default_rng(seed).normal(0, 60, (1, RENDER_SIZE, RENDER_SIZE, 2)).astype(np.float32)


def test_placement_matches_rendering_for_every_size_up_to_300():
    for height in range(1, 301, 7):
        for width in range(1, 301, 3):
            expected = [int(v) for v in rendering.placement(height, width, RENDER_SIZE)]
            assert list(numpy_stages.placement(height, width, RENDER_SIZE)) == expected, (height, width)


@pytest.mark.parametrize("height, width", SIZES)
def test_canvas_matches_tensorflows_antialiased_resize(height, width):
    gray = _gray(height, width)
    expected = rendering.fit_canvas(tf.constant(gray), RENDER_SIZE)[0].numpy()
    canvas, hints = numpy_stages.NumpyPhotoStages(RENDER_SIZE).canvas(gray)
    assert canvas.shape == expected.shape == (1, RENDER_SIZE, RENDER_SIZE, 1)
    assert hints is None
    np.testing.assert_allclose(canvas, expected, atol=1e-5)


@pytest.mark.parametrize("height, width", SIZES)
def test_recombination_matches_rendering_to_a_level(height, width):
    gray, chroma = _gray(height, width, seed=height), _chroma(seed=width)
    stages = numpy_stages.NumpyPhotoStages(RENDER_SIZE)
    # uint8: equal but for a rare level where float rounding flips a gamut bisection step; uint16 within that
    # level (257) anywhere and within 4 of its 65535 nearly everywhere.
    for dtype, tf_dtype, close, fraction in ((np.uint8, tf.uint8, 0, 0.999), (np.uint16, tf.uint16, 4, 0.99)):
        expected = rendering.recombine(tf.constant(gray), tf.constant(chroma), RENDER_SIZE, tf_dtype).numpy()
        got = stages.recombine(gray, chroma, dtype)
        assert got.dtype == dtype and got.shape == (1, height, width, 3)
        difference = np.abs(got.astype(np.int64) - expected.astype(np.int64))
        assert difference.max() <= np.iinfo(dtype).max // 255, dtype
        assert (difference <= close).mean() >= fraction, dtype
    expected = rendering.recombine(tf.constant(gray), tf.constant(chroma), RENDER_SIZE).numpy()
    np.testing.assert_allclose(stages.recombine(gray, chroma), expected, atol=1 / 255)


@pytest.mark.parametrize("height, width", [(90, 130), (300, 40), (20, 20)])
def test_a_persons_points_land_on_the_canvas_as_rendering_places_them(height, width):
    rng = np.random.default_rng(height)
    xy = (rng.random((2, 9, 2)) * (width, height)).astype(np.float32)
    xy[0, 0] = (0, 0)  # corners clip into the canvas
    xy[0, 1] = (width - 1, height - 1)
    xy[1, :3] = xy[1, 3]  # overlapping patches average
    rgb = rng.random((2, 9, 3)).astype(np.float32)
    mask = (rng.random((2, 9)) < 0.8).astype(np.float32)
    gray = np.stack([_gray(height, width, seed)[0] for seed in (0, 1)])
    stages = numpy_stages.NumpyPhotoStages(RENDER_SIZE)
    canvas, hints = stages.canvas(gray, (xy, rgb, mask))
    expected_canvas, expected = rendering.fit_canvas_with_hints(tf.constant(gray), (xy, rgb, mask), RENDER_SIZE)
    np.testing.assert_allclose(canvas, expected_canvas.numpy(), atol=1e-5)
    assert hints.shape == (2, RENDER_SIZE, RENDER_SIZE, 3) and hints[..., 2].sum() > 0
    np.testing.assert_array_equal(hints[..., 2], expected.numpy()[..., 2])  # the same pixels covered
    np.testing.assert_allclose(hints, expected.numpy(), atol=1e-4)


def test_recombination_keeps_the_gray_photos_lightness():
    gray = _gray(120, 90)
    rgb = numpy_stages.recombine(gray, _chroma(), RENDER_SIZE)
    lightness = color.rgb_to_lab(rgb).numpy()[..., 0]
    np.testing.assert_allclose(lightness, color_numpy.lightness_from_gray(gray)[..., 0], atol=0.5)
    assert np.hypot(*np.moveaxis(color.rgb_to_lab(rgb).numpy()[..., 1:], -1, 0)).mean() > 10  # coloured, not gray


def test_colour_maths_match_the_tensorflow_ops():
    rng = np.random.default_rng(3)
    lab = np.concatenate([rng.uniform(0, 100, (4000, 1)), rng.normal(0, 80, (4000, 2))], -1).astype(np.float32)
    fitted = color_numpy.fit_chroma_to_gamut(lab)
    np.testing.assert_allclose(fitted, color.fit_chroma_to_gamut(lab).numpy(), atol=0.05)
    assert (np.abs(fitted[:, 1:]) < np.abs(lab[:, 1:]) - 1).any(axis=1).mean() > 0.3  # most were out of gamut
    np.testing.assert_allclose(color_numpy.lab_to_rgb(fitted), color.lab_to_rgb(fitted).numpy(), atol=1e-5)
    gray = rng.uniform(0, 1, (1000, 1)).astype(np.float32)
    np.testing.assert_allclose(color_numpy.lightness_from_gray(gray), color.lightness_from_gray(gray).numpy(),
                               atol=1e-4)


def test_the_tensorflow_free_modules_load_no_tensorflow():
    code = ("import sys; import colorgan.inference.colorizers, colorgan.inference.colorize_job; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
