"""The manifest a conversion writes last (its presence means the dataset is complete): built from the finished
shards' records, checked when read back by the next run, and summed up in one line for people. `records` reads
manifests for training and tools; this is the writer's side."""

import collections

from colorgan.data import conversion_config
from colorgan.data import records
from colorgan.data import shards


def build(config, identity, planned, finished, listing_skipped):
    """The manifest of a finished conversion: each planned shard's record (`finished`), every skipped file, and
    the identity (flags, source fingerprint) that tells a rerun whether it is up to date."""
    splits = {}
    skipped = list(listing_skipped)
    for split in records.SPLITS:
        entries = []
        for shard in (s for s in planned if s.split == split):
            record = finished[shard.filename]
            skipped.extend(record["skipped"])
            entries.append({k: record[k] for k in ("file", "num_examples", "bytes", "sha256")})
        splits[split] = {"num_examples": sum(e["num_examples"] for e in entries), "shards": entries}
    return {
        "format_version": records.FORMAT_VERSION,
        "image_size": config.image_size,
        "resize": config.resize,
        "encoding": config.encoding,
        "splits": splits,
        "skipped": sorted(skipped, key=lambda s: (s["path"], s["reason"])),
        "source": {"kind": "tfds" if config.tfds_name else "folders", "fingerprint": identity["source_fingerprint"]},
        "flags": identity["flags"],
    }


def counts(manifest):
    """'train N, val M': the examples of each split."""
    return ", ".join(f"{split} {manifest['splits'][split]['num_examples']}" for split in records.SPLITS)


def summary(output_dir, manifest):
    """The line a finished conversion ends with: examples, shards, size and why files were skipped."""
    reasons = collections.Counter(s["reason"] for s in manifest["skipped"])
    total_bytes = sum(sh["bytes"] for sp in manifest["splits"].values() for sh in sp["shards"])
    shard_counts = "+".join(str(len(manifest["splits"][s]["shards"])) for s in records.SPLITS)
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items())) or "none"
    return (f"wrote {counts(manifest)} examples in {shard_counts} shards ({total_bytes / 2**20:.1f} MiB) "
            f"to {output_dir}; skipped {sum(reasons.values())}: {skipped}")


def require_examples(output_dir, manifest):
    """A dataset without a single example is of no use downstream: an error, with why every file was skipped (the
    manifest, kept, lists each)."""
    if sum(split["num_examples"] for split in manifest["splits"].values()):
        return
    reasons = collections.Counter(entry["reason"] for entry in manifest["skipped"])
    detail = ", ".join(f"{reason}: {count}" for reason, count in reasons.most_common()) or "no files found"
    raise conversion_config.ConversionFailed(f"{output_dir}: no example written, every file was skipped ({detail})")


def manifest_problem(manifest):
    """What makes a manifest with our marker unusable here, or None: the fields this tool reads back."""
    for key in ("image_size", "resize", "encoding"):
        if key not in manifest:
            return f"no {key!r}"
    if not isinstance(manifest.get("flags"), dict):
        return "'flags' is not an object"
    source = manifest.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("fingerprint"), str):
        return "'source' has no fingerprint"
    splits = manifest.get("splits")
    if not isinstance(splits, dict):
        return "'splits' is not an object"
    for split in records.SPLITS:
        entry = splits.get(split)
        if not isinstance(entry, dict) or not shards.is_count(entry.get("num_examples")) or not isinstance(
                entry.get("shards"), list):
            return f"splits.{split} is damaged"
        for i, shard in enumerate(entry["shards"]):
            if not (isinstance(shard, dict) and isinstance(shard.get("file"), str)
                    and records.is_shard_filename(shard["file"]) and isinstance(shard.get("sha256"), str)
                    and shards.is_count(shard.get("bytes")) and shards.is_count(shard.get("num_examples"))):
                return f"splits.{split}.shards[{i}] is damaged"
    skipped = manifest.get("skipped")
    if not isinstance(skipped, list) or not all(isinstance(e, dict) and isinstance(e.get("reason"), str)
                                                for e in skipped):
        return "'skipped' is damaged"
    return None
