"""Damage a dataset suffers that its checks must catch, made on purpose: shared by the tests of colorgan.data.verify
and of data_prep/inspect_tfrecords.py."""

import io
import json

import numpy as np
import tensorflow as tf
from PIL import Image

from colorgan.data import records


def replace_gray_of_one_record(data_dir, split="train", shard_index=0, record_index=1):
    """In a PNG dataset, rewrites one record with a gray image one level off the luma of its colour image at one
    pixel: a valid record in a valid shard whose size and sha256 the manifest is updated to, so that only the
    gray-is-the-luma check can tell. Returns (shard file, record index, key)."""
    manifest_path = data_dir / records.MANIFEST_FILENAME
    manifest = json.loads(manifest_path.read_text())
    assert manifest["encoding"] == "png"
    shard = manifest["splits"][split]["shards"][shard_index]
    path = data_dir / shard["file"]
    serialized = [record.numpy() for record in tf.data.TFRecordDataset(str(path))]
    parsed = records.parse_example(tf.constant(serialized[record_index]))
    features = {name: value.numpy() for name, value in parsed.items()}
    key = features[records.KEY_KEY].decode("utf-8")
    height, width = features[records.HEIGHT_KEY], features[records.WIDTH_KEY]
    rebuilt = records.serialize_example(features[records.RGB_KEY], features[records.GRAY_KEY], "png", height, width,
                                        key)
    assert rebuilt == serialized[record_index]  # the same record but for what is replaced below
    gray = np.asarray(Image.open(io.BytesIO(features[records.GRAY_KEY]))).copy()
    gray[height // 2, width // 2] ^= 1  # one level, one pixel
    encoded = io.BytesIO()
    Image.fromarray(gray).save(encoded, format="PNG")
    serialized[record_index] = records.serialize_example(features[records.RGB_KEY], encoded.getvalue(), "png",
                                                         height, width, key)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in serialized:
            writer.write(record)
    shard["bytes"], shard["sha256"] = records.file_digest(path)
    manifest_path.write_text(json.dumps(manifest))
    return shard["file"], record_index, key
