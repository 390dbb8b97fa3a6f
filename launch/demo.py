"""The small end-to-end demo on CPU: bundled photos -> TFRecords -> verified dataset -> preview sheet.

  python launch/demo.py --workdir=demo_out
"""

import os

from absl import app
from absl import flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_WORKDIR = flags.DEFINE_string("workdir", "demo_out", "Where the demo writes photos, dataset and pictures.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 150, "Side of the stored images.", lower_bound=8)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from colorgan import demo  # noqa: PLC0415 - data-prep workers re-import this script; keep it light.

    demo.run(_WORKDIR.value, image_size=_IMAGE_SIZE.value)


if __name__ == "__main__":
    app.run(main)
