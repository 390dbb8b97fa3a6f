"""Training-run directories for inference tests, made without training: a tiny generator whose weights are set so
it predicts strong, varied chroma (an untrained generator predicts near-gray, which would let a colorize path that
loses lightness to clipping pass), saved as the trainer saves them (flags.cfg + ckpt-N)."""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from colorgan.modeling import models
from colorgan.training import train_config

TINY = dict(image_size=32, base_width=4, depth=3, norm="none", dropout=0.0, discriminator="patchgan")


def make_run(model_dir, generator="unet", step=7, ema=False, seed=0, **overrides):
    """Writes a run of `generator` at `step`; returns (model_dir, the Keras generator holding its weights)."""
    config = dataclasses.replace(train_config.TrainConfig(), data_dir="unused", model_dir=str(model_dir),
                                 generator=generator, ema_decay=0.9 if ema else 0.0, **{**TINY, **overrides})
    keras_generator = models.build_generator(config.generator, config.image_size, for_training=True,
                                             **config.model_hparams())
    rng = np.random.default_rng(seed)
    weights = []
    for weight in keras_generator.weights:
        value = rng.normal(0.0, 0.5, weight.shape).astype(np.float32)
        if weight.path.startswith(("ab/", "rgb/")):
            value = value * 4.0  # saturate the output layer: chroma near the gamut's edge and beyond
        weights.append(value)
    keras_generator.set_weights(weights)
    os.makedirs(model_dir, exist_ok=True)
    train_config.write_flagfile(config, os.path.join(model_dir, train_config.FLAGFILE_NAME))
    objects = {"ema_generator" if ema else "generator": keras_generator}
    tf.train.CheckpointManager(tf.train.Checkpoint(**objects), str(model_dir), max_to_keep=5).save(
        checkpoint_number=step)
    return str(model_dir), keras_generator
