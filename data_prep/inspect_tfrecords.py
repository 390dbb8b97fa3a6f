"""Verifies a dataset made by make_tfrecords.py against its manifest and optionally writes a preview sheet.

The same as the installed command; see colorgan/tools/inspect_tfrecords.py, whose docstring `--help` shows.
"""

from colorgan.tools import inspect_tfrecords

if __name__ == "__main__":
    inspect_tfrecords.main()
