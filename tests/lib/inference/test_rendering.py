"""Tests of colorgan.inference.rendering: the strip-wise full-resolution path against a plain one-pass reference, the
canvas, and gray from every kind of uint8 image."""

import image_corpus
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from colorgan.core import color
from colorgan.inference import rendering


def _predict_chroma(canvas):
    """A fixed, spatially varying, strongly coloured 'model': a*, b* from the canvas and its position."""
    side = tf.cast(tf.shape(canvas)[1], tf.float32)
    ramp = tf.range(side)[tf.newaxis, :, tf.newaxis, tf.newaxis] / side
    return tf.concat([90.0 * canvas - 40.0 + 30.0 * ramp, 60.0 - 100.0 * ramp + 0.0 * canvas], axis=-1)


def _reference(gray, render_size):
    """The same maths in one pass over the whole photo (what the strips must reproduce)."""
    canvas, (top, left, height, width) = rendering.fit_canvas(gray, render_size)
    chroma = _predict_chroma(canvas)[:, top:top + height, left:left + width, :]
    chroma = tf.image.resize(chroma, tf.shape(gray)[1:3], method="bilinear")
    lab = tf.concat([color.lightness_from_gray(gray), chroma], axis=-1)
    return color.lab_to_rgb(color.fit_chroma_to_gamut(lab))


@pytest.mark.parametrize("height, width", [(600, 301), (257, 40), (1, 90), (90, 1), (256, 256)])
def test_strips_equal_the_one_pass_reference(height, width):
    rng = np.random.default_rng(height)
    gray = tf.constant(rng.uniform(0.0, 1.0, (2, height, width, 1)).astype(np.float32))
    strips = rendering.render_full_resolution(gray, _predict_chroma, 32)
    assert strips.shape == (2, height, width, 3)
    # Float rounding differs (two 1-D passes, bisection steps): far below one uint8 level (3.9e-3).
    np.testing.assert_allclose(strips.numpy(), _reference(gray, 32).numpy(), atol=5e-4)
    as_u8 = rendering.render_full_resolution(gray, _predict_chroma, 32, tf.uint8).numpy()
    np.testing.assert_array_equal(as_u8, np.round(np.clip(strips.numpy(), 0, 1) * 255).astype(np.uint8))
    assert rendering.render_full_resolution(gray, _predict_chroma, 32, tf.uint16).dtype == tf.uint16


def test_the_canvas_keeps_the_aspect_and_repeats_the_edges():
    gray = tf.constant(np.linspace(0.0, 1.0, 40 * 20, dtype=np.float32).reshape(1, 40, 20, 1))
    canvas, (top, left, height, width) = rendering.fit_canvas(gray, 16)
    assert canvas.shape == (1, 16, 16, 1) and (top, left, int(height), int(width)) == (0, 4, 16, 8)
    canvas = canvas.numpy()[0, ..., 0]
    np.testing.assert_array_equal(canvas[:, :4], np.repeat(canvas[:, 4:5], 4, axis=1))
    np.testing.assert_array_equal(canvas[:, 12:], np.repeat(canvas[:, 11:12], 4, axis=1))


def test_gray_from_u8_matches_pil_for_every_channel_count():
    rgb = image_corpus.colourful(23, 17)
    alpha = np.random.default_rng(0).integers(0, 256, (17, 23, 1), dtype=np.uint8)
    rgba = np.concatenate([rgb, alpha], axis=-1)
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    on_white = Image.alpha_composite(Image.new("RGBA", (23, 17), (255, 255, 255, 255)), Image.fromarray(rgba))
    cases = {
        1: (gray[..., np.newaxis], gray),
        2: (np.concatenate([gray[..., np.newaxis], alpha], -1),
            np.asarray(Image.alpha_composite(Image.new("RGBA", (23, 17), (255,) * 4),
                                             Image.fromarray(np.concatenate([np.repeat(gray[..., None], 3, -1), alpha],
                                                                            -1))).convert("L"))),
        3: (rgb, gray),
        4: (rgba, np.asarray(on_white.convert("RGB").convert("L"))),
    }
    for channels, (image, expected) in cases.items():
        result = rendering.gray_from_u8(tf.constant(image[np.newaxis])).numpy()[0, ..., 0] * 255.0
        assert np.abs(np.round(result) - expected).max() <= 1, channels


def test_a_persons_points_land_where_the_photo_lands_on_the_canvas():
    """A 200x100 photo at 64 px: fitted 64x32, 16 px of margin above. A point's patch (6 px at 256: 2 px here) sits
    where its pixel lands, holds the colour's a*b* (normalised; its L* is dropped), and padding leaves nothing."""
    colours = np.array([[[0.16, 0.36, 0.67], [0.2, 0.6, 0.1], [1.0, 0.0, 0.0]]], np.float32)
    xy = np.array([[[100, 50], [0, 0], [150, 90]]], np.float32)
    mask = np.array([[1, 1, 0]], np.float32)
    canvas, placement = rendering.fit_canvas(tf.zeros([1, 100, 200, 1]), 64)
    assert [int(value) for value in placement] == [16, 0, 32, 64]
    hints = rendering.canvas_hints((xy, colours, mask), (100, 200), placement, 64).numpy()[0]
    expected_mask = np.zeros((64, 64))
    expected_mask[31:33, 31:33] = 1  # centre (31.66, 31.66) -> the 2x2 patch from row / column 31
    expected_mask[15:17, 0:2] = 1  # (15.66, -0.34) -> clipped into the canvas
    np.testing.assert_array_equal(hints[..., 2], expected_mask)
    ab = color.normalize_ab(color.rgb_to_lab(tf.constant(colours[0, :2]))[..., 1:]).numpy()
    np.testing.assert_allclose(hints[31:33, 31:33, :2], np.broadcast_to(ab[0], (2, 2, 2)), atol=1e-6)
    np.testing.assert_allclose(hints[15:17, 0:2, :2], np.broadcast_to(ab[1], (2, 2, 2)), atol=1e-6)
    assert np.all(hints[expected_mask == 0] == 0)
