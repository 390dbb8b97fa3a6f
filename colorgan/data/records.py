"""The on-disk dataset format: one source of truth shared by the writer and every reader.

A dataset directory holds sharded TFRecord files of `tf.train.Example`s and a `manifest.json` written last. Each
example stores the same pixels twice, as RGB and as its ITU-R 601 luma ("L" in PIL), both encoded the same way, so
the gray input and the colour target can never drift apart. BUILD.md documents the format for users.
"""

import hashlib
import json
import os
import re

import tensorflow as tf

from colorgan.core import storage

FORMAT_VERSION = 1
MANIFEST_FILENAME = "manifest.json"
SPLITS = ("train", "val")

RGB_KEY = "image/rgb"
GRAY_KEY = "image/gray"
FORMAT_KEY = "image/format"
HEIGHT_KEY = "image/height"
WIDTH_KEY = "image/width"
KEY_KEY = "image/key"

FEATURE_SPEC = {
    RGB_KEY: tf.io.FixedLenFeature([], tf.string),
    GRAY_KEY: tf.io.FixedLenFeature([], tf.string),
    FORMAT_KEY: tf.io.FixedLenFeature([], tf.string),
    HEIGHT_KEY: tf.io.FixedLenFeature([], tf.int64),
    WIDTH_KEY: tf.io.FixedLenFeature([], tf.int64),
    KEY_KEY: tf.io.FixedLenFeature([], tf.string),
}

_SHARD_RE = re.compile(r"^(?P<split>train|val)-(?P<index>\d{5})-of-(?P<count>\d{5})\.tfrecord$")


class DatasetError(ValueError):
    """A dataset directory that cannot be read as this format; the message names the file."""


def shard_filename(split, index, count):
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def is_shard_filename(name):
    return _SHARD_RE.match(name) is not None


def encode_key(key):
    """Keys are paths; undecodable bytes in file names survive the round trip instead of failing the run."""
    return key.encode("utf-8", "surrogateescape")


def serialize_example(rgb_bytes, gray_bytes, encoding, height, width, key):
    """Builds one serialized `tf.train.Example` from already-encoded images."""

    def _bytes(value):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def _int64(value):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    features = {
        RGB_KEY: _bytes(rgb_bytes),
        GRAY_KEY: _bytes(gray_bytes),
        FORMAT_KEY: _bytes(encoding.encode("ascii")),
        HEIGHT_KEY: _int64(height),
        WIDTH_KEY: _int64(width),
        KEY_KEY: _bytes(encode_key(key)),
    }
    # `feature` is a protobuf map: without `deterministic`, its order (and so the bytes) varies between processes.
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString(deterministic=True)


def parse_example(serialized):
    """Parses serialized examples (scalar or batch) into a dict of the raw features in FEATURE_SPEC."""
    if serialized.shape.rank == 0:
        return tf.io.parse_single_example(serialized, FEATURE_SPEC)
    return tf.io.parse_example(serialized, FEATURE_SPEC)


def decode_rgb(encoded, encoding):
    """Decodes one `image/rgb` with the dataset's codec (the manifest's `encoding`): uint8 [H, W, 3]."""
    if encoding == "jpeg":
        return tf.io.decode_jpeg(encoded, channels=3)
    return tf.io.decode_png(encoded, channels=3)


def decode_images(features):
    """Decodes one parsed example into (gray uint8 [H, W, 1], rgb uint8 [H, W, 3]).

    `decode_image` handles both encodings, so tools need not know the dataset's codec.
    """
    height = tf.cast(features[HEIGHT_KEY], tf.int32)
    width = tf.cast(features[WIDTH_KEY], tf.int32)
    gray = tf.io.decode_image(features[GRAY_KEY], channels=1, expand_animations=False)
    rgb = tf.io.decode_image(features[RGB_KEY], channels=3, expand_animations=False)
    gray = tf.ensure_shape(tf.reshape(gray, tf.stack([height, width, 1])), [None, None, 1])
    rgb = tf.ensure_shape(tf.reshape(rgb, tf.stack([height, width, 3])), [None, None, 3])
    return gray, rgb


def shard_size_problem(data_dir, shard):
    """Why a manifest's shard entry is not the file on disk, by the cheap checks (present, same size), or None.
    Readers run it when opening a dataset; inspect_tfrecords.py adds the sha256 and every record."""
    path = os.path.join(data_dir, shard["file"])
    if not storage.exists(path):
        return "missing"
    size = storage.size(path)
    return None if size == shard["bytes"] else f"{size} bytes, manifest says {shard['bytes']}"


def read_examples(path, count=None):
    """Yields (key, gray, rgb) numpy arrays from one shard, in file order: for tools, not for training."""
    dataset = tf.data.TFRecordDataset(path).map(parse_example)
    if count is not None:
        dataset = dataset.take(count)
    for features in dataset:
        gray, rgb = decode_images(features)
        yield features[KEY_KEY].numpy().decode("utf-8", "surrogateescape"), gray.numpy(), rgb.numpy()


def json_text(obj):
    """The format's JSON files (manifest, state records) as text: indented, sorted keys, a final newline."""
    return json.dumps(obj, indent=2, sort_keys=True) + "\n"


def write_json_atomic(path, obj):
    """Writes `json_text(obj)` so a reader or a killed writer never sees half a file."""
    storage.write_atomic(path, json_text(obj))


def file_digest(path):
    """(size in bytes, sha256 hex) of a file, read in chunks so shards of any size fit in memory."""
    sha = hashlib.sha256()
    size = 0
    with tf.io.gfile.GFile(os.fspath(path), "rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest()


def manifest_path(data_dir):
    return os.path.join(data_dir, MANIFEST_FILENAME)


def read_manifest(data_dir):
    """Loads and sanity-checks a dataset's manifest; raises DatasetError naming the problem."""
    path = manifest_path(data_dir)
    if not storage.isdir(data_dir):
        raise DatasetError(f"{data_dir}: no such dataset directory")
    if not storage.exists(path):
        raise DatasetError(f"{path}: no manifest (not a colorgan dataset, or its conversion did not finish)")
    try:
        manifest = json.loads(storage.read_text(path))
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: unreadable manifest ({e})") from None
    version = manifest.get("format_version") if isinstance(manifest, dict) else None
    if version != FORMAT_VERSION:
        raise DatasetError(f"{path}: format_version {version!r}, this colorgan reads {FORMAT_VERSION}")
    for key in ("image_size", "encoding", "splits"):
        if key not in manifest:
            raise DatasetError(f"{path}: manifest has no '{key}'")
    return manifest


def shard_paths(data_dir, manifest, split):
    """Absolute paths of a split's shards, in manifest order."""
    if split not in manifest["splits"]:
        raise DatasetError(f"{manifest_path(data_dir)}: no split '{split}' (has {sorted(manifest['splits'])})")
    return [os.path.join(data_dir, shard["file"]) for shard in manifest["splits"][split]["shards"]]
