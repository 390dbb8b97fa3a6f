"""Exports a training run's generator as a SavedModel for TF Serving and tf.saved_model.load (BUILD.md: "Export").

  python launch/export.py --model_dir=runs/unet256 --export_dir=exports/unet256/1   # version 1
  python launch/export.py --model_dir=runs/unet256 --export_dir=exports/unet256     # the next version

TF Serving's layout: a numbered last folder is a version, written as given (--overwrite replaces a previous export
there); any other --export_dir is a base of versions, and the export becomes its next one. serve.py, colorize.py
and evaluate.py take a base and load its highest version, as TF Serving does.
"""

from colorgan.tools import export

if __name__ == "__main__":
    export.main()
