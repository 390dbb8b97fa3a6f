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

from colorgan.core import cli
from colorgan.core import flag_config
from colorgan.core import native_logs
from colorgan.core import storage
from colorgan.inference import inference_flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

flag_config.define_flags(inference_flags.EvaluateConfig)


def _main(argv):
    config = flag_config.from_flags(inference_flags.EvaluateConfig)
    problems = config.validate()
    if problems:
        return cli.usage_errors("evaluate", problems)
    # TensorFlow loads late: once the flags are known to be usable.
    with native_logs.filtered():
        from colorgan.data import records  # noqa: PLC0415
        from colorgan.evaluation import evaluator  # noqa: PLC0415
        from colorgan.inference import colorize_job  # noqa: PLC0415
        from colorgan.inference import evaluate_job  # noqa: PLC0415
        from colorgan.inference import loading  # noqa: PLC0415

    log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        colorizer = loading.Colorizer.load(config.model, config.step, config.render_size)
        if config.hints and not colorizer.takes_hints:
            return cli.usage_error("evaluate", f"--hints={config.hints}: {config.model} takes no colour hints "
                                               "(train with --hints)")
        if config.data_dir:
            source = f"{config.data_dir} ({config.split})"
            result = evaluate_job.evaluate_dataset(colorizer, config.data_dir, config.split, config.samples)
        else:
            source = ",".join(config.input_dirs)
            result = evaluate_job.evaluate_folder(colorizer, config.input_dirs, config.max_pixels, config.samples, log,
                                                  hints=config.hints)
    except loading.DamagedModel as e:
        return cli.failure("evaluate", str(e))
    except (loading.InferenceError, records.DatasetError, colorize_job.ColorizeError) as e:
        return cli.usage_error("evaluate", str(e))
    if not result.count:
        return cli.failure("evaluate", f"{source}: no photo could be evaluated")
    report = {"model": config.model, "step": colorizer.description["step"], "source": source,
              "render_size": colorizer.render_size, "examples": result.count, "hints": config.hints, **result.means}
    print(evaluator.table(result.means, f"{source}: {result.count} photos, {config.model} step {report['step']}"
                                        + (f", {config.hints} hints each" if config.hints else "")))
    if config.output_dir:
        storage.makedirs(config.output_dir)
        storage.write_atomic(os.path.join(config.output_dir, "evaluation.json"),
                             json.dumps(report, sort_keys=True) + "\n")
        for path in evaluate_job.write_sample_sheets(result.samples, os.path.join(config.output_dir, "samples")):
            log(f"evaluate: wrote {path}")
    print(json.dumps(report, sort_keys=True))
    return 0


def main():
    """The colorgan-evaluate command (also `python launch/evaluate.py`)."""
    cli.run("evaluate", _main)


if __name__ == "__main__":
    main()
