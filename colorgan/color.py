"""Colour maths as differentiable float32 TF ops: sRGB <-> CIE L*a*b* (D65) and the models' normalisation.

Lab separates lightness (known from the gray photo) from chroma (what the model must guess), which is why the
modern design predicts a*b* from L*. Inputs may have any leading batch dimensions; the last one is the channel.
"""

import numpy as np
import tensorflow as tf

# D65 reference white, and sRGB primaries -> CIE XYZ (IEC 61966-2-1).
_WHITE = (0.95047, 1.0, 1.08883)
_RGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375),
               (0.2126729, 0.7151522, 0.0721750),
               (0.0193339, 0.1191920, 0.9503041))
# Inverted once here with numpy: inside a tf.function (tf.data maps, compiled steps) a tensor has no .numpy().
_XYZ_TO_RGB = np.linalg.inv(np.array(_RGB_TO_XYZ))
_EPSILON = 216.0 / 24389.0  # CIE's (6/29)^3
_KAPPA = 24389.0 / 27.0
# a*, b* of sRGB colours stay within about +-110; dividing by it maps them to about [-1, 1].
AB_SCALE = 110.0
# ITU-R 601 luma weights: the records' gray channel (PIL "L").
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def _matmul_channels(values, matrix):
    return tf.tensordot(values, tf.constant(matrix, tf.float32), axes=[[-1], [1]])


def _srgb_to_linear(rgb):
    return tf.where(rgb <= 0.04045, rgb / 12.92, tf.pow((tf.maximum(rgb, 0.04045) + 0.055) / 1.055, 2.4))


def _linear_to_srgb(linear):
    return tf.where(linear <= 0.0031308, linear * 12.92,
                    1.055 * tf.pow(tf.maximum(linear, 0.0031308), 1.0 / 2.4) - 0.055)


def _f(t):
    return tf.where(t > _EPSILON, tf.pow(tf.maximum(t, _EPSILON), 1.0 / 3.0), (_KAPPA * t + 16.0) / 116.0)


def _f_inverse(f):
    cube = f * f * f
    return tf.where(cube > _EPSILON, cube, (116.0 * f - 16.0) / _KAPPA)


def rgb_to_lab(rgb):
    """sRGB in [0, 1] -> L* in [0, 100], a*, b* in about [-110, 110]."""
    rgb = tf.convert_to_tensor(rgb, tf.float32)
    xyz = _matmul_channels(_srgb_to_linear(rgb), _RGB_TO_XYZ) / tf.constant(_WHITE)
    fx, fy, fz = tf.unstack(_f(xyz), axis=-1)
    return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab):
    """CIE L*a*b* -> sRGB, clipped to [0, 1] (Lab holds colours that sRGB cannot show)."""
    lab = tf.convert_to_tensor(lab, tf.float32)
    lightness, a, b = tf.unstack(lab, axis=-1)
    fy = (lightness + 16.0) / 116.0
    f = tf.stack([fy + a / 500.0, fy, fy - b / 200.0], axis=-1)
    xyz = _f_inverse(f) * tf.constant(_WHITE)
    linear = _matmul_channels(xyz, _XYZ_TO_RGB)
    return tf.clip_by_value(_linear_to_srgb(tf.clip_by_value(linear, 0.0, 1.0)), 0.0, 1.0)


def normalize_l(lightness):
    return lightness / 50.0 - 1.0


def denormalize_l(l_norm):
    return (l_norm + 1.0) * 50.0


def normalize_ab(ab):
    return ab / AB_SCALE


def denormalize_ab(ab_norm):
    return ab_norm * AB_SCALE


def rgb_to_model_lab(rgb):
    """sRGB [0, 1] -> (L in [-1, 1] [..., 1], ab in about [-1, 1] [..., 2]): what the Lab models see."""
    lab = rgb_to_lab(rgb)
    return normalize_l(lab[..., :1]), normalize_ab(lab[..., 1:])


def model_lab_to_rgb(l_norm, ab_norm):
    """The inverse of rgb_to_model_lab: normalized L and ab -> sRGB [0, 1]."""
    l_norm = tf.cast(l_norm, tf.float32)
    ab_norm = tf.cast(ab_norm, tf.float32)
    return lab_to_rgb(tf.concat([denormalize_l(l_norm), denormalize_ab(ab_norm)], axis=-1))


def luma(rgb):
    """ITU-R 601 luma of sRGB [0, 1], keeping a channel dimension of 1: the float form of the records' gray."""
    return _matmul_channels(tf.convert_to_tensor(rgb, tf.float32), (LUMA_WEIGHTS,))


def lab_from_gray(gray):
    """A gray photo [0, 1] [..., 1] -> the normalized L the Lab models take: L* of the neutral colour (g, g, g).

    Training feeds exactly this (from the dataset's gray image), so inference on a real black-and-white photo sees
    the same kind of input the model learnt from."""
    gray = tf.convert_to_tensor(gray, tf.float32)
    luminance = _srgb_to_linear(gray)  # a neutral colour's Y equals its linear value
    return normalize_l(116.0 * _f(luminance) - 16.0)
