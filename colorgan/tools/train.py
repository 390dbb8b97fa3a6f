"""Trains a ColorGAN model on one device, all GPUs of a host, or many hosts.

  colorgan-train --flagfile=launch/configs/smoke.cfg --data_dir=demo_out/data --model_dir=runs/smoke

Flags (defined once in colorgan/train_config.py) are validated before anything starts; a restarted run with the
same --model_dir resumes from its last checkpoint. The resolved flags are saved as MODEL_DIR/flags.cfg.
"""

import os

from absl import flags

from colorgan.core import cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from colorgan.training import train_config

train_config.define_flags()
flags.adopt_module_key_flags(train_config)  # --help lists the training flags, not only --helpfull


def _main(argv):
    from colorgan.training import train_job  # noqa: PLC0415 - TensorFlow loads once the flags have parsed.

    return train_job.train_main(train_config.from_flags(flags.FLAGS))


def main():
    """The colorgan-train command (also `python launch/train.py`)."""
    cli.run("train", _main)


if __name__ == "__main__":
    main()
