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

from absl import flags
from absl import logging

from colorgan.core import cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from colorgan.core import native_logs
from colorgan.inference import photo_files

_MODEL_DIR = flags.DEFINE_string("model_dir", "", "The training run to export (its flags.cfg and checkpoints).")
_EXPORT_DIR = flags.DEFINE_string("export_dir", "", "BASE/VERSION (TF Serving's layout) or BASE (the next version "
                                   "is written).")
_STEP = flags.DEFINE_integer("step", 0, "Checkpoint step (0: the latest).", lower_bound=0)
_RENDER_SIZE = flags.DEFINE_integer("render_size", 0, "Side of the square the model sees (0: the training size).",
                                    lower_bound=0)
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing export.")
_FORMAT = flags.DEFINE_enum("format", "saved_model", ["saved_model", "onnx"],
                            "saved_model: TF Serving's SavedModel (and the Keras file); onnx: the chroma network as "
                            "model.onnx, which colorize.py --model=PATH/model.onnx runs with onnxruntime and without "
                            "TensorFlow (the [onnx] extra).")
_MAX_PIXELS = flags.DEFINE_integer(
    "max_pixels", photo_files.DEFAULT_MAX_PIXELS, "serving_default refuses larger photos (every frame of a GIF "
    "counted) before decoding them, as serve.py's --max_pixels does.", lower_bound=1)


def _main(argv):
    if not _MODEL_DIR.value or not _EXPORT_DIR.value:
        return cli.usage_error("export", "--model_dir and --export_dir are required")
    logging.set_verbosity(logging.WARNING)  # tf.saved_model.save logs each signature at INFO
    with native_logs.filtered():
        from colorgan.inference import export  # noqa: PLC0415 - TensorFlow loads once the flags are known good.
        from colorgan.inference import loading  # noqa: PLC0415 - TensorFlow loads once the flags are known good.

    try:
        description = export.export(_MODEL_DIR.value, _EXPORT_DIR.value, _STEP.value, _RENDER_SIZE.value,
                                    overwrite=_OVERWRITE.value, max_pixels=_MAX_PIXELS.value,
                                    export_format=_FORMAT.value)
    except loading.DamagedModel as e:
        return cli.failure("export", str(e))
    except loading.InferenceError as e:
        return cli.usage_error("export", str(e))
    print(f"export: step {description['step']} of {_MODEL_DIR.value} ({description['weights']}) rendered at "
          f"{description['render_size']} px -> {description['export_dir']}", file=sys.stderr)
    return 0


def main():
    """The colorgan-export command (also `python launch/export.py`)."""
    cli.run("export", _main)


if __name__ == "__main__":
    main()
