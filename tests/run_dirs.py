"""Datasets and training-run directories for tests. Runs are made without training: a tiny generator whose weights
are set so it predicts strong, varied chroma (an untrained generator predicts near-gray, which would let a colorize
path that loses lightness to clipping pass), saved as the trainer saves them (flags.cfg + ckpt-N)."""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from colorgan.data import conversion
from colorgan.data import conversion_config
from colorgan.modeling import models
from colorgan.training import train_config


def write_records(photo_dir, output_dir, image_size, **settings):
    """A dataset of the photos in `photo_dir` made by data prep in this process (one worker); returns its path."""
    conversion.run(conversion_config.ConversionConfig(output_dir=str(output_dir), input_dirs=(str(photo_dir),),
                                                      image_size=image_size, num_workers=1, **settings),
                   log=lambda _: None)
    return str(output_dir)



TINY = dict(image_size=32, base_width=4, depth=3, norm="none", dropout=0.0, discriminator="patchgan")


def make_run(model_dir, generator="unet", step=7, ema=False, seed=0, **overrides):
    """Writes a run of `generator` at `step`; returns (model_dir, the Keras generator holding its weights)."""
    config = dataclasses.replace(train_config.TrainConfig(), data_dir="unused", model_dir=str(model_dir),
                                 generator=generator, ema_decay=0.9 if ema else 0.0, **{**TINY, **overrides})
    keras_generator = models.build_generator(config.generator, config.image_size, for_training=True,
                                             **config.model_hparams())
    rng = np.random.default_rng(seed)
    weights = []
    # A pretrained encoder keeps Keras's initial weights: fifty layers of N(0, 0.5) kernels would overflow.
    encoder_weights = ({id(weight) for weight in keras_generator.get_layer("encoder").weights}
                       if config.encoder != "pix2pix" else set())
    for weight in keras_generator.weights:
        if id(weight) in encoder_weights:
            weights.append(weight.numpy())
            continue
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


def save_backbone_weights(path, name, image_size=32):
    """A weights file of backbone `name` without its top, from Keras's random initial weights (nothing downloads):
    what --encoder_weights=PATH reads."""
    from colorgan.modeling import backbones

    backbones.BACKBONES[name].application(include_top=False, weights=None,
                                          input_shape=(image_size, image_size, 3)).save_weights(str(path))
    return str(path)


def make_hint_carrying_run(model_dir, step=3):
    """A hints U-Net (TINY) whose hand-set weights carry each hint's a*b* to the pixels under it and predict gray
    elsewhere: for testing the plumbing of hints (page, service, export), not a trained model.

    down1 reads only its 2x2 block of the input (kernel taps 1..2 of 4 with "same" padding) and keeps +a, -a, +b, -b
    of the hints (LeakyReLU(x) - LeakyReLU(-x) = 1.2 x); the output layer reads only its parent down1 pixel and
    undoes the 1.2. Everything else is zero, so ab = tanh(the block's mean hint ab): within ~2 CIE units of the
    hint for moderate colours, wherever a point's patch covers the block."""
    config = dataclasses.replace(train_config.TrainConfig(), data_dir="unused", model_dir=str(model_dir),
                                 generator="unet", hints=True, ema_decay=0.0, **TINY)
    generator = models.build_generator("unet", config.image_size, for_training=True, **config.model_hparams())
    weights = {weight.path: np.zeros(weight.shape, np.float32) for weight in generator.weights}
    down1 = weights["down1_conv/kernel"]  # [4, 4, 1 + 3 + spread, width]: L, hint a, hint b, mask, spread hints
    for channel, (source, sign) in enumerate(((1, 1.0), (1, -1.0), (2, 1.0), (2, -1.0))):
        down1[1:3, 1:3, source, channel] = sign / 4
    output = weights["ab/kernel"]  # [4, 4, 2 outputs, width of up2 + width of down1] (transposed convolution)
    up_width = output.shape[-1] - down1.shape[-1]
    for channel, (target, sign) in enumerate(((0, 1.0), (0, -1.0), (1, 1.0), (1, -1.0))):
        output[1:3, 1:3, target, up_width + channel] = sign / 1.2
    generator.set_weights([weights[weight.path] for weight in generator.weights])
    os.makedirs(model_dir, exist_ok=True)
    train_config.write_flagfile(config, os.path.join(model_dir, train_config.FLAGFILE_NAME))
    tf.train.CheckpointManager(tf.train.Checkpoint(generator=generator), str(model_dir), max_to_keep=5).save(
        checkpoint_number=step)
    return str(model_dir)
