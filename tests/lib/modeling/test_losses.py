"""Tests of colorgan.modeling.losses against hand-computed values, and the per-example contract the trainer relies
on."""

import numpy as np
import pytest
import tensorflow as tf

from colorgan.modeling import example_noise
from colorgan.modeling import losses


def softplus(x):
    return np.log1p(np.exp(x))


def column(*values):
    """Seed-discriminator scores [b, 1]."""
    return tf.constant(values, tf.float32)[:, tf.newaxis]


def test_non_saturating_from_logits_on_hand_values():
    loss = losses.adversarial_loss("non_saturating", from_logits=True)
    real, fake = column(2.0, -1.0), column(0.5, -3.0)
    # BCE(x, target 1) = softplus(-x), BCE(x, target 0) = softplus(x).
    expected_d = [softplus(-2.0) + softplus(0.5), softplus(1.0) + softplus(-3.0)]
    np.testing.assert_allclose(loss.discriminator(real, fake).numpy(), expected_d, rtol=1e-6)
    np.testing.assert_allclose(loss.generator(fake).numpy(), [softplus(-0.5), softplus(3.0)], rtol=1e-6)


def test_non_saturating_with_labels_uses_them_as_targets():
    loss = losses.adversarial_loss("non_saturating")
    real, fake = column(2.0), column(-1.0)
    p_real, p_fake = 1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(1.0))
    expected = (-(0.9 * np.log(p_real) + 0.1 * np.log(1 - p_real))
                - (0.05 * np.log(p_fake) + 0.95 * np.log(1 - p_fake)))
    value = loss.discriminator(real, fake, tf.constant([[0.9]]), tf.constant([[0.05]])).numpy()
    np.testing.assert_allclose(value, [expected], rtol=1e-5)


def test_non_saturating_probabilities_agree_with_logits():
    logits_real, logits_fake = column(3.0, -0.7, 0.0), column(-2.5, 1.2, 4.0)
    labels_real, labels_fake = column(0.95, 0.9, 1.0), column(0.0, 0.05, 0.1)
    from_logits = losses.adversarial_loss("non_saturating", from_logits=True)
    from_probabilities = losses.adversarial_loss("non_saturating", from_logits=False)
    np.testing.assert_allclose(
        from_probabilities.discriminator(tf.sigmoid(logits_real), tf.sigmoid(logits_fake), labels_real,
                                         labels_fake).numpy(),
        from_logits.discriminator(logits_real, logits_fake, labels_real, labels_fake).numpy(), rtol=1e-5)
    np.testing.assert_allclose(from_probabilities.generator(tf.sigmoid(logits_fake)).numpy(),
                               from_logits.generator(logits_fake).numpy(), rtol=1e-5)


def test_non_saturating_is_stable_for_large_logits():
    loss = losses.adversarial_loss("non_saturating")
    confident, wrong = column(100.0, -100.0), column(-100.0, 100.0)
    # softplus(-100) is 0 in float32; softplus(100) is 100.
    np.testing.assert_allclose(loss.discriminator(confident, wrong).numpy(), [0.0, 200.0], atol=1e-6)
    np.testing.assert_allclose(loss.generator(wrong).numpy(), [100.0, 0.0], atol=1e-6)
    scores = tf.Variable(wrong)
    with tf.GradientTape() as tape:
        g_loss = tf.reduce_sum(loss.generator(scores))
    np.testing.assert_allclose(tape.gradient(g_loss, scores).numpy(), [[-1.0], [0.0]], atol=1e-6)
    saturated = losses.adversarial_loss("non_saturating", from_logits=False).generator(column(0.0, 1.0)).numpy()
    np.testing.assert_allclose(saturated, [-np.log(1e-7), 0.0], rtol=1e-3, atol=1e-6)


def test_lsgan_on_hand_values():
    loss = losses.adversarial_loss("lsgan")
    real, fake = column(0.8, 0.2), column(0.3, -0.5)
    np.testing.assert_allclose(loss.discriminator(real, fake).numpy(),
                               [0.5 * 0.2 ** 2 + 0.5 * 0.3 ** 2, 0.5 * 0.8 ** 2 + 0.5 * 0.5 ** 2], rtol=1e-5)
    np.testing.assert_allclose(loss.generator(fake).numpy(), [0.5 * 0.7 ** 2, 0.5 * 1.5 ** 2], rtol=1e-5)
    with_labels = loss.discriminator(real, fake, column(0.9, 0.95), column(0.1, 0.0)).numpy()
    np.testing.assert_allclose(with_labels, [0.5 * 0.1 ** 2 + 0.5 * 0.2 ** 2, 0.5 * 0.75 ** 2 + 0.5 * 0.5 ** 2],
                               rtol=1e-5)
    probabilities = losses.adversarial_loss("lsgan", from_logits=False)
    np.testing.assert_allclose(probabilities.discriminator(real, fake).numpy(), loss.discriminator(real, fake).numpy())


def test_hinge_on_hand_values():
    loss = losses.adversarial_loss("hinge")
    real, fake = column(2.0, 0.5), column(-2.0, 0.25)
    np.testing.assert_allclose(loss.discriminator(real, fake).numpy(), [0.0, 0.5 + 1.25], rtol=1e-6)
    np.testing.assert_allclose(loss.generator(fake).numpy(), [2.0, -0.25], rtol=1e-6)


def test_hinge_rejects_probabilities_and_labels():
    with pytest.raises(ValueError, match="logits"):
        losses.adversarial_loss("hinge", from_logits=False)
    loss = losses.adversarial_loss("hinge")
    with pytest.raises(ValueError, match="labels"):
        loss.discriminator(column(1.0), column(0.0), real_labels=column(0.9))


@pytest.mark.parametrize("name", losses.ADVERSARIAL_LOSSES)
@pytest.mark.parametrize("shape", [(3, 1), (3, 4, 5, 1)])
def test_losses_are_per_example_for_seed_and_patch_scores(name, shape):
    rng = np.random.default_rng(0)
    real, fake = tf.constant(rng.normal(size=shape), tf.float32), tf.constant(rng.normal(size=shape), tf.float32)
    loss = losses.adversarial_loss(name)
    d_loss, g_loss = loss.discriminator(real, fake), loss.generator(fake)
    assert d_loss.shape == g_loss.shape == (3,)
    assert d_loss.dtype == g_loss.dtype == tf.float32
    # Each example's value depends on its own patches only: scoring example 0 alone gives the same number.
    np.testing.assert_allclose(loss.generator(fake[:1]).numpy(), g_loss.numpy()[:1], rtol=1e-6)


def test_patch_scores_are_averaged_over_patches():
    fake = tf.constant([[[[1.0], [2.0]], [[3.0], [-2.0]]]])  # [1, 2, 2, 1]
    np.testing.assert_allclose(losses.adversarial_loss("hinge").generator(fake).numpy(), [-1.0])
    np.testing.assert_allclose(losses.adversarial_loss("non_saturating").generator(fake).numpy(),
                               [np.mean(softplus(-np.array([1.0, 2.0, 3.0, -2.0])))], rtol=1e-6)


def test_half_precision_scores_give_float32_losses():
    real, fake = tf.constant([[1.5], [-0.5]], tf.float16), tf.constant([[-1.0], [0.25]], tf.bfloat16)
    loss = losses.adversarial_loss("non_saturating")
    d_loss = loss.discriminator(real, fake)
    assert d_loss.dtype == tf.float32
    np.testing.assert_allclose(d_loss.numpy(), [softplus(-1.5) + softplus(-1.0), softplus(0.5) + softplus(0.25)],
                               rtol=1e-6)


def _draws(seed, position, first_example=0, global_batch=4):
    return example_noise.ExampleNoise(example_noise.step_seed(seed, position), first_example, global_batch)


def test_noisy_labels_ranges_shape_and_determinism():
    shape = tf.shape(tf.zeros([4, 3, 3, 1]))
    real, fake = losses.noisy_labels(shape, _draws(7, 0))
    assert real.shape == fake.shape == (4, 3, 3, 1)
    assert real.dtype == fake.dtype == tf.float32
    assert 0.9 <= real.numpy().min() and real.numpy().max() <= 1.0
    assert 0.0 <= fake.numpy().min() and fake.numpy().max() <= 0.1
    assert np.unique(real.numpy()).size > 1  # noisy, not a constant
    again_real, again_fake = losses.noisy_labels(shape, _draws(7, 0))
    np.testing.assert_array_equal(again_real.numpy(), real.numpy())
    np.testing.assert_array_equal(again_fake.numpy(), fake.numpy())
    for other in (_draws(8, 0), _draws(7, 1)):  # another seed, another data position
        other_real, _ = losses.noisy_labels(shape, other)
        assert not np.array_equal(other_real.numpy(), real.numpy())
    # The real and fake labels are separate streams, not one draw rescaled.
    assert not np.allclose((real.numpy() - 0.9), fake.numpy(), atol=1e-6)


def test_noisy_labels_of_an_example_do_not_depend_on_the_replica_holding_it():
    real, fake = losses.noisy_labels([4, 2, 2, 1], _draws(7, 3))
    halves = [losses.noisy_labels([2, 2, 2, 1], _draws(7, 3, first_example=first)) for first in (0, 2)]
    np.testing.assert_array_equal(np.concatenate([h[0].numpy() for h in halves]), real.numpy())
    np.testing.assert_array_equal(np.concatenate([h[1].numpy() for h in halves]), fake.numpy())


def test_reconstruction_losses_on_hand_values():
    targets = tf.constant([[[[1.0], [2.0]]], [[[3.0], [4.0]]]])  # [2, 1, 2, 1]
    generated = tf.constant([[[[1.5], [2.0]]], [[[1.0], [4.0]]]])
    np.testing.assert_allclose(losses.reconstruction_loss("l1", targets, generated).numpy(), [0.25, 1.0])
    np.testing.assert_allclose(losses.reconstruction_loss("mse", targets, generated).numpy(), [0.125, 2.0])
    half = losses.reconstruction_loss("l1", targets, tf.cast(generated, tf.float16))
    assert half.dtype == tf.float32
    np.testing.assert_allclose(half.numpy(), [0.25, 1.0])
    bfloat = losses.reconstruction_loss("mse", targets, tf.cast(generated, tf.bfloat16))
    np.testing.assert_allclose(bfloat.numpy(), [0.125, 2.0])


def test_a_masked_reconstruction_loss_is_the_mean_over_the_masked_pixels():
    """What --hints_loss_weight adds: the loss over the hinted pixels alone, 0 for an example without hints."""
    targets = tf.constant([[[[1.0, 0.0], [2.0, 0.0]]], [[[3.0, 0.0], [4.0, 0.0]]]])  # [2, 1, 2, 2]
    generated = tf.constant([[[[1.5, 0.5], [2.0, 2.0]]], [[[1.0, 0.0], [4.0, 1.0]]]])
    mask = tf.constant([[[[1.0], [0.0]]], [[[0.0], [0.0]]]])
    np.testing.assert_allclose(losses.reconstruction_loss("l1", targets, generated, mask=mask).numpy(), [0.5, 0.0])
    np.testing.assert_allclose(losses.reconstruction_loss("mse", targets, generated, mask=tf.ones([2, 1, 2, 1])),
                               losses.reconstruction_loss("mse", targets, generated))


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="non_saturating, lsgan, hinge"):
        losses.adversarial_loss("wasserstein")
    with pytest.raises(ValueError, match="l1, mse"):
        losses.reconstruction_loss("l2", tf.zeros([1, 2]), tf.zeros([1, 2]))


def test_per_example_losses_average_the_same_over_any_replica_split():
    rng = np.random.default_rng(1)
    targets = tf.constant(rng.uniform(size=(4, 3, 3, 2)), tf.float32)
    generated = tf.constant(rng.uniform(size=(4, 3, 3, 2)), tf.float32)
    per_example = losses.reconstruction_loss("l1", targets, generated)
    # Two replicas holding two examples each: each divides by the global batch, and the sum is the full mean.
    halves = [tf.nn.compute_average_loss(per_example[i:i + 2], global_batch_size=4) for i in (0, 2)]
    np.testing.assert_allclose(float(sum(halves)), float(tf.reduce_mean(per_example)), rtol=1e-6)
    # A per-replica mean (a batch-reduced loss) summed over replicas would count the batch twice.
    replica_means = sum(float(tf.reduce_mean(per_example[i:i + 2])) for i in (0, 2))
    np.testing.assert_allclose(replica_means, 2 * float(tf.reduce_mean(per_example)), rtol=1e-6)
