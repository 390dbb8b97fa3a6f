"""Checks a dataset directory against its manifest, record by record, and draws its preview sheet."""

import dataclasses
import os

import tensorflow as tf

from colorgan.core import color
from colorgan.core import progress
from colorgan.core import visualize
from colorgan.data import records


@dataclasses.dataclass
class Report:
    problems: list  # one line each, naming the shard
    examples: dict  # split -> examples verified


def verify_dataset(data_dir, log=None):
    """Verifies every shard: present, size and sha256 as recorded, every record parses and decodes at the
    manifest's size, the gray image is the luma of the colour one (lossless encodings), and the counts add up.
    With `log`, shows its progress (`progress.Progress`)."""
    manifest = records.read_manifest(data_dir)
    problems, examples = [], {}
    total = sum(len(entry["shards"]) for entry in manifest["splits"].values())

    def line(done, rate, eta):
        return f"inspect_tfrecords: {done}/{total} shards, {rate:.1f} shards/s, ETA {eta}"

    with progress.Progress("inspect_tfrecords", total, "shard", log) as bar:
        for split, entry in sorted(manifest["splits"].items()):
            examples[split] = 0
            for shard in entry["shards"]:
                count, shard_problems = verify_shard(data_dir, manifest, shard)
                problems += [f"{shard['file']}: {p}" for p in shard_problems]
                examples[split] += count
                bar.update(1, line)
    for split, entry in sorted(manifest["splits"].items()):
        recorded = sum(shard["num_examples"] for shard in entry["shards"])
        if recorded != entry["num_examples"]:
            problems.append(f"{records.MANIFEST_FILENAME}: split {split} says {entry['num_examples']} examples, "
                            f"its shards say {recorded}")
    return Report(problems, examples)


def verify_shard(data_dir, manifest, shard):
    """(records read, problems) for one shard entry of the manifest."""
    path = os.path.join(data_dir, shard["file"])
    size = manifest["image_size"]
    lossless = manifest["encoding"] == "png"
    problem = records.shard_size_problem(data_dir, shard)
    if problem:
        return 0, [problem]
    _, sha256 = records.file_digest(path)
    if sha256 != shard["sha256"]:
        return 0, [f"sha256 {sha256[:12]}... differs from the manifest's {shard['sha256'][:12]}..."]
    count = 0
    try:
        for count, (key, gray, rgb) in enumerate(records.read_examples(path), start=1):
            if gray.shape != (size, size, 1) or rgb.shape != (size, size, 3):
                return count, [f"record {count - 1} ({key}) is {rgb.shape}, expected {(size, size, 3)}"]
            if lossless and not (color.luma_u8(rgb).numpy() == gray).all():
                return count, [f"record {count - 1} ({key}): gray is not the luma of rgb"]
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
        return count, [f"damaged record after {count} good ones ({e.message.splitlines()[0]})"]
    if count != shard["num_examples"]:
        return count, [f"{count} records, manifest says {shard['num_examples']}"]
    return count, []


def preview_sheet(data_dir, split="val", count=8, pairs_per_row=4):
    """The seed's "dataset samples" figure: gray | colour pairs of the first examples of a split."""
    manifest = records.read_manifest(data_dir)
    if manifest["splits"].get(split, {}).get("num_examples", 0) == 0:
        split = "train"
    pairs = []
    for path in records.shard_paths(data_dir, manifest, split):
        pairs += [[gray, rgb] for _, gray, rgb in records.read_examples(path, count - len(pairs))]
        if len(pairs) >= count:
            break
    if not pairs:
        raise records.DatasetError(f"{data_dir}: no examples to preview")
    rows = [sum(pairs[i:i + pairs_per_row], []) for i in range(0, len(pairs), pairs_per_row)]
    return visualize.image_grid(rows, titles=("gray", "colour") * min(pairs_per_row, len(pairs)))
