"""The small end-to-end demo on CPU: bundled photos -> verified TFRecords -> a few minutes of training -> pictures.

  python launch/demo.py --workdir=demo_out
"""

import os
import sys

from absl import flags

from colorgan.core import cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_WORKDIR = flags.DEFINE_string("workdir", "demo_out", "Where the demo writes photos, dataset, run and pictures.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 150, "Side of the stored images.", lower_bound=8)
# The demo runs from a clone of the repository (README): its configs are the experiments of launch/configs.
_REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_CONFIG = flags.DEFINE_string("config", os.path.join(_REPOSITORY, "launch", "configs", "smoke_hints.cfg"),
                              "Training flagfile ('' to skip training). The default trains with colour hints, so the "
                              "demo also shows the black-and-white photo colorized with a few of them.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 0, "Override the config's --train_steps (0: keep it).")


def _main(argv):
    # Here, not at the top: data-prep workers re-import this script, and must stay light.
    from colorgan.data import worker_pool  # noqa: PLC0415
    from colorgan.demo import end_to_end  # noqa: PLC0415

    try:
        end_to_end.run(_WORKDIR.value, image_size=_IMAGE_SIZE.value, train_flagfile=_CONFIG.value,
                       train_steps=_TRAIN_STEPS.value or None)
    except worker_pool.Stopped as e:
        print(f"demo: stopped by {e} while writing the dataset; run the same command to resume", file=sys.stderr)
        return 128 + e.signum
    return 0


def main():
    """`python launch/demo.py`: run from a clone, whose launch/configs it trains with."""
    cli.run("demo", _main)


if __name__ == "__main__":
    main()
