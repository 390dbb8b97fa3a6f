"""Tests of colorgan.data.input_pipeline over a real dataset: shapes, alignment, sharding, determinism, resume,
errors."""

import collections
import hashlib
import os
import shutil

import numpy as np
import pytest
import run_dirs
import tensorflow as tf

from colorgan.core import color
from colorgan.data import input_pipeline
from colorgan.data import records

STORED = 48


@pytest.fixture(scope="module")
def data_dir(photo_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("pipeline_data"))
    run_dirs.write_records(photo_dir, out, STORED, min_shards=4, val_fraction=0.25)
    return out


def _context(pipelines, pipeline_id, replicas=None):
    return tf.distribute.InputContext(num_input_pipelines=pipelines, input_pipeline_id=pipeline_id,
                                      num_replicas_in_sync=replicas or pipelines)


def _batches(dataset, count):
    return [(x.numpy(), y.numpy()) for x, y in dataset.take(count)]


def _flip_invariant_hash(rgb):
    u8 = np.round(rgb * 255).astype(np.uint8)
    return hashlib.sha256(min(u8.tobytes(), u8[:, ::-1].tobytes())).hexdigest()


def test_training_batches_have_the_promised_shapes_and_ranges(data_dir):
    (gray, rgb), = _batches(input_pipeline.make_dataset(data_dir, "train", 4, 32, seed=1), 1)
    assert gray.shape == (4, 32, 32, 1) and rgb.shape == (4, 32, 32, 3)
    assert gray.dtype == np.float32 and rgb.dtype == np.float32
    assert 0.0 <= gray.min() and gray.max() <= 1.0 and 0.0 <= rgb.min() and rgb.max() <= 1.0
    assert rgb.std() > 0.05  # real pixels, not zeros


def test_lab_targets_are_the_chroma_of_the_rgb_batch_of_the_same_seed(data_dir):
    """The Lab stream is the RGB stream of the same seed in other coordinates: its ab, joined with the L* of the RGB
    batch, converts back to that RGB batch, so swapped, negated or mis-scaled a/b channels cannot pass. Its L input
    is the L* of the gray image (what inference on a black-and-white photo feeds), not of the colour one."""
    def stream(space):
        return _batches(input_pipeline.make_dataset(data_dir, "train", 4, 32, color_space=space, seed=2,
                                                    deterministic=True), 2)

    for (l_norm, ab_norm), (gray, rgb) in zip(stream("lab"), stream("rgb")):
        assert l_norm.shape == (4, 32, 32, 1) and ab_norm.shape == (4, 32, 32, 2)
        np.testing.assert_allclose(l_norm, color.lab_from_gray(gray).numpy(), atol=1e-5)
        lightness = color.rgb_to_lab(rgb)[..., :1]
        back = color.lab_to_rgb(tf.concat([lightness, color.denormalize_ab(ab_norm)], axis=-1)).numpy()
        np.testing.assert_allclose(back, rgb, atol=1 / 255)
        assert np.abs(ab_norm).max() <= 1.2 and np.abs(ab_norm).mean() > 0.01  # colour photos have colour


@pytest.mark.parametrize("space", ["lab", "rgb"])
def test_the_compiled_pair_equals_its_op_by_op_form(space):
    """XLA fuses the colour maths (bench_pipeline --stages) without changing what it computes: every uint8 colour,
    at two batch sizes, within float32 rounding of the same ops run one by one."""
    space = color.color_space(space)
    every_colour = np.arange(256**3, dtype=np.uint32).view(np.uint8).reshape(256, 256, 256, 4)[..., :3]
    for rgb in (every_colour, every_colour[:3]):
        for compiled, op_by_op in zip(input_pipeline.model_pair(space, rgb),
                                      input_pipeline.model_pair.python_function(space, tf.constant(rgb))):
            np.testing.assert_allclose(compiled, op_by_op, rtol=0, atol=2e-6)


def test_gray_stays_the_luma_of_the_augmented_rgb(data_dir):
    for gray, rgb in _batches(input_pipeline.make_dataset(data_dir, "train", 8, 24, seed=3), 4):
        rgb_u8 = np.round(rgb * 255).astype(np.uint8)
        np.testing.assert_array_equal(np.round(gray * 255).astype(np.uint8), color.luma_u8(rgb_u8).numpy())


@pytest.mark.parametrize("pipelines", [2, 8])  # 2: sharded by file (4 shards); 8: by example
def test_every_example_appears_once_per_epoch_across_pipelines(data_dir, pipelines):
    manifest = records.read_manifest(data_dir)
    expected = collections.Counter(
        _flip_invariant_hash(rgb / 255.0) for path in records.shard_paths(data_dir, manifest, "train")
        for _, _, rgb in records.read_examples(path))
    seen = collections.Counter()
    for pipeline_id in range(pipelines):
        context = _context(pipelines, pipeline_id)
        count = input_pipeline.examples_per_pipeline(data_dir, "train", context)
        dataset = input_pipeline.make_dataset(data_dir, "train", 1, STORED, input_context=context, seed=5)
        seen.update(_flip_invariant_hash(rgb[0]) for _, rgb in _batches(dataset, count))
    assert seen == expected and sum(expected.values()) == manifest["splits"]["train"]["num_examples"]


def test_same_seed_same_stream_other_seed_other_stream(data_dir):
    def stream(seed):
        return _batches(input_pipeline.make_dataset(data_dir, "train", 4, 32, seed=seed, deterministic=True), 5)

    first, again, other = stream(7), stream(7), stream(8)
    for (g1, r1), (g2, r2) in zip(first, again):
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_array_equal(g1, g2)
    assert any(not np.array_equal(r1, r2) for (_, r1), (_, r2) in zip(first, other))


@pytest.mark.parametrize("replicas", [1, 2])
def test_starting_at_a_step_resumes_at_the_same_element(data_dir, replicas):
    context = _context(1, 0, replicas)
    per_epoch = input_pipeline.examples_per_pipeline(data_dir, "train", context)

    def stream(start_step, count):
        return _batches(input_pipeline.make_dataset(data_dir, "train", 3, 32, input_context=context, seed=11,
                                                    deterministic=True, start_position=start_step), count)

    # Each global step takes `replicas` per-replica batches of 3 from the one pipeline; run across an epoch edge.
    total = 3 * (per_epoch // 3 + 4)
    fresh = stream(0, total)
    start_step = (per_epoch // 3 - 1) // replicas
    resumed = stream(start_step, total - start_step * replicas)
    assert len(resumed) > per_epoch // 3 - start_step * replicas  # crosses into the next epoch
    for (_, expected), (_, actual) in zip(fresh[start_step * replicas:], resumed):
        np.testing.assert_array_equal(actual, expected)


def test_an_unordered_stream_resumes_exact_to_the_epoch(data_dir):
    """deterministic=False lets parallel reads reorder examples within an epoch, so a resume mid-epoch may see other
    examples for the rest of that epoch, but never crosses its edge: the stream holds the rest of the epoch (no
    example twice), then whole epochs. Counted over the window, since the unordered parallel decode may deliver a
    batch of one epoch beside one of the next (which made a per-epoch count fail now and then under load)."""
    per_epoch = input_pipeline.examples_per_pipeline(data_dir, "train")
    batch = next(size for size in (5, 3, 2) if per_epoch % size == 0)  # batches that end at the epoch's edge
    batches_per_epoch = per_epoch // batch
    start = batches_per_epoch + batches_per_epoch // 2 + 1  # inside the second epoch
    left_in_epoch = 2 * batches_per_epoch - start
    dataset = input_pipeline.make_dataset(data_dir, "train", batch, STORED, seed=13, deterministic=False,
                                          start_position=start)
    hashes = [_flip_invariant_hash(rgb) for _, batch_rgb in _batches(dataset, left_in_epoch + 2 * batches_per_epoch)
              for rgb in batch_rgb]
    every_example = collections.Counter(_flip_invariant_hash(rgb / 255.0) for path in records.shard_paths(
        data_dir, records.read_manifest(data_dir), "train") for _, _, rgb in records.read_examples(path))
    two_epochs = collections.Counter({key: 2 * count for key, count in every_example.items()})
    window = collections.Counter(hashes)
    rest_of_epoch = window - two_epochs
    assert all(window[key] >= count for key, count in two_epochs.items())  # two whole epochs
    assert sum(rest_of_epoch.values()) == left_in_epoch * batch and set(rest_of_epoch.values()) == {1}
    assert set(rest_of_epoch) <= set(every_example)


def test_random_crop_false_resizes_the_whole_stored_image(data_dir):
    """Each training square is the stored image resized (antialiased, rounded), maybe mirrored: never a crop."""
    manifest = records.read_manifest(data_dir)
    paths = records.shard_paths(data_dir, manifest, "train")
    stored = [rgb for path in paths for _, _, rgb in records.read_examples(path)]
    resized = [np.round(tf.image.resize(rgb.astype(np.float32), [32, 32], antialias=True).numpy()).astype(np.uint8)
               for rgb in stored]
    candidates = np.stack(resized + [image[:, ::-1] for image in resized]).astype(int)
    seen = set()
    for _, rgb in _batches(input_pipeline.make_dataset(data_dir, "train", 4, 32, seed=4, deterministic=True,
                                                       random_crop=False), 5):
        for image in np.round(rgb * 255).astype(int):
            distances = np.abs(candidates - image).max(axis=(1, 2, 3))
            assert distances.min() == 0, f"not a resize of any stored image (closest differs by {distances.min()})"
            seen.add(int(distances.argmin()) % len(resized))
    assert len(seen) == 20  # 20 different examples, each matched


def test_evaluation_is_one_fixed_pass_of_centre_crops(data_dir):
    manifest = records.read_manifest(data_dir)
    count = manifest["splits"]["val"]["num_examples"]
    batches = _batches(input_pipeline.make_dataset(data_dir, "val", 2, 40, training=False), 100)
    assert len(batches) == count // 2
    first_path = records.shard_paths(data_dir, manifest, "val")[0]
    _, _, rgb = next(records.read_examples(first_path))
    np.testing.assert_array_equal(np.round(batches[0][1][0] * 255).astype(np.uint8), rgb[4:44, 4:44])
    again = _batches(input_pipeline.make_dataset(data_dir, "val", 2, 40, training=False), 100)
    for (_, a), (_, b) in zip(batches, again):
        np.testing.assert_array_equal(a, b)


def test_clear_errors(data_dir, tmp_path):
    with pytest.raises(records.DatasetError, match="no manifest"):
        input_pipeline.make_dataset(str(tmp_path), "train", 2, 32)
    with pytest.raises(records.DatasetError, match=f"image_size 64 is larger than the stored {STORED}"):
        input_pipeline.make_dataset(data_dir, "train", 2, 64)
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in os.listdir(data_dir):
        os.symlink(os.path.join(data_dir, name), broken / name)
    victim = records.read_manifest(data_dir)["splits"]["train"]["shards"][2]["file"]
    (broken / victim).unlink()
    with pytest.raises(records.DatasetError, match=f"{victim}: shard listed in the manifest is missing"):
        input_pipeline.make_dataset(str(broken), "train", 2, 32)


def test_damaged_record_is_traced_to_its_shard(data_dir, tmp_path):
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for name in os.listdir(data_dir):
        shutil.copy(os.path.join(data_dir, name), damaged / name)
    victim = records.read_manifest(data_dir)["splits"]["train"]["shards"][1]["file"]
    data = bytearray((damaged / victim).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (damaged / victim).write_bytes(bytes(data))
    dataset = input_pipeline.make_dataset(str(damaged), "train", 2, 32, seed=0)
    with pytest.raises(tf.errors.DataLossError):
        for _ in dataset.take(100):
            pass
    error = input_pipeline.find_damaged_shard(str(damaged), "train")
    assert str(error).startswith(f"{damaged / victim}: sha256 ")


def test_batches_per_epoch_counts_global_batches_and_is_zero_for_an_empty_split(data_dir, photo_dir, tmp_path):
    context = _context(2, 1, replicas=4)  # 2 pipelines, each feeding 2 replicas
    examples = input_pipeline.examples_per_pipeline(data_dir, "val", context)
    assert input_pipeline.batches_per_epoch(data_dir, "val", 1, context) == examples // 2
    assert input_pipeline.batches_per_epoch(data_dir, "train", 3) == (
        records.read_manifest(data_dir)["splits"]["train"]["num_examples"] // 3)
    no_val = str(tmp_path / "no_val")
    run_dirs.write_records(photo_dir, no_val, STORED, min_shards=2, val_fraction=0.0)
    assert input_pipeline.batches_per_epoch(no_val, "val", 1) == 0
