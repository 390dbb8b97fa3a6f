"""Verifies a dataset made by make_tfrecords.py against its manifest and optionally writes a preview sheet.

  python data_prep/inspect_tfrecords.py --data_dir=data/photos150 --preview=preview.png

Exits 1 and prints one line per damaged shard when anything does not match.
"""

from colorgan.tools import inspect_tfrecords

if __name__ == "__main__":
    inspect_tfrecords.main()
