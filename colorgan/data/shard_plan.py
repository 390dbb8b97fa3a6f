"""How a conversion's candidates become shards: the split of each (by a hash of its key), how many shards per split
(about --shard_size_mb each, estimated from a sample), which candidates each holds, and which shards an earlier run
already finished."""

import math
import os

from colorgan.core import storage
from colorgan.data import example_prep
from colorgan.data import records
from colorgan.data import shards
from colorgan.data import sources

# Images sampled to estimate the encoded size of an example when planning shard counts of large datasets.
SIZE_SAMPLE = 32


def split_candidates(candidates, val_fraction):
    """{split: candidates}: each candidate's split decided by a stable hash of its key."""
    by_split = {split: [] for split in records.SPLITS}
    for candidate in candidates:
        by_split["val" if sources.key_fraction(candidate.key) < val_fraction else "train"].append(candidate)
    return by_split


def shard_count(config, pool, source, candidates):
    """Shards of about --shard_size_mb, but at least --min_shards (never more than examples), or --num_shards."""
    count = len(candidates)
    if count == 0:
        return 0
    if config.num_shards:
        return min(config.num_shards, count)
    shard_bytes = config.shard_size_mb * 2**20
    # Raw pixels bound a PNG/JPEG pair from above: if even that fits in min_shards, skip the sampling.
    upper_bound = 4 * config.image_size**2 + 1024
    if count * upper_bound <= config.min_shards * shard_bytes:
        return min(config.min_shards, count)
    options = config.prep_options()
    sample = pool.map(example_prep.prepare_task, ((p, options) for p in source.payloads(candidates[:SIZE_SAMPLE])))
    sizes = [len(r.rgb) + len(r.gray) + 64 for r in sample if isinstance(r, example_prep.Prepared)]
    per_example = sum(sizes) / len(sizes) if sizes else upper_bound
    return min(count, max(config.min_shards, math.ceil(count * per_example / shard_bytes)))


def make_shards(split, candidates, count):
    """`count` shards of consecutive candidates, as even as can be."""
    return [
        shards.Shard(split, i, count, candidates[i * len(candidates) // count:(i + 1) * len(candidates) // count])
        for i in range(count)
    ]


def finished_record(output_dir, state_dir, shard):
    """The saved record of a shard finished by an earlier run, if the file still matches it."""
    record = shards.shard_record(state_dir, shard)
    path = os.path.join(output_dir, shard.filename)
    if record is None or not storage.exists(path):
        return None
    size, sha256 = records.file_digest(path)
    return record if (size, sha256) == (record["bytes"], record["sha256"]) else None
