"""Tests of colorgan.data.records: the schema round trip, the luma definition, shard names and manifest errors."""

import json

import image_corpus
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from colorgan.core import color
from colorgan.data import conversion_config
from colorgan.data import example_prep
from colorgan.data import records


def test_example_round_trip_through_a_tfrecord_file(tmp_path):
    pixels = image_corpus.colourful(40, 40, seed=1)
    rgb, gray = Image.fromarray(pixels), Image.fromarray(pixels).convert("L")
    options = conversion_config.ConversionConfig(image_size=40, encoding="png").prep_options()
    path = str(tmp_path / "one.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(records.serialize_example(example_prep.encode(rgb, options), example_prep.encode(gray, options),
                                               "png", 40, 40, "dir/ä b.png"))
    (key, gray_out, rgb_out), = records.read_examples(path)
    assert key == "dir/ä b.png"
    np.testing.assert_array_equal(rgb_out, pixels)
    np.testing.assert_array_equal(gray_out[..., 0], np.asarray(gray))
    features = records.parse_example(tf.constant(next(iter(tf.data.TFRecordDataset(path))).numpy()))
    assert features[records.FORMAT_KEY].numpy() == b"png"
    assert (features[records.HEIGHT_KEY].numpy(), features[records.WIDTH_KEY].numpy()) == (40, 40)


def test_serialization_is_deterministic():
    args = (b"rgb", b"gray", "png", 8, 8, "k")
    assert records.serialize_example(*args) == records.serialize_example(*args)


def test_luma_u8_is_pils_l_bit_for_bit():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    pixels[0, :8] = [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 2, 3], [128] * 3,
                     [254, 1, 127]]
    expected = np.asarray(Image.fromarray(pixels).convert("L"))[..., None]
    np.testing.assert_array_equal(color.luma_u8(pixels).numpy(), expected)


def test_shard_names():
    assert records.shard_filename("train", 3, 16) == "train-00003-of-00016.tfrecord"
    assert records.is_shard_filename("val-00000-of-00001.tfrecord")
    assert not records.is_shard_filename("train-3-of-16.tfrecord")


@pytest.mark.parametrize("content, message", [
    (None, "no manifest"),
    ("{not json", "unreadable manifest"),
    (json.dumps({"format_version": 99}), "format_version 99, this colorgan reads 1"),
    (json.dumps({"format_version": 1, "image_size": 8, "encoding": "png"}), "manifest has no 'splits'"),
])
def test_read_manifest_errors_name_the_file(tmp_path, content, message):
    if content is not None:
        (tmp_path / records.MANIFEST_FILENAME).write_text(content)
    with pytest.raises(records.DatasetError, match=message) as info:
        records.read_manifest(str(tmp_path))
    assert str(tmp_path) in str(info.value)
