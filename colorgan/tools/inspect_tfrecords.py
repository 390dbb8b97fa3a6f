"""Verifies a dataset made by make_tfrecords.py against its manifest and optionally writes a preview sheet.

  colorgan-inspect --data_dir=data/photos150 --preview=preview.png

Exits 1 and prints one line per damaged shard when anything does not match.
"""

import os
import sys

from absl import flags

from colorgan.core import cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_DATA_DIR = flags.DEFINE_string("data_dir", "", "Dataset directory (holding manifest.json).")
_PREVIEW = flags.DEFINE_string("preview", "", "Write a grid of gray | colour pairs to this PNG file.")
_PREVIEW_SPLIT = flags.DEFINE_enum("preview_split", "val", ["train", "val"], "Split shown in the preview.")
_PREVIEW_COUNT = flags.DEFINE_integer("preview_count", 8, "Examples shown in the preview.", lower_bound=1)
_VERIFY = flags.DEFINE_bool("verify", True, "Check every shard and record (--noverify: preview only).")


def _log(line):
    print(line, file=sys.stderr, flush=True)


def _main(argv):
    from colorgan.core import visualize  # noqa: PLC0415 - keeps --help fast.
    from colorgan.data import records  # noqa: PLC0415 - keeps --help fast.
    from colorgan.data import verify  # noqa: PLC0415 - keeps --help fast.

    if not _DATA_DIR.value:
        return cli.usage_error("inspect_tfrecords", "--data_dir is required")
    try:
        if _VERIFY.value:
            report = verify.verify_dataset(_DATA_DIR.value, log=_log)
            for problem in report.problems:
                cli.failure("inspect_tfrecords", problem)
            counts = ", ".join(f"{split} {n}" for split, n in sorted(report.examples.items()))
            if report.problems:
                print(f"inspect_tfrecords: {len(report.problems)} problem(s) in {_DATA_DIR.value}", file=sys.stderr)
                return 1
            print(f"inspect_tfrecords: OK: {_DATA_DIR.value} ({counts} examples verified)")
        if _PREVIEW.value:
            sheet = verify.preview_sheet(_DATA_DIR.value, _PREVIEW_SPLIT.value, _PREVIEW_COUNT.value)
            visualize.save_png(sheet, _PREVIEW.value)
            print(f"inspect_tfrecords: wrote preview {_PREVIEW.value}")
    except records.DatasetError as e:
        return cli.failure("inspect_tfrecords", str(e))
    return 0


def main():
    """The colorgan-inspect command (also `python data_prep/inspect_tfrecords.py`)."""
    cli.run("inspect_tfrecords", _main)


if __name__ == "__main__":
    main()
