"""Tests of colorgan.evaluation.image_metrics on images whose PSNR, SSIM and colourfulness are known."""

import numpy as np
import tensorflow as tf

from colorgan.evaluation import image_metrics


def random_images(shape, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(size=shape), tf.float32)


def test_psnr_of_known_mse_per_example():
    real = tf.fill([3, 8, 8, 3], 0.5)
    offsets = tf.constant([0.1, 0.01, -0.1])[:, tf.newaxis, tf.newaxis, tf.newaxis]
    # MSE 0.01 -> 10 * log10(1 / 0.01) = 20 dB; MSE 1e-4 -> 40 dB.
    value = image_metrics.psnr(real + offsets, real)
    assert value.shape == (3,)
    np.testing.assert_allclose(value.numpy(), [20.0, 40.0, 20.0], atol=1e-3)


def test_psnr_of_identical_images_is_capped():
    images = random_images([2, 8, 8, 3])
    value = image_metrics.psnr(images, images).numpy()
    np.testing.assert_array_equal(value, [image_metrics.MAX_PSNR_DB] * 2)
    mixed = image_metrics.psnr(images, tf.concat([images[:1], images[1:] + 0.1], axis=0)).numpy()
    assert np.all(np.isfinite(mixed)) and mixed[0] == image_metrics.MAX_PSNR_DB and mixed[1] < 25.0


def test_ssim_identical_is_one_and_noise_lowers_it():
    images = random_images([2, 16, 16, 3])
    np.testing.assert_allclose(image_metrics.ssim(images, images).numpy(), [1.0, 1.0], atol=1e-5)
    noise = tf.constant(np.random.default_rng(1).normal(0, 0.3, size=(2, 16, 16, 3)), tf.float32)
    noisy = image_metrics.ssim(tf.clip_by_value(images + noise, 0.0, 1.0), images).numpy()
    assert noisy.shape == (2,)
    assert np.all(noisy < 0.8)


def test_ssim_handles_images_smaller_than_the_window():
    images = random_images([2, 6, 9, 3])
    np.testing.assert_allclose(image_metrics.ssim(images, images).numpy(), [1.0, 1.0], atol=1e-5)
    noisy = image_metrics.ssim(images, tf.clip_by_value(images + 0.2 * random_images([2, 6, 9, 3], seed=2), 0, 1))
    assert noisy.shape == (2,) and np.all(noisy.numpy() < 1.0)


def test_metrics_work_inside_a_compiled_eval_step():
    step = tf.function(lambda a, b: (image_metrics.psnr(a, b), image_metrics.ssim(a, b), image_metrics.colorfulness(a)))
    images = random_images([2, 12, 12, 3])
    psnr, ssim, colorfulness = step(images, images)
    np.testing.assert_allclose(psnr.numpy(), [image_metrics.MAX_PSNR_DB] * 2)
    np.testing.assert_allclose(ssim.numpy(), [1.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(colorfulness.numpy(), image_metrics.colorfulness(images).numpy(), rtol=1e-5)


def test_colorfulness_of_gray_images_is_zero():
    gray = random_images([2, 8, 8, 1])
    np.testing.assert_allclose(image_metrics.colorfulness(tf.repeat(gray, 3, axis=-1)).numpy(), [0.0, 0.0], atol=1e-3)


def test_colorfulness_of_a_two_colour_image_matches_hand_computation():
    red, blue = [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]
    image = np.array([[red, blue], [red, blue]], np.float32)  # half red, half blue
    # Per pixel on 0..255: red has rg 255, yb 127.5; blue has rg 0, yb -255. Population std over the 4 pixels.
    rg, yb = np.array([255.0, 0.0]), np.array([127.5, -255.0])
    expected = np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())
    np.testing.assert_allclose(expected, np.hypot(127.5, 191.25) + 0.3 * np.hypot(127.5, 63.75))
    gray = np.full_like(image, 0.5)
    value = image_metrics.colorfulness(tf.constant(np.stack([image, gray])))
    assert value.shape == (2,)
    np.testing.assert_allclose(value.numpy(), [expected, 0.0], rtol=1e-5, atol=1e-3)
