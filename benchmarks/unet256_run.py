"""An untrained run of unet256.cfg's generator for benchmarks of inference (colorize, serving): its speed and memory
do not depend on what the weights learned."""

import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO_ROOT, "launch", "configs", "unet256.cfg")


def make_run(model_dir):
    """A run directory of unet256.cfg's generator with its initial weights (flags.cfg + ckpt-0)."""
    import dataclasses

    import tensorflow as tf

    from colorgan.modeling import models
    from colorgan.training import train_config

    config = dataclasses.replace(train_config.read_flagfile(CONFIG), data_dir="unused", model_dir=model_dir)
    generator = models.build_generator(config.generator, config.image_size, **config.model_hparams())
    os.makedirs(model_dir, exist_ok=True)
    train_config.write_flagfile(config, os.path.join(model_dir, train_config.FLAGFILE_NAME))
    tf.train.CheckpointManager(tf.train.Checkpoint(generator=generator), model_dir, 1).save(checkpoint_number=0)
