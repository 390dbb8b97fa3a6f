"""Runs a tf.data service dispatcher or worker, for training with --data_service (BUILD.md, "tf.data service").

The same as the installed command; see colorgan/tools/data_service.py, whose docstring `--help` shows.
"""

from colorgan.tools import data_service

if __name__ == "__main__":
    data_service.main()
