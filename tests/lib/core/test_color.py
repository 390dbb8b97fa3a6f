"""Tests of colorgan.core.color: the Lab round trip over the sRGB cube, reference values, normalisation, luma,
gradients."""

import numpy as np
import pytest
import tensorflow as tf

from colorgan.core import color

GRID_STEP = 3  # 86 levels per channel, 0 and 255 included: 636,056 colours


def colour_grid_chunks(step=GRID_STEP, chunks=8):
    """Every grid colour as uint8 [n, 3], in chunks so the float intermediates stay small."""
    levels = np.arange(0, 256, step, dtype=np.uint8)
    assert levels[-1] == 255
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    return np.array_split(grid, chunks)


def test_model_lab_round_trip_over_the_srgb_cube():
    worst = 0.0
    for rgb_u8 in colour_grid_chunks():
        rgb = rgb_u8.astype(np.float32) / 255.0
        l_norm, ab_norm = color.rgb_to_model_lab(rgb)
        back = color.model_lab_to_rgb(l_norm, ab_norm).numpy()
        worst = max(worst, float(np.abs(back - rgb).max()))
        np.testing.assert_array_equal(np.round(back * 255.0).astype(np.uint8), rgb_u8)
    assert worst < 1.0 / 255.0


@pytest.mark.parametrize("rgb, lab", [
    ((1.0, 1.0, 1.0), (100.0, 0.0, 0.0)),
    ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    ((1.0, 0.0, 0.0), (53.24, 80.09, 67.20)),
    ((0.0, 1.0, 0.0), (87.73, -86.18, 83.18)),
    ((0.0, 0.0, 1.0), (32.30, 79.19, -107.86)),
])
def test_known_lab_values(rgb, lab):
    np.testing.assert_allclose(color.rgb_to_lab(tf.constant(rgb)).numpy(), lab, atol=0.01)
    np.testing.assert_allclose(color.lab_to_rgb(tf.constant(lab)).numpy(), rgb, atol=1e-3)


def test_normalised_ranges_cover_srgb():
    l_min, l_max, ab_max = np.inf, -np.inf, 0.0
    for rgb_u8 in colour_grid_chunks():
        l_norm, ab_norm = color.rgb_to_model_lab(rgb_u8.astype(np.float32) / 255.0)
        l_min, l_max = min(l_min, float(tf.reduce_min(l_norm))), max(l_max, float(tf.reduce_max(l_norm)))
        ab_max = max(ab_max, float(tf.reduce_max(tf.abs(ab_norm))))
    np.testing.assert_allclose([l_min, l_max], [-1.0, 1.0], atol=1e-5)
    assert 0.9 < ab_max <= 1.0  # blue's b* of -107.9 is the extreme


def test_normalisation_inverts():
    values = tf.constant([0.0, 25.0, 100.0])
    np.testing.assert_allclose(color.denormalize_l(color.normalize_l(values)).numpy(), values.numpy(), atol=1e-5)
    np.testing.assert_allclose(color.normalize_l(values).numpy(), [-1.0, -0.5, 1.0])
    np.testing.assert_allclose(color.denormalize_ab(color.normalize_ab(values)).numpy(), values.numpy(), atol=1e-4)


def test_luma_matches_the_records_integer_luma():
    for rgb_u8 in colour_grid_chunks(step=5, chunks=1):
        float_luma = color.luma(rgb_u8.astype(np.float32) / 255.0).numpy() * 255.0
        integer_luma = color.luma_u8(rgb_u8).numpy().astype(np.float32)
        assert float_luma.shape == integer_luma.shape == (len(rgb_u8), 1)
        # PIL rounds a 16-bit fixed-point 601 luma: at most half a level, plus the fixed point's tiny weight error.
        assert np.abs(float_luma - integer_luma).max() <= 0.51


def test_lab_from_gray_is_l_of_the_neutral_colour():
    gray = np.arange(256, dtype=np.float32).reshape(1, 16, 16, 1) / 255.0
    l_norm, ab_norm = color.rgb_to_model_lab(np.repeat(gray, 3, axis=-1))
    from_gray = color.lab_from_gray(gray)
    assert from_gray.shape == (1, 16, 16, 1)
    np.testing.assert_allclose(from_gray.numpy(), l_norm.numpy(), atol=1e-5)
    np.testing.assert_allclose(ab_norm.numpy(), 0.0, atol=1e-4)


def test_conversions_are_differentiable_with_finite_gradients():
    # Black, white, the sRGB and CIE breakpoints, and random colours.
    rgb = tf.Variable(np.concatenate([
        [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [0.04045, 0.04045, 0.04045], [0.0, 0.5, 1.0], [0.02, 0.0, 0.01]],
        np.random.default_rng(0).uniform(size=(27, 3))]).astype(np.float32))
    with tf.GradientTape() as tape:
        lab = color.rgb_to_lab(rgb)
    gradient = tape.gradient(lab, rgb)
    assert gradient is not None and np.all(np.isfinite(gradient.numpy()))
    assert np.any(gradient.numpy() != 0.0)
    ab = tf.Variable(tf.zeros([4, 2]))
    with tf.GradientTape() as tape:
        back = color.model_lab_to_rgb(tf.constant([[-1.0], [-0.5], [0.0], [0.5]]), ab)
    gradient = tape.gradient(back, ab)
    assert gradient is not None and np.all(np.isfinite(gradient.numpy()))
    assert np.any(gradient.numpy() != 0.0)


def test_conversions_work_inside_tf_function():
    """tf.data maps and compiled steps trace these functions in graph mode."""
    rgb = tf.constant([[0.2, 0.4, 0.6], [1.0, 0.0, 0.0]])
    round_trip = tf.function(lambda x: color.model_lab_to_rgb(*color.rgb_to_model_lab(x)))
    np.testing.assert_allclose(round_trip(rgb).numpy(), rgb.numpy(), atol=1e-4)


def test_uint8_images_convert_as_their_float_values_do():
    """The input pipeline hands uint8 images to the colour maths, which then look their curves up in tables: the
    same values as the float path on image / 255, for every gray level and for colour pixels."""
    gray = np.arange(256, dtype=np.uint8).reshape(16, 16, 1)
    rgb = np.random.default_rng(0).integers(0, 256, (32, 32, 3)).astype(np.uint8)
    np.testing.assert_allclose(color.lab_from_gray(gray), color.lab_from_gray(gray / np.float32(255)), atol=1e-6)
    np.testing.assert_allclose(color.rgb_to_lab(rgb), color.rgb_to_lab(rgb / np.float32(255)), atol=1e-4)
    for name in ("rgb", "lab"):
        space = color.color_space(name)
        np.testing.assert_allclose(space.model_input(gray), space.model_input(gray / np.float32(255)), atol=1e-6)
        np.testing.assert_allclose(space.targets(rgb), space.targets(rgb / np.float32(255)), atol=1e-6)
