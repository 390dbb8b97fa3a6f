"""Exports a training run's generator as a SavedModel for TF Serving and tf.saved_model.load (BUILD.md: "Export").

The same as the installed command; see colorgan/tools/export.py, whose docstring `--help` shows.
"""

from colorgan.tools import export

if __name__ == "__main__":
    export.main()
