"""Converts image folders (or a prepared TFDS dataset) into sharded TFRecords of gray/RGB pairs.

  python data_prep/make_tfrecords.py --input_dir=photos/ --output_dir=data/photos150

Flags are defined once, in colorgan/data/conversion_config.py (ConversionConfig). Rerunning with the same flags
resumes an interrupted run or reports the output up to date. See BUILD.md.
"""

from colorgan.tools import make_tfrecords

if __name__ == "__main__":
    make_tfrecords.main()
