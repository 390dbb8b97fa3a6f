"""Colour hints: a few points whose true a*b* a person (or a simulation of one) reveals, as a generator's extra input.

A hints generator takes, beside L, three channels at its own size: the hints' a*, b* (normalised as the targets are)
and a mask of where hints are. Training draws them as Zhang et al. 2017 ("Real-Time User-Guided Image Colorization
with Learned Deep Priors"; richzhang/colorization-pytorch, `add_color_patches_rand_gt`) do, from the real ab inside
the compiled step, with the step's stateless draws (`example_noise`), so resume and replica count leave them
unchanged:
- the number of points is geometric, P(k) = (1 - p)^k p with p = 1/8 (one example in eight gets none, so the model
  still colorizes alone; mean 7), drawn by inverse CDF and capped at MAX_POINTS, a fixed count plus a mask so shapes
  stay static for XLA;
- each point is a square patch, its side drawn uniformly from 1..9 px at 256 px and scaled to the image size, its
  top-left corner normal around the centre (sigma a quarter of the free side), clipped into the image;
- a patch reveals the mean ab of the real image over it. Where patches overlap, their means are averaged (the
  reference overwrites with the later one: an arbitrary order this keeps out of the maths);
- beyond the paper, for small datasets (`simulated`'s recolor): a fraction of the examples with points have their
  colours rotated by a random hue angle first.
"""

import math

import tensorflow as tf

from colorgan.modeling import hint_patches

GEOMETRIC_P = 1 / 8
MAX_POINTS = 40  # P(k >= 40) = (7/8)^40 = 0.5%: those examples get 40


def none_like(model_input):
    """No hints for a batch of generator inputs [b, s, s, 1]: zero ab, zero mask."""
    return tf.zeros(tf.concat([tf.shape(model_input)[:-1], [hint_patches.CHANNELS]], 0), model_input.dtype)


def reveal(ab, top, left, side, active):
    """Hints [b, s, s, 3] revealing, for each active point, the mean of `ab` [b, s, s, 2] over its square patch.

    top, left, side: int32 [b, k] (patches inside the image); active: bool [b, k]. Built from per-point row and
    column indicators with matmuls, never a [b, k, s, s] tensor.
    """
    ab = tf.cast(ab, tf.float32)
    height, width = tf.shape(ab)[1], tf.shape(ab)[2]
    rows, columns = _inside(top, side, height), _inside(left, side, width)
    batch, points = tf.shape(rows)[0], tf.shape(rows)[1]
    # Sum of ab over each patch: rows [b, k, h] @ ab [b, h, w*2], then over the patch's columns.
    row_sums = tf.reshape(tf.matmul(rows, tf.reshape(ab, [batch, height, width * 2])), [batch, points, width, 2])
    area = tf.cast(side * side, tf.float32)[..., tf.newaxis]
    means = tf.reduce_sum(row_sums * columns[..., tf.newaxis], axis=2) / area  # [b, k, 2]
    return paint(means, top, left, side, active, height, width)


def paint(values, top, left, side, active, height, width):
    """Hints [b, height, width, 3]: each active point's square patch holds its values [b, k, 2] (normalised ab),
    the mask 1 there; overlapping patches average their values."""
    rows = _inside(top, side, height) * tf.cast(active, tf.float32)[..., tf.newaxis]
    columns = _inside(left, side, width)
    batch, points = tf.shape(rows)[0], tf.shape(rows)[1]
    values = tf.cast(values, tf.float32)
    # rows^T [b, h, k] @ (columns x [a, b, 1]) [b, k, w*3]; the third channel counts the patches over a pixel.
    painted = columns[..., tf.newaxis] * tf.concat([values, tf.ones_like(values[..., :1])], -1)[:, :, tf.newaxis]
    summed = tf.reshape(tf.matmul(rows, tf.reshape(painted, [batch, points, width * 3]), transpose_a=True),
                        [batch, height, width, 3])
    count = summed[..., 2:]
    return tf.concat([summed[..., :2] / tf.maximum(count, 1.0), tf.cast(count > 0, tf.float32)], -1)


def _inside(start, side, size):
    """[b, k, size]: 1 where a row (column) index lies in each point's patch [start, start + side)."""
    index = tf.range(size)[tf.newaxis, tf.newaxis]
    return tf.cast((index >= start[..., tf.newaxis]) & (index < (start + side)[..., tf.newaxis]), tf.float32)


def simulated(ab, draws, image_size, recolor=0.0, hinted=1.0):
    """(targets, hints) for training: the real ab [b, s, s, 2] (normalised), the colours of a `recolor` fraction of
    the examples that get points rotated by a random hue angle, and the hints [b, s, s, 3] drawn from those targets
    with `draws` (an example_noise.ExampleNoise) as the module docstring says, for a `hinted` fraction of the
    examples (the others get none; the trainer's ramp, --hints_ramp_steps, grows it from 0 to 1).

    Why recolor: on a small dataset the model knows every training colour from L alone, so hints carry nothing it
    needs and it learns to ignore them (measured: 0 and 10 points gave the same result). Rotating the hue of a
    hinted example makes its colours unknowable but from its points, which teaches carrying a given colour over its
    region; examples without points keep their colours, so the model still colorizes alone."""
    top, left, side, active = sample_points(draws, tf.shape(ab)[0], image_size)
    active &= (draws.uniform("hinted", tf.shape(ab)[:1]) < hinted)[:, tf.newaxis]
    angle = draws.uniform("hint_hue", tf.shape(ab)[:1], maxval=2 * math.pi) * tf.cast(
        (draws.uniform("hint_recolor", tf.shape(ab)[:1]) < recolor) & tf.reduce_any(active, axis=1), tf.float32)
    cos, sin = (tf.cast(f(angle), ab.dtype)[:, tf.newaxis, tf.newaxis] for f in (tf.cos, tf.sin))
    ab = tf.stack([cos * ab[..., 0] - sin * ab[..., 1], sin * ab[..., 0] + cos * ab[..., 1]], axis=-1)
    return ab, reveal(ab, top, left, side, active)


def sample_points(draws, batch, image_size):
    """(top, left, side, active) [batch, MAX_POINTS] of training hints: the points and patches of `simulated`."""
    # Inverse CDF of the geometric distribution: k = floor(log(u) / log(1 - p)), u in (0, 1].
    uniform = 1.0 - draws.uniform("hint_count", [batch])
    count = tf.minimum(tf.floor(tf.math.log(uniform) / math.log(1.0 - GEOMETRIC_P)), MAX_POINTS)
    active = tf.range(MAX_POINTS, dtype=tf.float32)[tf.newaxis] < count[:, tf.newaxis]
    sides = tf.constant([hint_patches.patch_side(side, image_size) for side in hint_patches.PATCH_SIDES_AT_256],
                        tf.int32)
    pick = tf.cast(draws.uniform("hint_side", [batch, MAX_POINTS]) * len(hint_patches.PATCH_SIDES_AT_256), tf.int32)
    side = tf.gather(sides, tf.minimum(pick, len(hint_patches.PATCH_SIDES_AT_256) - 1))

    def corner(name):
        free = tf.cast(image_size - side + 1, tf.float32)  # positions a patch's corner can take
        position = draws.normal(name, [batch, MAX_POINTS]) * free / 4 + free / 2
        return tf.cast(tf.clip_by_value(position, 0.0, tf.cast(image_size - side, tf.float32)), tf.int32)

    return corner("hint_top"), corner("hint_left"), side, active
