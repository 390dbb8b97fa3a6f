"""Measures a run or an export: PSNR, SSIM, colorfulness and |delta colorfulness| against the real photos, and the
same for the gray copy (the baseline to beat).

  colorgan-evaluate --model=runs/unet256 --data_dir=data/photos256 --split=val
  colorgan-evaluate --model=exports/unet256/1 --input_dir=held_out_photos/ --samples=4 --output_dir=eval/

--data_dir evaluates a dataset split at its stored size; --input_dir evaluates colour photos at full resolution
through exactly colorize.py's path (gray -> colorize -> compare with the original). Prints a table, then one JSON
line.
"""

import json
import os
import sys

from absl import flags

from colorgan.core import cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from colorgan.core import native_logs
from colorgan.core import storage
from colorgan.inference import photo_files

_MODEL = flags.DEFINE_string("model", "", "A training run's --model_dir or an export made by launch/export.py.")
_STEP = flags.DEFINE_integer("step", 0, "Checkpoint step of a run (0: the latest).", lower_bound=0)
_RENDER_SIZE = flags.DEFINE_integer("render_size", 0, "Side of the square the model sees (0: the training size).",
                                    lower_bound=0)
_DATA_DIR = flags.DEFINE_string("data_dir", "", "A dataset made by make_tfrecords.py.")
_SPLIT = flags.DEFINE_enum("split", "val", ["train", "val"], "The dataset split to evaluate.")
_INPUT_DIR = flags.DEFINE_multi_string("input_dir", [], "Colour photos (folder, file or glob; repeatable).")
_SAMPLES = flags.DEFINE_integer("samples", 0, "Write this many gray | colorized | real sheets to --output_dir.",
                                lower_bound=0)
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "", "Where evaluation.json and sample sheets go (optional).")
_MAX_PIXELS = flags.DEFINE_integer("max_pixels", photo_files.DEFAULT_MAX_PIXELS, "Larger photos are skipped.",
                                   lower_bound=1)
_HINTS = flags.DEFINE_integer("hints", 0, "Reveal this many points per photo from its colour original, as Zhang et "
                              "al. 2017 evaluate (fixed seed; --input_dir, a model trained with --hints). 0: none.",
                              lower_bound=0)


def _main(argv):
    if not _MODEL.value:
        return cli.usage_error("evaluate", "--model is required")
    if bool(_DATA_DIR.value) == bool(_INPUT_DIR.value):
        return cli.usage_error("evaluate", "give either --data_dir or --input_dir")
    if _HINTS.value and _DATA_DIR.value:
        return cli.usage_error("evaluate", f"--hints={_HINTS.value} with --data_dir: points are revealed from "
                                           "full-resolution photos; use --input_dir")
    if _SAMPLES.value and not _OUTPUT_DIR.value:
        return cli.usage_error("evaluate", f"--samples={_SAMPLES.value} needs --output_dir")
    problem = _OUTPUT_DIR.value and storage.directory_problem(_OUTPUT_DIR.value)
    if problem:  # found now, not after the whole evaluation has run
        return cli.usage_error("evaluate", f"--output_dir={_OUTPUT_DIR.value}: {problem}")
    # TensorFlow loads late: once the flags are known to be usable.
    with native_logs.filtered():
        from colorgan.data import records  # noqa: PLC0415
        from colorgan.evaluation import evaluator  # noqa: PLC0415
        from colorgan.inference import colorize_job  # noqa: PLC0415
        from colorgan.inference import evaluate_job  # noqa: PLC0415
        from colorgan.inference import loading  # noqa: PLC0415

    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        colorizer = loading.Colorizer.load(_MODEL.value, _STEP.value, _RENDER_SIZE.value)
        if _HINTS.value and not colorizer.takes_hints:
            return cli.usage_error("evaluate", f"--hints={_HINTS.value}: {_MODEL.value} takes no colour hints "
                                               "(train with --hints)")
        if _DATA_DIR.value:
            source = f"{_DATA_DIR.value} ({_SPLIT.value})"
            result = evaluate_job.evaluate_dataset(colorizer, _DATA_DIR.value, _SPLIT.value, _SAMPLES.value)
        else:
            source = ",".join(_INPUT_DIR.value)
            result = evaluate_job.evaluate_folder(colorizer, _INPUT_DIR.value, _MAX_PIXELS.value, _SAMPLES.value, log,
                                                  hints=_HINTS.value)
    except loading.DamagedModel as e:
        return cli.failure("evaluate", str(e))
    except (loading.InferenceError, records.DatasetError, colorize_job.ColorizeError) as e:
        return cli.usage_error("evaluate", str(e))
    if not result.count:
        return cli.failure("evaluate", f"{source}: no photo could be evaluated")
    report = {"model": _MODEL.value, "step": colorizer.description["step"], "source": source,
              "render_size": colorizer.render_size, "examples": result.count, "hints": _HINTS.value, **result.means}
    print(evaluator.table(result.means, f"{source}: {result.count} photos, {_MODEL.value} step {report['step']}"
                                        + (f", {_HINTS.value} hints each" if _HINTS.value else "")))
    if _OUTPUT_DIR.value:
        storage.makedirs(_OUTPUT_DIR.value)
        storage.write_atomic(os.path.join(_OUTPUT_DIR.value, "evaluation.json"),
                             json.dumps(report, sort_keys=True) + "\n")
        for path in evaluate_job.write_sample_sheets(result.samples, os.path.join(_OUTPUT_DIR.value, "samples")):
            log(f"evaluate: wrote {path}")
    print(json.dumps(report, sort_keys=True))
    return 0


def main():
    """The colorgan-evaluate command (also `python launch/evaluate.py`)."""
    cli.run("evaluate", _main)


if __name__ == "__main__":
    main()
