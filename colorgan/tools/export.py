"""Exports a training run's generator as a SavedModel for TF Serving and tf.saved_model.load (BUILD.md: "Export").

  colorgan-export --model_dir=runs/unet256 --export_dir=exports/unet256/1   # version 1
  colorgan-export --model_dir=runs/unet256 --export_dir=exports/unet256     # the next version
  colorgan-export --model_dir=runs/unet256 --export_dir=exports/unet256_onnx --format=onnx   # .../1/model.onnx

TF Serving's layout: a numbered last folder is a version, written as given (--overwrite replaces a previous export
there); any other --export_dir is a base of versions, and the export becomes its next one. serve.py, colorize.py
and evaluate.py take a base and load its highest version, as TF Serving does.
"""

import os
import sys

from absl import logging

from colorgan.core import cli
from colorgan.core import flag_config
from colorgan.core import native_logs
from colorgan.inference import inference_flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

flag_config.define_flags(inference_flags.ExportConfig)


def _main(argv):
    config = flag_config.from_flags(inference_flags.ExportConfig)
    problems = config.validate()
    if problems:
        return cli.usage_errors("export", problems)
    logging.set_verbosity(logging.WARNING)  # tf.saved_model.save logs each signature at INFO
    with native_logs.filtered():
        from colorgan.inference import export  # noqa: PLC0415 - TensorFlow loads once the flags are known good.
        from colorgan.inference import loading  # noqa: PLC0415 - TensorFlow loads once the flags are known good.

    try:
        description = export.export(config.model_dir, config.export_dir, config.step, config.render_size,
                                    overwrite=config.overwrite, max_pixels=config.max_pixels,
                                    export_format=config.format)
    except loading.DamagedModel as e:
        return cli.failure("export", str(e))
    except loading.InferenceError as e:
        return cli.usage_error("export", str(e))
    print(f"export: step {description['step']} of {config.model_dir} ({description['weights']}) rendered at "
          f"{description['render_size']} px -> {description['export_dir']}", file=sys.stderr)
    return 0


def main():
    """The colorgan-export command (also `python launch/export.py`)."""
    cli.run("export", _main)


if __name__ == "__main__":
    main()
