"""Converts image folders (or a prepared TFDS dataset) into sharded TFRecords of gray/RGB pairs.

  colorgan-make-tfrecords --input_dir=photos/ --output_dir=data/photos150

Flags are defined once, in colorgan/data/conversion_config.py (ConversionConfig). Rerunning with the same flags
resumes an interrupted run or reports the output up to date. See BUILD.md.
"""

import os
import sys

from absl import flags

from colorgan.core import cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _main(argv):
    # Loaded with the flags below; see there why not at the top.
    from colorgan.data import conversion  # noqa: PLC0415
    from colorgan.data import conversion_config  # noqa: PLC0415
    from colorgan.data import worker_pool  # noqa: PLC0415

    # run() holds the output's lock and releases it on every way out, these included.
    try:
        conversion.run(conversion_config.config_from_flags(flags.FLAGS))
    except conversion_config.ConfigError as e:
        for problem in e.problems:
            cli.usage_error("make_tfrecords", problem)
        return cli.EXIT_USAGE
    except conversion_config.ConversionFailed as e:  # a full disk, a failed pipeline: one line
        return cli.failure("make_tfrecords", str(e))
    except ValueError as e:  # found before writing: an output in the way or locked, an unusable source
        return cli.usage_error("make_tfrecords", str(e))
    except worker_pool.Stopped as e:
        print(f"make_tfrecords: stopped by {e}; finished shards are kept: run the same command to resume",
              file=sys.stderr)
        return 128 + e.signum
    return 0


def main():
    """The colorgan-make-tfrecords command (also `python data_prep/make_tfrecords.py`)."""
    # Here, not at the top: spawned worker processes import the main module again (as __mp_main__), and must not
    # load TensorFlow, which the conversion's modules import.
    from colorgan.core import flag_config  # noqa: PLC0415
    from colorgan.data import conversion_config  # noqa: PLC0415

    flag_config.define_flags(conversion_config.ConversionConfig)
    cli.run("make_tfrecords", _main)


if __name__ == "__main__":
    main()
