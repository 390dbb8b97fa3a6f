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

from absl import flags

from colorgan.core import cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from colorgan.core import native_logs
from colorgan.inference import photo_files

with native_logs.filtered():  # TensorFlow loads here
    from colorgan.inference import colorize_job

_MODEL = flags.DEFINE_string("model", "", "A training run's --model_dir, an export made by launch/export.py, or "
                             "its model.onnx (--format=onnx: runs without TensorFlow).")
_INPUT = flags.DEFINE_multi_string("input", [], "A photo, a folder (recursive) or a glob; repeat for more.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "", "Where colorized photos go (input folders' structure mirrored).")
_STEP = flags.DEFINE_integer("step", 0, "Checkpoint step of a run (0: the latest).", lower_bound=0)
_RENDER_SIZE = flags.DEFINE_integer("render_size", 0, "Side of the square the model sees (0: the training size).",
                                    lower_bound=0)
_FORMAT = flags.DEFINE_string("format", "", "Output format: jpeg, png, tiff or webp (default: the input's).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Colorize again photos whose output exists.")
_COMPARE = flags.DEFINE_bool("compare", False, "Also write NAME.compare.jpg: input | colorized.")
_MAX_PIXELS = flags.DEFINE_integer("max_pixels", photo_files.DEFAULT_MAX_PIXELS,
                                   "Photos with more pixels are reported and skipped (decompression bombs).",
                                   lower_bound=1)
_JPEG_QUALITY = flags.DEFINE_integer("jpeg_quality", 95, "Quality of JPEG outputs.", lower_bound=1, upper_bound=100)
_HINTS = flags.DEFINE_string(
    "hints", "", 'Colour hints for the one --input photo: a JSON file {"points": [{"x": 120, "y": 45, "color": '
    '"#2a5caa"}, ...]} (pixels from the top-left of the photo as displayed). Without it, NAME.hints.json beside a '
    "photo is used for it. Needs a model trained with --hints.")


_BATCH_SIZE = flags.DEFINE_integer("batch_size", 1, "Photos per generator call (any sizes: each is fitted to the "
                                    "render size first).", lower_bound=1)
_RUNNER = flags.DEFINE_enum("runner", "local", colorize_job.RUNNERS,
                            "local: this process; beam: an Apache Beam pipeline, the model loaded once per worker "
                            "(the [beam] extra).")
_BEAM_PIPELINE_OPTIONS = flags.DEFINE_string(
    "beam_pipeline_options", "", "With --runner=beam: Beam's options as a comma list, as `tfds build` takes them "
    "(runner=DataflowRunner,project=...,region=...).")


def _main(argv):
    if not _MODEL.value or not _INPUT.value:
        return cli.usage_error("colorize", "--model and --input are required")
    config = colorize_job.ColorizeConfig(
        model=_MODEL.value, inputs=tuple(_INPUT.value), output_dir=_OUTPUT_DIR.value, step=_STEP.value,
        render_size=_RENDER_SIZE.value, format=_FORMAT.value, overwrite=_OVERWRITE.value, compare=_COMPARE.value,
        max_pixels=_MAX_PIXELS.value, jpeg_quality=_JPEG_QUALITY.value, hints=_HINTS.value,
        batch_size=_BATCH_SIZE.value, runner=_RUNNER.value, beam_pipeline_options=_BEAM_PIPELINE_OPTIONS.value)
    try:
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
