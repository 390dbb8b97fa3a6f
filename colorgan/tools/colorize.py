"""Colorizes photos at full resolution with a trained run or an export.

  colorgan-colorize --model=runs/unet256 --input=old_photos/ --output_dir=colorized/ --compare
  colorgan-colorize --model=exports/unet256 --input='scans/*.tif' --output_dir=colorized/
  colorgan-colorize --model=exports/unet256_onnx/1/model.onnx --input=old_photos/ --output_dir=colorized/
  colorgan-colorize --model=runs/unet256_hints --input=camera.png --hints=camera.hints.json --output_dir=out/
  colorgan-colorize --model=gs://b/exports/unet256 --input=gs://b/archive --output_dir=gs://b/colorized \\
      --runner=beam --batch_size=16 --beam_pipeline_options=runner=DataflowRunner,project=P,region=R,...

Inputs: files, folders (walked recursively, structure mirrored) or globs. A rerun skips finished outputs.
Exit status (BUILD.md, "Exit statuses"): 0 when at least one photo was colorized (or all were done before) and every
other one reported; 1 when none could be, or the work failed (a damaged model, an output that cannot be written);
2 for a command line that cannot be used (a bad flag, a model path that holds no model); 130 on Ctrl-C.
"""

import os
import signal
import sys

from colorgan.core import cli
from colorgan.core import flag_config
from colorgan.inference import colorize_job

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

flag_config.define_flags(colorize_job.ColorizeConfig)


def _main(argv):
    config = flag_config.from_flags(colorize_job.ColorizeConfig)
    problems = config.validate()
    if problems:
        return cli.usage_errors("colorize", problems)
    try:  # TensorFlow loads in run(), once the photos are known, and only for a TensorFlow model
        summary = colorize_job.run(config, log=lambda line: print(line, file=sys.stderr, flush=True))
    except colorize_job.ColorizeFailed as e:
        return cli.failure("colorize", str(e))
    except colorize_job.ColorizeError as e:
        return cli.usage_error("colorize", str(e))
    except KeyboardInterrupt:  # finished outputs are whole (written atomically): a rerun skips them
        print("colorize: stopped by Ctrl-C; run the same command to finish", file=sys.stderr)
        return 128 + signal.SIGINT
    return summary.exit_code()


def main():
    """The colorgan-colorize command (also `python launch/colorize.py`)."""
    cli.run("colorize", _main)


if __name__ == "__main__":
    main()
