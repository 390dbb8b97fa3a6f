"""Converts image folders (or a prepared TFDS dataset) into sharded TFRecords of gray/RGB pairs.

The same as the installed command; see colorgan/tools/make_tfrecords.py, whose docstring `--help` shows.
"""

from colorgan.tools import make_tfrecords

if __name__ == "__main__":
    make_tfrecords.main()
