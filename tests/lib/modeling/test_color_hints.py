"""Tests of colorgan.modeling.color_hints: patches reveal the mean ab under them and nothing else, and the training
simulation follows Zhang et al. 2017's distribution (geometric count, 1-9 px patches at 256, centred normal
placement), drawn per example so a replica's rows are the global batch's."""

import numpy as np
import tensorflow as tf

from colorgan.modeling import color_hints
from colorgan.modeling import example_noise


def _ab(batch=2, size=16, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, (batch, size, size, 2)), tf.float32)


def test_a_patch_reveals_the_mean_ab_under_it_and_the_mask_marks_exactly_the_patch():
    ab = _ab()
    top, left, side = (tf.constant(values, tf.int32) for values in ([[2, 9], [0, 0]], [[3, 12], [5, 5]],
                                                                   [[4, 1], [3, 3]]))
    active = tf.constant([[True, True], [True, False]])  # the second example's second point is padding
    hints = color_hints.reveal(ab, top, left, side, active).numpy()
    assert hints.shape == (2, 16, 16, 3)
    expected_mask = np.zeros((2, 16, 16))
    expected_mask[0, 2:6, 3:7] = expected_mask[0, 9, 12] = expected_mask[1, 0:3, 5:8] = 1
    np.testing.assert_array_equal(hints[..., 2], expected_mask)
    np.testing.assert_allclose(hints[0, 2:6, 3:7, :2], np.broadcast_to(ab[0, 2:6, 3:7].numpy().mean((0, 1)),
                                                                      (4, 4, 2)), atol=1e-6)
    np.testing.assert_allclose(hints[0, 9, 12, :2], ab[0, 9, 12], atol=1e-6)
    np.testing.assert_allclose(hints[1, 0:3, 5:8, :2], np.broadcast_to(ab[1, 0:3, 5:8].numpy().mean((0, 1)),
                                                                      (3, 3, 2)), atol=1e-6)
    assert np.all(hints[..., :2][expected_mask == 0] == 0)


def test_overlapping_patches_average_their_means():
    ab = _ab(batch=1)
    hints = color_hints.reveal(ab, tf.constant([[0, 1]]), tf.constant([[0, 1]]), tf.constant([[2, 2]]),
                               tf.constant([[True, True]])).numpy()
    first, second = ab[0, 0:2, 0:2].numpy().mean((0, 1)), ab[0, 1:3, 1:3].numpy().mean((0, 1))
    np.testing.assert_allclose(hints[0, 1, 1, :2], (first + second) / 2, atol=1e-6)
    np.testing.assert_allclose(hints[0, 0, 0, :2], first, atol=1e-6)
    assert hints[0, 1, 1, 2] == 1


def test_the_simulation_follows_the_papers_distribution():
    batch, size = 4000, 256
    draws = example_noise.ExampleNoise(example_noise.step_seed(7, 3), 0, batch)
    top, left, side, active = (value.numpy() for value in color_hints.sample_points(draws, batch, size))
    counts = active.sum(1)
    # Geometric with p = 1/8: P(0) = 1/8, mean (1 - p) / p = 7 (the cap at 40 takes off ~0.04).
    assert abs((counts == 0).mean() - 1 / 8) < 0.02 and abs(counts.mean() - 7.0) < 0.4
    assert counts.max() <= color_hints.MAX_POINTS and np.all(active[:, :-1] >= active[:, 1:])  # a prefix is active
    assert set(np.unique(side)) == set(range(1, 10))
    assert np.all(top >= 0) and np.all(top + side <= size) and np.all(left + side <= size)
    # Corners normal around the centre, sigma a quarter of the free side: about 68% within one sigma.
    centred = np.abs(top + side / 2 - size / 2) < (size - side + 1) / 4
    assert abs(centred.mean() - 0.68) < 0.03
    # Sides scale with the image: at 32 px every patch is 1 px (9 px at 256 is 1.1 there); at 64, 1 or 2.
    assert set(np.unique(color_hints.sample_points(draws, 100, 32)[2].numpy())) == {1}
    assert set(np.unique(color_hints.sample_points(draws, 100, 64)[2].numpy())) == {1, 2}


def test_each_replica_draws_its_rows_of_the_global_batch():
    ab = _ab(batch=4)
    seed = example_noise.step_seed(1, 5)
    whole = color_hints.simulated(ab, example_noise.ExampleNoise(seed, 0, 4), 16, recolor=0.5)
    halves = [color_hints.simulated(ab[first:first + 2], example_noise.ExampleNoise(seed, first, 4), 16, recolor=0.5)
              for first in (0, 2)]
    for index in (0, 1):  # targets, hints
        np.testing.assert_array_equal(whole[index].numpy(), tf.concat([half[index] for half in halves], 0).numpy())
    again = color_hints.simulated(ab, example_noise.ExampleNoise(example_noise.step_seed(1, 6), 0, 4), 16)
    assert not np.array_equal(whole[1].numpy(), again[1].numpy())  # the next data position draws other hints


def test_recolor_rotates_the_hue_of_examples_with_points_and_hints_follow_it():
    batch = 64
    ab = _ab(batch=batch)
    draws = example_noise.ExampleNoise(example_noise.step_seed(3, 1), 0, batch)
    has_points = np.any(color_hints.sample_points(draws, batch, 16)[3].numpy(), axis=1)
    same, _ = color_hints.simulated(ab, draws, 16, recolor=0.0)
    np.testing.assert_array_equal(same.numpy(), ab.numpy())
    targets, hints = (value.numpy() for value in color_hints.simulated(ab, draws, 16, recolor=1.0))
    np.testing.assert_allclose(np.hypot(*np.moveaxis(targets, -1, 0)), np.hypot(*np.moveaxis(ab.numpy(), -1, 0)),
                               atol=1e-5)  # a rotation: chroma kept, hue moved
    changed = np.abs(targets - ab.numpy()).max(axis=(1, 2, 3)) > 1e-3
    np.testing.assert_array_equal(changed, has_points)  # every example with points, and none without
    assert 0 < has_points.sum() < batch
    # The hints are revealed from the recolored targets, at the points the draws place.
    np.testing.assert_allclose(hints, color_hints.reveal(targets, *color_hints.sample_points(draws, batch, 16)),
                               atol=1e-6)


def test_a_hinted_fraction_gives_points_to_that_share_of_the_examples_and_none_to_the_rest():
    batch = 256
    ab = _ab(batch=batch, size=16)
    draws = example_noise.ExampleNoise(example_noise.step_seed(3, 1), 0, batch)
    all_targets, all_hints = color_hints.simulated(ab, draws, 16, recolor=1.0)
    for hinted in (1.0, tf.constant(1.0)):
        targets, hints = color_hints.simulated(ab, draws, 16, recolor=1.0, hinted=hinted)
        np.testing.assert_array_equal(hints.numpy(), all_hints.numpy())
    targets, hints = color_hints.simulated(ab, draws, 16, recolor=1.0, hinted=0.0)
    assert not hints.numpy().any()
    np.testing.assert_array_equal(targets.numpy(), ab.numpy())  # nothing recolored without points
    _, hints = color_hints.simulated(ab, draws, 16, recolor=1.0, hinted=0.5)
    with_points = hints.numpy()[..., 2].any(axis=(1, 2))
    had_points = all_hints.numpy()[..., 2].any(axis=(1, 2))
    assert not (with_points & ~had_points).any()  # a subset of the examples that get points at 1.0, same points
    np.testing.assert_array_equal(hints.numpy()[with_points], all_hints.numpy()[with_points])
    assert 0.35 < with_points.sum() / had_points.sum() < 0.65
