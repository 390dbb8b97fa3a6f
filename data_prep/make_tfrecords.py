"""Converts image folders (or a prepared TFDS dataset) into sharded TFRecords of gray/RGB pairs.

  python data_prep/make_tfrecords.py --input_dir=photos/ --output_dir=data/photos150

Rerunning with the same flags resumes an interrupted run or reports the output up to date. See BUILD.md.
"""

import os
import sys

from absl import app
from absl import flags

# Worker processes re-import this script, so it imports nothing heavy at module level: the library (and TensorFlow
# with it) is imported in main().
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_INPUT_DIR = flags.DEFINE_multi_string("input_dir", [], "Image folder(s); repeat the flag or give a comma list.")
_TFDS_NAME = flags.DEFINE_string("tfds_name", "", "Read a prepared TFDS dataset instead of folders.")
_TFDS_SPLIT = flags.DEFINE_string("tfds_split", "train", "TFDS split (slicing syntax allowed).")
_TFDS_DATA_DIR = flags.DEFINE_string("tfds_data_dir", "", "TFDS data_dir holding the prepared dataset.")
_TFDS_IMAGE_KEY = flags.DEFINE_string("tfds_image_key", "image", "Name of the image feature in the TFDS dataset.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", "", "Where shards and manifest.json go.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 150, "Side of the stored square images (the seed used 150).")
_RESIZE = flags.DEFINE_enum("resize", "crop", ["crop", "stretch", "pad"],
                            "crop: centre square crop; stretch: ignore aspect (the seed); pad: letterbox.")
_ENCODING = flags.DEFINE_enum("encoding", "jpeg", ["png", "jpeg"],
                              "Codec of both stored images: jpeg (4:4:4) reads fastest; png is lossless.")
_JPEG_QUALITY = flags.DEFINE_integer("jpeg_quality", 95, "JPEG quality with --encoding=jpeg.")
_VAL_FRACTION = flags.DEFINE_float("val_fraction", 0.1, "Share of examples in the val split (by a hash of the key).")
_SHARD_SIZE_MB = flags.DEFINE_float("shard_size_mb", 128.0, "Target shard size in MiB.")
_MIN_SHARDS = flags.DEFINE_integer("min_shards", 16, "Never fewer shards per split (unless fewer examples).")
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 0, "Fix the shard count of each split (0: from --shard_size_mb).")
_MAX_PIXELS = flags.DEFINE_integer("max_pixels", 100_000_000, "Skip images with more pixels (decompression bombs).")
_MIN_SIZE = flags.DEFINE_integer("min_size", 0, "Skip images whose shorter side is smaller (0: image_size / 2).")
_NUM_WORKERS = flags.DEFINE_integer("num_workers", 0, "Decoding processes (0: all usable cores).")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an output made with other flags or inputs (only this "
                                "tool's files: a manifest.json it did not write is never replaced).")
_BREAK_LOCK = flags.DEFINE_bool("break_lock", False, "Take the output's lock even if another run, maybe on another "
                                "host, seems to hold it: only when no run is writing there.")


def _input_dirs():
    """Each --input_dir value is a folder, or a comma-separated list of folders."""
    dirs = []
    for value in _INPUT_DIR.value:
        dirs.extend([value] if os.path.isdir(value) else [d for d in value.split(",") if d])
    return tuple(dirs)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from colorgan import conversion  # noqa: PLC0415 - see the note on imports above.

    config = conversion.ConversionConfig(
        output_dir=_OUTPUT_DIR.value,
        input_dirs=_input_dirs(),
        tfds_name=_TFDS_NAME.value,
        tfds_split=_TFDS_SPLIT.value,
        tfds_data_dir=_TFDS_DATA_DIR.value,
        tfds_image_key=_TFDS_IMAGE_KEY.value,
        image_size=_IMAGE_SIZE.value,
        resize=_RESIZE.value,
        encoding=_ENCODING.value,
        jpeg_quality=_JPEG_QUALITY.value,
        val_fraction=_VAL_FRACTION.value,
        shard_size_mb=_SHARD_SIZE_MB.value,
        min_shards=_MIN_SHARDS.value,
        num_shards=_NUM_SHARDS.value,
        max_pixels=_MAX_PIXELS.value,
        min_size=_MIN_SIZE.value,
        num_workers=_NUM_WORKERS.value,
        overwrite=_OVERWRITE.value,
        break_lock=_BREAK_LOCK.value,
    )
    # run() holds the output's lock and releases it on every way out, these included.
    try:
        conversion.run(config)
    except ValueError as e:  # Bad flags, existing or locked output, full disk, unreadable source: one line.
        print(f"make_tfrecords: error: {e}", file=sys.stderr)
        return 2
    except conversion.Stopped as e:
        print(f"make_tfrecords: stopped by {e}; finished shards are kept: run the same command to resume",
              file=sys.stderr)
        return 128 + e.signum
    return 0


if __name__ == "__main__":
    app.run(main)
