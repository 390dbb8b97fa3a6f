"""Full-resolution colorization: the generator sees a small canvas, the photo keeps every pixel of its lightness.

The gray photo is fitted into a `render_size` square (aspect kept, edges repeated into the margin), the generator
predicts chroma there, and the chroma of the photo's own region is upsampled bilinearly to the photo's size and
joined with the photo's full-resolution L*. Colours sRGB cannot show lose chroma at fixed L* (never lightness), so
the output's L* is the gray input's. TensorFlow ops only: the same code runs in process and inside an exported
SavedModel, which is why TF Serving returns finished photos.
"""

import tensorflow as tf

from colorgan.core import color
from colorgan.inference import safe_decode
from colorgan.modeling import color_hints
from colorgan.modeling import hint_patches


def placement(height, width, render_size):
    """(top, left, height, width) of a height x width photo fitted into the render_size canvas: the longer side
    becomes R, the photo centred."""
    scale = tf.cast(render_size, tf.float32) / tf.cast(tf.maximum(height, width), tf.float32)
    fitted = [tf.clip_by_value(tf.cast(tf.round(tf.cast(side, tf.float32) * scale), tf.int32), 1, render_size)
              for side in (height, width)]
    return (render_size - fitted[0]) // 2, (render_size - fitted[1]) // 2, fitted[0], fitted[1]


def fit_canvas(gray, render_size):
    """gray [n, h, w, 1] -> (canvas [n, R, R, 1], `placement` of the photo inside it). The margin repeats the edge
    pixels, which disturbs a convolution less than a constant."""
    shape = tf.shape(gray)
    top, left, fitted_height, fitted_width = placed = placement(shape[1], shape[2], render_size)
    small = tf.image.resize(gray, [fitted_height, fitted_width], antialias=True)
    rows = tf.clip_by_value(tf.range(render_size) - top, 0, fitted_height - 1)
    columns = tf.clip_by_value(tf.range(render_size) - left, 0, fitted_width - 1)
    canvas = tf.gather(tf.gather(small, rows, axis=1), columns, axis=2)
    return tf.ensure_shape(canvas, [None, render_size, render_size, 1]), placed


# Rows joined and gamut-fitted at a time: full-resolution float intermediates stay at a few strips of the photo
# (a 24 MP photo would otherwise hold several 288 MB float32 copies at once).
STRIP_ROWS = 256


def canvas_hints(points, photo_size, placement, render_size):
    """A person's points on a photo -> hints [n, R, R, 3] on the canvas `fit_canvas` made of it.

    points: (xy [n, k, 2]: pixels from the photo's top-left, x rightwards, y downwards; rgb [n, k, 3]: their sRGB
    colours in [0, 1]; mask [n, k]: 1 for a point, 0 for padding). photo_size: (h, w); placement: fit_canvas's
    (top, left, height, width). Each point becomes a patch of POINT_SIDE_AT_256 px at 256 around where the photo's
    pixel lands on the canvas, holding the colour's a*b* (its L* is ignored: the photo's own lightness is kept)."""
    xy, rgb, mask = (tf.cast(value, tf.float32) for value in points)
    top, left, fitted_height, fitted_width = placement
    side = hint_patches.patch_side(hint_patches.POINT_SIDE_AT_256, render_size)

    def corner(coordinate, photo_side, offset, fitted_side):  # pixel centres map as tf.image.resize maps them
        centre = tf.cast(offset, tf.float32) + (coordinate + 0.5) * tf.cast(fitted_side / photo_side, tf.float32) - 0.5
        return tf.clip_by_value(tf.cast(tf.round(centre - (side - 1) / 2), tf.int32), 0, render_size - side)

    rows = corner(xy[..., 1], photo_size[0], top, fitted_height)
    columns = corner(xy[..., 0], photo_size[1], left, fitted_width)
    _, ab = color.rgb_to_model_lab(rgb)  # normalised as the training targets are
    return color_hints.paint(ab, rows, columns, tf.fill(tf.shape(rows), side), mask > 0.5, render_size, render_size)


def fit_canvas_with_hints(gray, points, render_size):
    """gray [n, h, w, 1] and a person's points on it (as `canvas_hints` takes them) -> (canvas, canvas hints)."""
    canvas, placed = fit_canvas(gray, render_size)
    return canvas, canvas_hints(points, tf.shape(gray)[1:3], placed, render_size)


def render_full_resolution(gray, predict_chroma, render_size, dtype=tf.float32, hints=None):
    """gray [n, h, w, 1] float in [0, 1] -> sRGB [n, h, w, 3] at the input's full resolution, as float32 in [0, 1]
    or as uint8 / uint16 (rounded): `fit_canvas`, `predict_chroma`, then `recombine`.

    predict_chroma: canvas [n, R, R, 1] gray in [0, 1] (and canvas hints [n, R, R, 3] when `hints` are given) ->
    a*, b* [n, R, R, 2] in CIE units (what the exported `chroma` and `chroma_hints` signatures compute). hints: a
    person's points, as `canvas_hints` takes them."""
    gray = tf.convert_to_tensor(gray, tf.float32)
    if hints is None:
        chroma = predict_chroma(fit_canvas(gray, render_size)[0])
    else:
        chroma = predict_chroma(*fit_canvas_with_hints(gray, hints, render_size))
    return recombine(gray, chroma, render_size, dtype)


def recombine(gray, chroma, render_size, dtype=tf.float32):
    """gray [n, h, w, 1] in [0, 1] + the chroma predicted on its canvas [n, R, R, 2] -> sRGB [n, h, w, 3] (as
    `render_full_resolution` returns it). The chroma of the photo's region is upsampled bilinearly
    (tf.image.resize's half-pixel sampling, done in two passes so the full-size chroma is only ever made one strip of
    rows at a time) and joined with the photo's own L*."""
    gray = tf.convert_to_tensor(gray, tf.float32)
    shape = tf.shape(gray)
    count, height, width = shape[0], shape[1], shape[2]
    top, left, fitted_height, fitted_width = placement(height, width, render_size)
    chroma = chroma[:, top:top + fitted_height, left:left + fitted_width, :]
    chroma = tf.image.resize(chroma, [fitted_height, width], method="bilinear")  # columns only: [n, h', w, 2]
    strips = (height + STRIP_ROWS - 1) // STRIP_ROWS
    gray = tf.pad(gray, [[0, 0], [0, strips * STRIP_ROWS - height], [0, 0], [0, 0]])
    row_scale = tf.cast(fitted_height, tf.float32) / tf.cast(height, tf.float32)

    def strip(index):
        image, first_row = index // strips, index % strips * STRIP_ROWS
        source = (tf.cast(first_row + tf.range(STRIP_ROWS), tf.float32) + 0.5) * row_scale - 0.5
        lower = tf.floor(source)
        weight = (source - lower)[:, tf.newaxis, tf.newaxis]
        rows = [tf.gather(chroma[image], tf.clip_by_value(tf.cast(lower, tf.int32) + offset, 0, fitted_height - 1))
                for offset in (0, 1)]
        lab = tf.concat([color.lightness_from_gray(gray[image, first_row:first_row + STRIP_ROWS]),
                         rows[0] * (1.0 - weight) + rows[1] * weight], axis=-1)
        return _convert(color.lab_to_rgb(color.fit_chroma_to_gamut(lab)), dtype)

    rgb = tf.map_fn(strip, tf.range(count * strips), parallel_iterations=1,
                    fn_output_signature=tf.TensorSpec([STRIP_ROWS, None, 3], dtype))
    return tf.reshape(rgb, [count, strips * STRIP_ROWS, width, 3])[:, :height]


def _convert(rgb, dtype):
    """Float [0, 1] -> `dtype`: unchanged for floats, rounded to the full range for integers."""
    if dtype.is_floating:
        return tf.cast(rgb, dtype)
    return tf.cast(tf.round(tf.clip_by_value(rgb, 0.0, 1.0) * dtype.max), dtype)


def gray_from_encoded(data, max_pixels):
    """An encoded photo (string scalar) -> gray [1, h, w, 1] in [0, 1]: refused before decoding where unsafe
    (`safe_decode`), decoded upright, the records' luma. What the export's bytes signatures and the service take."""
    return gray_from_u8(safe_decode.decode_upright(data, max_pixels)[tf.newaxis])


def gray_from_u8(images):
    """uint8 [n, h, w, c] with c = 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA) -> gray [n, h, w, 1] float in
    [0, 1]: transparency composited on white, colour reduced to the records' luma (PIL's "L")."""
    channels = tf.shape(images)[-1]
    images = tf.cast(images, tf.int32)

    def on_white(colour):
        alpha = images[..., -1:]
        return (colour * alpha + 255 * (255 - alpha) + 127) // 255

    gray = tf.switch_case(channels - 1, [
        lambda: images[..., :1],
        lambda: on_white(images[..., :1]),
        lambda: tf.cast(color.luma_u8(images[..., :3]), tf.int32),
        lambda: tf.cast(color.luma_u8(on_white(images[..., :3])), tf.int32),
    ])
    return tf.ensure_shape(tf.cast(gray, tf.float32), [None, None, None, 1]) / 255.0
