"""Evaluation metrics on RGB images in [0, 1], [b, h, w, 3], one value per example [b].

Per-example values let the trainer sum them across replicas and divide by the number of examples, so the mean does
not depend on how the evaluation batch was split.
"""

import tensorflow as tf

# tf.image.psnr is +inf for identical images; one such image would make the whole average infinite.
MAX_PSNR_DB = 100.0
SSIM_FILTER_SIZE = 11
# Hasler & Suesstrunk weight the mean chroma against its spread.
COLORFULNESS_MEAN_WEIGHT = 0.3


def psnr(a, b):
    """Peak signal-to-noise ratio in dB (max value 1.0), capped at MAX_PSNR_DB."""
    value = tf.image.psnr(tf.cast(a, tf.float32), tf.cast(b, tf.float32), max_val=1.0)
    return tf.minimum(value, MAX_PSNR_DB)


def ssim(a, b):
    """Structural similarity (max value 1.0). tf.image.ssim fails on images smaller than its 11-pixel Gaussian
    window, so the window shrinks to the smaller (static) image side there."""
    a, b = tf.cast(a, tf.float32), tf.cast(b, tf.float32)
    known_sides = [side for side in a.shape[-3:-1] if side is not None]
    return tf.image.ssim(a, b, max_val=1.0, filter_size=min([SSIM_FILTER_SIZE, *known_sides]))


def colorfulness(images):
    """Hasler & Suesstrunk (2003) colourfulness on 0..255 values: 0 for gray images, about 100+ for vivid ones.

    Tells whether a generator has collapsed to sepia or gray, which PSNR and SSIM hardly notice."""
    red, green, blue = tf.unstack(tf.cast(images, tf.float32) * 255.0, axis=-1)
    red_green = red - green
    yellow_blue = 0.5 * (red + green) - blue
    pixel_axes = [-2, -1]
    spread = tf.sqrt(tf.math.reduce_variance(red_green, axis=pixel_axes)
                     + tf.math.reduce_variance(yellow_blue, axis=pixel_axes))
    mean = tf.sqrt(tf.square(tf.reduce_mean(red_green, axis=pixel_axes))
                   + tf.square(tf.reduce_mean(yellow_blue, axis=pixel_axes)))
    return spread + COLORFULNESS_MEAN_WEIGHT * mean
