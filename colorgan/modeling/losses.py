"""GAN losses as per-example float32 values, shape [batch].

The trainer averages them over the *global* batch with `tf.nn.compute_average_loss`, so a loss does not depend on how
the batch is split across replicas. Keras's own reductions would average per replica (and, under a distribution
strategy, divide by the replica count again), which is why nothing here reduces over the batch axis. Discriminator
scores may be one per image [b, 1] or a PatchGAN map [b, h, w, 1]: every non-batch axis is averaged.
"""

import dataclasses
from typing import Callable

import tensorflow as tf

from colorgan.modeling import model_names

ADVERSARIAL_LOSSES = model_names.ADVERSARIAL_LOSSES
RECONSTRUCTION_LOSSES = model_names.RECONSTRUCTION_LOSSES
# Keras's BCE clips probabilities to [eps, 1 - eps] so log() stays finite.
PROBABILITY_EPSILON = 1e-7
# The seed's one-sided noisy labels: targets jitter instead of being exactly 1 and 0.
REAL_LABEL_RANGE = (0.9, 1.0)
FAKE_LABEL_RANGE = (0.0, 0.1)


@dataclasses.dataclass(frozen=True)
class AdversarialLoss:
    """A GAN objective's two sides.

    discriminator(real_scores, fake_scores, real_labels=None, fake_labels=None) -> [batch]; the labels, broadcastable
    to the scores, replace the 1 / 0 targets. generator(fake_scores) -> [batch].
    """

    name: str
    discriminator: Callable
    generator: Callable


def per_example_mean(values):
    """Mean over every axis but the first, in float32: [b, ...] -> [b]."""
    values = tf.cast(values, tf.float32)
    return tf.reduce_mean(values, axis=tf.range(1, tf.rank(values)))


def _targets(labels, scores, default):
    if labels is None:
        return tf.fill(tf.shape(scores), default)
    return tf.broadcast_to(tf.cast(labels, tf.float32), tf.shape(scores))


def _binary_cross_entropy(targets, scores, from_logits):
    """Elementwise BCE. From logits it is computed as max(x, 0) - x*y + log(1 + exp(-|x|)), finite for any logit,
    whereas sigmoid-then-log underflows to log(0) once |logit| passes about 17 in float32."""
    if from_logits:
        return tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=scores)
    probabilities = tf.clip_by_value(scores, PROBABILITY_EPSILON, 1.0 - PROBABILITY_EPSILON)
    return -(targets * tf.math.log(probabilities) + (1.0 - targets) * tf.math.log(1.0 - probabilities))


def _non_saturating(from_logits):
    """Goodfellow et al.'s BCE objective; G maximises log D(G(x)) so its gradient does not vanish when D wins."""

    def discriminator(real_scores, fake_scores, real_labels=None, fake_labels=None):
        real_scores, fake_scores = tf.cast(real_scores, tf.float32), tf.cast(fake_scores, tf.float32)
        real = _binary_cross_entropy(_targets(real_labels, real_scores, 1.0), real_scores, from_logits)
        fake = _binary_cross_entropy(_targets(fake_labels, fake_scores, 0.0), fake_scores, from_logits)
        return per_example_mean(real) + per_example_mean(fake)

    def generator(fake_scores):
        fake_scores = tf.cast(fake_scores, tf.float32)
        return per_example_mean(_binary_cross_entropy(tf.ones_like(fake_scores), fake_scores, from_logits))

    return AdversarialLoss("non_saturating", discriminator, generator)


def _lsgan():
    """Mao et al.'s least squares objective on the raw scores (logits or probabilities alike): D regresses real to
    1 and fake to 0, G pulls fake towards 1; the 1/2 factors are the paper's."""

    def discriminator(real_scores, fake_scores, real_labels=None, fake_labels=None):
        real_scores, fake_scores = tf.cast(real_scores, tf.float32), tf.cast(fake_scores, tf.float32)
        real = tf.square(real_scores - _targets(real_labels, real_scores, 1.0))
        fake = tf.square(fake_scores - _targets(fake_labels, fake_scores, 0.0))
        return 0.5 * per_example_mean(real) + 0.5 * per_example_mean(fake)

    def generator(fake_scores):
        return 0.5 * per_example_mean(tf.square(tf.cast(fake_scores, tf.float32) - 1.0))

    return AdversarialLoss("lsgan", discriminator, generator)


def _hinge():
    """The hinge objective of SAGAN / BigGAN: D's margin loss on unbounded scores, G raises the fake score."""

    def discriminator(real_scores, fake_scores, real_labels=None, fake_labels=None):
        if real_labels is not None or fake_labels is not None:
            raise ValueError("the hinge loss has no targets: noisy labels do not apply to it")
        real = tf.nn.relu(1.0 - tf.cast(real_scores, tf.float32))
        fake = tf.nn.relu(1.0 + tf.cast(fake_scores, tf.float32))
        return per_example_mean(real) + per_example_mean(fake)

    def generator(fake_scores):
        return -per_example_mean(fake_scores)

    return AdversarialLoss("hinge", discriminator, generator)


def adversarial_loss(name, from_logits=True):
    """The named adversarial objective; `from_logits` says whether the discriminator ends without a sigmoid."""
    if name == "non_saturating":
        return _non_saturating(from_logits)
    if name == "lsgan":
        return _lsgan()
    if name == "hinge":
        if not from_logits:
            raise ValueError("the hinge loss needs unbounded scores: use a discriminator that outputs logits")
        return _hinge()
    raise ValueError(f"unknown adversarial loss {name!r}; choose one of {', '.join(ADVERSARIAL_LOSSES)}")


def noisy_labels(shape, draws):
    """(real_labels, fake_labels) of `shape`: real uniform in [0.9, 1.0], fake in [0, 0.1], drawn from a
    `noise.ExampleNoise`, so they are a function of (seed, data position, example) and need no state."""
    real = draws.uniform("real_labels", shape, minval=REAL_LABEL_RANGE[0], maxval=REAL_LABEL_RANGE[1])
    fake = draws.uniform("fake_labels", shape, minval=FAKE_LABEL_RANGE[0], maxval=FAKE_LABEL_RANGE[1])
    return real, fake


def reconstruction_loss(name, targets, generated, mask=None):
    """Per-example "l1" (pix2pix: sharper than L2) or "mse" (the seed) between target and generated images. Both are
    cast to float32 first: under mixed precision the generator's output is float16 or bfloat16. mask [b, h, w, 1]:
    the mean over the pixels where it is 1 (0 for an example without any) rather than over all."""
    if name not in RECONSTRUCTION_LOSSES:
        raise ValueError(f"unknown reconstruction loss {name!r}; choose one of {', '.join(RECONSTRUCTION_LOSSES)}")
    difference = tf.cast(targets, tf.float32) - tf.cast(generated, tf.float32)
    per_pixel = tf.abs(difference) if name == "l1" else tf.square(difference)
    if mask is None:
        return per_example_mean(per_pixel)
    mask = tf.cast(mask, tf.float32)
    covered = tf.reduce_sum(mask, axis=[1, 2, 3]) * tf.cast(tf.shape(per_pixel)[-1], tf.float32)
    return tf.reduce_sum(per_pixel * mask, axis=[1, 2, 3]) / tf.maximum(covered, 1.0)
