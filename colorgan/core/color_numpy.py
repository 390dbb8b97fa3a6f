"""The colour constants, and the part of `color`'s maths that inference needs, in numpy: what colorizes without
TensorFlow (an ONNX export run by onnxruntime). `color` takes its constants from here, and tests hold the two
implementations to float32 rounding of each other.
"""

import numpy as np

# D65 reference white, and sRGB primaries -> CIE XYZ (IEC 61966-2-1).
WHITE = (0.95047, 1.0, 1.08883)
RGB_TO_XYZ = ((0.4124564, 0.3575761, 0.1804375),
              (0.2126729, 0.7151522, 0.0721750),
              (0.0193339, 0.1191920, 0.9503041))
XYZ_TO_RGB = np.linalg.inv(np.array(RGB_TO_XYZ))
EPSILON = 216.0 / 24389.0  # CIE's (6/29)^3
KAPPA = 24389.0 / 27.0
# a*, b* of sRGB colours stay within about +-110; dividing by it maps them to about [-1, 1].
AB_SCALE = 110.0
# Bisection steps of fit_chroma_to_gamut: the chroma kept is within 2**-12 of the largest sRGB can show.
GAMUT_BISECTION_STEPS = 12
GAMUT_TOLERANCE = 1e-6

_F32 = np.float32


def _matmul_channels(values, matrix):
    return values @ np.asarray(matrix, _F32).T


def _srgb_to_linear(rgb):
    return np.where(rgb <= 0.04045, rgb / _F32(12.92),
                    ((np.maximum(rgb, _F32(0.04045)) + _F32(0.055)) / _F32(1.055)) ** _F32(2.4))


def _linear_to_srgb(linear):
    return np.where(linear <= 0.0031308, linear * _F32(12.92),
                    _F32(1.055) * np.maximum(linear, _F32(0.0031308)) ** _F32(1.0 / 2.4) - _F32(0.055))


def _f(t):
    return np.where(t > EPSILON, np.cbrt(np.maximum(t, _F32(EPSILON))), (_F32(KAPPA) * t + 16) / _F32(116))


def _f_inverse(f):
    cube = f * f * f
    return np.where(cube > EPSILON, cube, (116 * f - 16) / _F32(KAPPA))


def rgb_to_lab(rgb):
    """sRGB float [0, 1] -> L* in [0, 100], a*, b* in about [-110, 110] (float32)."""
    xyz = _matmul_channels(_srgb_to_linear(np.asarray(rgb, _F32)), RGB_TO_XYZ) / np.asarray(WHITE, _F32)
    fx, fy, fz = np.moveaxis(_f(xyz), -1, 0)
    return np.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], axis=-1)


def _lab_to_linear_rgb(lab):
    fy = (lab[..., 0] + 16) / _F32(116)
    f = np.stack([fy + lab[..., 1] / _F32(500), fy, fy - lab[..., 2] / _F32(200)], axis=-1)
    return _matmul_channels(_f_inverse(f) * np.asarray(WHITE, _F32), XYZ_TO_RGB)


def lab_to_rgb(lab):
    """CIE L*a*b* -> sRGB, clipped to [0, 1] per channel."""
    linear = _lab_to_linear_rgb(np.asarray(lab, _F32))
    return np.clip(_linear_to_srgb(np.clip(linear, 0, 1)), 0, 1)


def _in_gamut(lab):
    linear = _lab_to_linear_rgb(lab)
    return np.all((linear >= -GAMUT_TOLERANCE) & (linear <= 1 + GAMUT_TOLERANCE), axis=-1)


def fit_chroma_to_gamut(lab):
    """`color.fit_chroma_to_gamut`: a*, b* scaled towards neutral at fixed L* until sRGB can show the colour, by
    bisection on the out-of-gamut pixels only."""
    lab = np.array(lab, _F32)
    outside = ~_in_gamut(lab)
    lightness, ab = lab[outside][:, :1], lab[outside][:, 1:]
    low, high = np.zeros_like(lightness), np.ones_like(lightness)
    for _ in range(GAMUT_BISECTION_STEPS):
        middle = _F32(0.5) * (low + high)
        fits = _in_gamut(np.concatenate([lightness, middle * ab], axis=-1))[:, np.newaxis]
        low, high = np.where(fits, middle, low), np.where(fits, high, middle)
    lab[outside, 1:] *= low
    return lab


def lightness_from_gray(gray):
    """A gray photo [0, 1] [..., 1] -> L* in [0, 100] of the neutral colour (g, g, g)."""
    return 116 * _f(_srgb_to_linear(np.asarray(gray, _F32))) - 16
