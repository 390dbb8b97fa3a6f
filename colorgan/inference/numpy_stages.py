"""`photo_stages`'s canvas (with a person's colour hints) and recombination in numpy, for colorizing without
TensorFlow (an ONNX or TFLite export): the same maths as `rendering`, down to TensorFlow's resize kernels, so such a
colorization matches the SavedModel's to within a level (tests/lib/inference/test_numpy_stages.py holds the two
together).

Not PIL's resize: its filters differ from tf.image.resize's by several levels of chroma at edges.
"""

import numpy as np

from colorgan.core import color_numpy
from colorgan.modeling import hint_patches

_F32 = np.float32
# Rows recombined at a time: the float intermediates of a large photo stay at one strip (as `rendering` does).
_STRIP_ROWS = 256


def placement(height, width, render_size):
    """`rendering.placement` of a height x width photo: (top, left, fitted height, fitted width)."""
    scale = _F32(render_size) / _F32(max(height, width))
    fitted = [int(np.clip(np.round(_F32(side) * scale), 1, render_size)) for side in (height, width)]
    return (render_size - fitted[0]) // 2, (render_size - fitted[1]) // 2, fitted[0], fitted[1]


def antialiased_resize_weights(input_size, output_size):
    """[output_size, input_size] weights of tf.image.resize(..., antialias=True) along one axis (TensorFlow's
    scale_and_translate with the triangle kernel, widened by the scale when shrinking; rows sum to 1)."""
    inverse_scale = _F32(1) / (_F32(output_size) / _F32(input_size))
    kernel_scale = max(inverse_scale, _F32(1))
    samples = (np.arange(output_size, dtype=_F32) + _F32(0.5)) * inverse_scale
    sources = np.arange(input_size, dtype=_F32) + _F32(0.5)
    weights = np.maximum(_F32(0), 1 - np.abs((sources[np.newaxis] - samples[:, np.newaxis]) / kernel_scale))
    return weights / weights.sum(axis=1, keepdims=True)


def bilinear_taps(input_size, output_size):
    """(lower, upper, fraction) of tf.image.resize's bilinear sampling (half-pixel centres) along one axis:
    output[i] = input[lower[i]] * (1 - fraction[i]) + input[upper[i]] * fraction[i]."""
    source = (np.arange(output_size, dtype=_F32) + _F32(0.5)) * (_F32(input_size) / _F32(output_size)) - _F32(0.5)
    lower = np.floor(source)
    fraction = (source - lower).astype(_F32)
    lower = lower.astype(np.int64)
    return np.clip(lower, 0, input_size - 1), np.clip(lower + 1, 0, input_size - 1), fraction


def fit_canvas(gray, render_size):
    """`rendering.fit_canvas`: gray [n, h, w, 1] in [0, 1] -> canvas [n, R, R, 1], the photo shrunk (antialiased)
    into the square's centre and its edge pixels repeated into the margin."""
    gray = np.asarray(gray, _F32)
    height, width = gray.shape[1:3]
    top, left, fitted_height, fitted_width = placement(height, width, render_size)
    rows = antialiased_resize_weights(height, fitted_height)
    columns = antialiased_resize_weights(width, fitted_width)
    small = np.einsum("ph,nhw,qw->npq", rows, gray[..., 0], columns, optimize=True).astype(_F32)
    row_index = np.clip(np.arange(render_size) - top, 0, fitted_height - 1)
    column_index = np.clip(np.arange(render_size) - left, 0, fitted_width - 1)
    return small[:, row_index][:, :, column_index][..., np.newaxis]


def canvas_hints(points, photo_size, placed, render_size):
    """`rendering.canvas_hints`: a person's points on a photo (xy [n, k, 2] pixels, rgb [n, k, 3] in [0, 1], mask
    [n, k]) -> hints [n, R, R, 3] on its canvas: each point a square patch of its a*b* (normalised as the targets
    are), overlapping patches averaged, the mask 1 under any patch."""
    xy, rgb, mask = (np.asarray(value, _F32) for value in points)
    top, left, fitted_height, fitted_width = placed
    side = hint_patches.patch_side(hint_patches.POINT_SIDE_AT_256, render_size)

    def corner(coordinate, photo_side, offset, fitted_side):  # pixel centres map as the resize maps them
        centre = offset + (coordinate + _F32(0.5)) * _F32(fitted_side / photo_side) - _F32(0.5)
        return np.clip(np.round(centre - _F32((side - 1) / 2)).astype(np.int64), 0, render_size - side)

    rows = corner(xy[..., 1], photo_size[0], top, fitted_height)
    columns = corner(xy[..., 0], photo_size[1], left, fitted_width)
    ab = color_numpy.rgb_to_lab(rgb)[..., 1:] / _F32(color_numpy.AB_SCALE)
    summed = np.zeros((len(xy), render_size, render_size, hint_patches.CHANNELS), _F32)
    for image, point in zip(*np.nonzero(mask > 0.5)):
        patch = summed[image, rows[image, point]:rows[image, point] + side,
                       columns[image, point]:columns[image, point] + side]
        patch[..., :2] += ab[image, point]
        patch[..., 2] += 1
    count = summed[..., 2:]
    return np.concatenate([summed[..., :2] / np.maximum(count, 1), (count > 0).astype(_F32)], axis=-1)


def recombine(gray, chroma, render_size, dtype=np.float32):
    """`rendering.recombine`: gray [n, h, w, 1] in [0, 1] + the chroma predicted on its canvas [n, R, R, 2] ->
    sRGB [n, h, w, 3] at the photo's resolution, float32 in [0, 1] or uint8 / uint16 over their full range."""
    gray = np.asarray(gray, _F32)
    count, height, width = gray.shape[:3]
    top, left, fitted_height, fitted_width = placement(height, width, render_size)
    chroma = np.asarray(chroma, _F32)[:, top:top + fitted_height, left:left + fitted_width]
    lower, upper, fraction = bilinear_taps(fitted_width, width)  # columns first, as rendering does
    chroma = chroma[:, :, lower] + (chroma[:, :, upper] - chroma[:, :, lower]) * fraction[:, np.newaxis]
    output = np.empty((count, height, width, 3), dtype)
    row_scale = _F32(fitted_height) / _F32(height)
    for first in range(0, height, _STRIP_ROWS):
        rows = np.arange(first, min(first + _STRIP_ROWS, height), dtype=_F32)
        source = (rows + _F32(0.5)) * row_scale - _F32(0.5)
        below = np.floor(source)
        weight = (source - below)[:, np.newaxis, np.newaxis]
        below = below.astype(np.int64)
        pair = [chroma[:, np.clip(below + offset, 0, fitted_height - 1)] for offset in (0, 1)]
        lab = np.concatenate([color_numpy.lightness_from_gray(gray[:, first:first + len(rows)]),
                              pair[0] * (1 - weight) + pair[1] * weight], axis=-1)
        rgb = color_numpy.lab_to_rgb(color_numpy.fit_chroma_to_gamut(lab))
        output[:, first:first + len(rows)] = _convert(rgb, np.dtype(dtype))
    return output


def _convert(rgb, dtype):
    if dtype.kind == "f":
        return rgb.astype(dtype)
    return np.round(np.clip(rgb, 0, 1) * _F32(np.iinfo(dtype).max))


class NumpyPhotoStages:
    """`photo_stages.PhotoStages` without TensorFlow: canvas and recombine, same arguments, same results."""

    def __init__(self, render_size):
        self.render_size = render_size

    def canvas(self, gray, hints=None):
        """gray float32 [n, h, w, 1] in [0, 1] (and hints: (xy [n, k, 2], rgb [n, k, 3], mask [n, k])) ->
        (canvas [n, R, R, 1], canvas hints [n, R, R, 3] or None)."""
        canvas = fit_canvas(gray, self.render_size)
        if hints is None:
            return canvas, None
        height, width = np.shape(gray)[1:3]
        return canvas, canvas_hints(hints, (height, width), placement(height, width, self.render_size),
                                    self.render_size)

    def recombine(self, gray, ab, dtype=np.float32):
        return recombine(gray, ab, self.render_size, dtype)
