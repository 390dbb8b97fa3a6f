"""Colour maths as differentiable float32 TF ops: sRGB <-> CIE L*a*b* (D65) and the models' normalisation.

Lab separates lightness (known from the gray photo) from chroma (what the model must guess), which is why the
modern design predicts a*b* from L*. Inputs may have any leading batch dimensions; the last one is the channel.
Images may be float in [0, 1] or uint8 (the input pipeline's): for uint8 the per-channel curves are 256-entry
lookup tables, computed once by the same float ops, which makes the pipeline's Lab conversion several times cheaper.
"""

import functools

import tensorflow as tf

from colorgan.core import color_numpy
from colorgan.core import image_files

_WHITE = color_numpy.WHITE
_RGB_TO_XYZ = color_numpy.RGB_TO_XYZ
_XYZ_TO_RGB = color_numpy.XYZ_TO_RGB  # numpy: inside a tf.function (tf.data maps, compiled steps) no .numpy()
_EPSILON = color_numpy.EPSILON
_KAPPA = color_numpy.KAPPA
AB_SCALE = color_numpy.AB_SCALE
# ITU-R 601 luma weights: the records' gray channel (PIL "L").
LUMA_WEIGHTS = image_files.LUMA_WEIGHTS


def _matmul_channels(values, matrix):
    return tf.tensordot(values, tf.constant(matrix, tf.float32), axes=[[-1], [1]])


def _srgb_to_linear(rgb):
    return tf.where(rgb <= 0.04045, rgb / 12.92, tf.pow((tf.maximum(rgb, 0.04045) + 0.055) / 1.055, 2.4))


@functools.cache
def _u8_table(curve):
    """`curve` of the 256 uint8 values / 255, as numpy float32: computed eagerly once, even from inside a traced
    function (tf.data's maps, compiled steps)."""
    with tf.init_scope():
        return curve(tf.range(256, dtype=tf.float32) / 255.0).numpy()


def _unit_float(image):
    """Float [0, 1] from float [0, 1] or uint8."""
    image = tf.convert_to_tensor(image)
    return tf.cast(image, tf.float32) / 255.0 if image.dtype == tf.uint8 else tf.cast(image, tf.float32)


def _per_value(curve, image):
    """`curve` of an image: a table lookup for uint8, the float ops otherwise (floats in [0, 1])."""
    image = tf.convert_to_tensor(image)
    if image.dtype == tf.uint8:
        return tf.gather(tf.constant(_u8_table(curve)), tf.cast(image, tf.int32))
    return curve(tf.cast(image, tf.float32))


def _linear_to_srgb(linear):
    return tf.where(linear <= 0.0031308, linear * 12.92,
                    1.055 * tf.pow(tf.maximum(linear, 0.0031308), 1.0 / 2.4) - 0.055)


def _f(t):
    # The cube root as exp(log(t) / 3): a quarter cheaper than pow(t, 1/3) on CPU, within float32 rounding of it.
    return tf.where(t > _EPSILON, tf.exp(tf.math.log(tf.maximum(t, _EPSILON)) / 3.0), (_KAPPA * t + 16.0) / 116.0)


def _f_inverse(f):
    cube = f * f * f
    return tf.where(cube > _EPSILON, cube, (116.0 * f - 16.0) / _KAPPA)


def rgb_to_lab(rgb):
    """sRGB in [0, 1] (or uint8) -> L* in [0, 100], a*, b* in about [-110, 110]."""
    xyz = _matmul_channels(_per_value(_srgb_to_linear, rgb), _RGB_TO_XYZ) / tf.constant(_WHITE)
    fx, fy, fz = tf.unstack(_f(xyz), axis=-1)
    return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def _lab_to_linear_rgb(lab):
    """CIE L*a*b* -> linear sRGB, unclipped: outside [0, 1] where sRGB cannot show the colour."""
    lightness, a, b = tf.unstack(lab, axis=-1)
    fy = (lightness + 16.0) / 116.0
    f = tf.stack([fy + a / 500.0, fy, fy - b / 200.0], axis=-1)
    return _matmul_channels(_f_inverse(f) * tf.constant(_WHITE), _XYZ_TO_RGB)


def lab_to_rgb(lab):
    """CIE L*a*b* -> sRGB, clipped to [0, 1] per channel (Lab holds colours that sRGB cannot show; clipping a
    channel changes L*, which is why colorized photos go through fit_chroma_to_gamut first)."""
    linear = _lab_to_linear_rgb(tf.convert_to_tensor(lab, tf.float32))
    return tf.clip_by_value(_linear_to_srgb(tf.clip_by_value(linear, 0.0, 1.0)), 0.0, 1.0)


GAMUT_BISECTION_STEPS = color_numpy.GAMUT_BISECTION_STEPS
_GAMUT_TOLERANCE = color_numpy.GAMUT_TOLERANCE


def _in_gamut(lab):
    linear = _lab_to_linear_rgb(lab)
    return tf.reduce_all((linear >= -_GAMUT_TOLERANCE) & (linear <= 1.0 + _GAMUT_TOLERANCE), axis=-1)


def fit_chroma_to_gamut(lab):
    """Brings every colour into sRGB by scaling its a*, b* towards neutral at fixed L* (CIE hue and lightness kept),
    by bisection on the out-of-gamut pixels only. A per-channel clip would instead change L*, the one thing a
    colorization must keep from the gray photo. L* must lie in [0, 100] (neutral colours are then in gamut)."""
    lab = tf.convert_to_tensor(lab, tf.float32)
    outside = tf.where(~_in_gamut(lab))
    lightness = tf.gather_nd(lab[..., :1], outside)
    ab = tf.gather_nd(lab[..., 1:], outside)
    low, high = tf.zeros_like(lightness), tf.ones_like(lightness)
    for _ in range(GAMUT_BISECTION_STEPS):
        middle = 0.5 * (low + high)
        fits = _in_gamut(tf.concat([lightness, middle * ab], axis=-1))[:, tf.newaxis]
        low, high = tf.where(fits, middle, low), tf.where(fits, high, middle)
    scale = tf.tensor_scatter_nd_update(tf.ones_like(lab[..., :1]), outside, low)
    return tf.concat([lab[..., :1], lab[..., 1:] * scale], axis=-1)


def normalize_l(lightness):
    return lightness / 50.0 - 1.0


def denormalize_l(l_norm):
    return (l_norm + 1.0) * 50.0


def normalize_ab(ab):
    return ab / AB_SCALE


def denormalize_ab(ab_norm):
    return ab_norm * AB_SCALE


def rgb_to_model_lab(rgb):
    """sRGB [0, 1] (or uint8) -> (L in [-1, 1] [..., 1], ab in about [-1, 1] [..., 2]): what the Lab models see."""
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


def luma_u8(rgb):
    """The format's gray: PIL's "L" conversion of uint8 RGB, bit for bit (ITU-R 601 in 16-bit fixed point)."""
    rgb = tf.cast(rgb, tf.int32)
    weighted = rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000
    return tf.cast(tf.bitwise.right_shift(weighted, 16), tf.uint8)[..., tf.newaxis]


def lightness_from_gray(gray):
    """A gray photo [0, 1] [..., 1] -> L* in [0, 100] of the neutral colour (g, g, g) (whose Y is its linear value):
    the lightness every colorized output keeps, since the gray photo is the one thing known for certain."""
    return 116.0 * _f(_srgb_to_linear(tf.convert_to_tensor(gray, tf.float32))) - 16.0


def lab_from_gray(gray):
    """A gray photo [0, 1] (or uint8) [..., 1] -> the normalized L the Lab models take: L* of the neutral colour
    (g, g, g).

    Training feeds exactly this (from the dataset's gray image), so inference on a real black-and-white photo sees
    the same kind of input the model learnt from."""
    return _per_value(_normalized_lightness_from_gray, gray)


def _normalized_lightness_from_gray(gray):
    return normalize_l(lightness_from_gray(gray))


class ColorSpace:
    """What a generator predicts, and all that follows from it: its channels, its input made from a gray photo, its
    targets made from the colour photo, and how its outputs become sRGB or chroma. Every module asks this object,
    so no other module branches on the space's name."""

    name = ""
    channels = 0
    input_name = ""  # the generator's input layer
    output_name = ""  # the generator's output layer
    output_activation = ""  # what bounds the generator's output to the targets' range

    def model_input(self, gray):
        """Gray [0, 1] (or uint8) [..., 1] -> the generator's input."""
        raise NotImplementedError

    def targets(self, rgb):
        """sRGB [0, 1] (or uint8) [..., 3] -> what the generator should output."""
        raise NotImplementedError

    def to_rgb(self, inputs, outputs):
        """A generator's (inputs, outputs) -> sRGB [0, 1]."""
        raise NotImplementedError

    def chroma(self, inputs, outputs):
        """A generator's (inputs, outputs) -> the a*, b* (CIE units) of its prediction, which full-resolution
        colorization upsamples and joins with the photo's own L*."""
        raise NotImplementedError


class _Rgb(ColorSpace):
    """The seed's space: gray [0, 1] in, sRGB [0, 1] out."""

    name, channels, input_name, output_name, output_activation = "rgb", 3, "gray", "rgb", "sigmoid"

    def model_input(self, gray):
        return _unit_float(gray)

    def targets(self, rgb):
        return _unit_float(rgb)

    def to_rgb(self, inputs, outputs):
        return tf.clip_by_value(tf.cast(outputs, tf.float32), 0.0, 1.0)

    def chroma(self, inputs, outputs):
        return rgb_to_lab(self.to_rgb(inputs, outputs))[..., 1:]


class _Lab(ColorSpace):
    """pix2pix colorization's space: normalized L* in, normalized a*b* out (tanh)."""

    name, channels, input_name, output_name, output_activation = "lab", 2, "lightness", "ab", "tanh"

    def model_input(self, gray):
        return lab_from_gray(gray)

    def targets(self, rgb):
        return rgb_to_model_lab(rgb)[1]

    def to_rgb(self, inputs, outputs):
        return model_lab_to_rgb(inputs, outputs)

    def chroma(self, inputs, outputs):
        return denormalize_ab(tf.cast(outputs, tf.float32))


COLOR_SPACES = {space.name: space for space in (_Rgb(), _Lab())}


def color_space(name):
    """The ColorSpace called `name`; ValueError naming the choices otherwise."""
    if isinstance(name, ColorSpace):
        return name
    if name not in COLOR_SPACES:
        raise ValueError(f"color space {name!r}: expected one of {sorted(COLOR_SPACES)}")
    return COLOR_SPACES[name]
