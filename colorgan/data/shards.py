"""A conversion's unit of work, shared by both runners (local worker processes, Apache Beam): a planned shard, the
bytes of its TFRecord file, where it is written and published, and the record its writer leaves in the state folder
(which a rerun reuses)."""

import dataclasses
import json
import os

import tensorflow as tf

from colorgan.core import storage
from colorgan.data import example_prep
from colorgan.data import records


@dataclasses.dataclass
class Shard:
    split: str
    index: int
    count: int
    candidates: list

    @property
    def filename(self):
        return records.shard_filename(self.split, self.index, self.count)


class ShardBuilder:
    """Serializes one shard's examples, in order, into a TFRecord file at `path` and keeps its skipped files: the
    shard's bytes, whoever runs it (the local runner, a Beam worker)."""

    def __init__(self, shard, path, options):
        self.shard, self.path, self.options = shard, path, options
        self.writer = tf.io.TFRecordWriter(path)
        self.num_examples = 0
        self.skipped = []

    def add(self, candidate, result):
        if isinstance(result, example_prep.Skipped):
            self.skipped.append({"path": candidate.key, "reason": result.reason, "detail": result.detail})
            return
        options = self.options
        self.writer.write(records.serialize_example(
            result.rgb, result.gray, options.encoding, options.image_size, options.image_size, candidate.key))
        self.num_examples += 1

    def close(self):
        self.writer.close()

    def record(self, size, sha256):
        """What the state folder and the manifest keep of the finished shard."""
        return {"file": self.shard.filename, "num_examples": self.num_examples, "bytes": size, "sha256": sha256,
                "skipped": self.skipped}


def record_path(state_dir, shard):
    """Where a finished shard's record lives in the state folder."""
    return os.path.join(state_dir, shard.filename + ".json")


def shard_record(state_dir, shard):
    """The record a finished shard left in the state folder (file, num_examples, bytes, sha256, skipped), or None
    when it is absent or damaged."""
    record = read_json(record_path(state_dir, shard))
    if not (isinstance(record, dict) and is_count(record.get("bytes")) and is_count(record.get("num_examples"))
            and isinstance(record.get("sha256"), str) and isinstance(record.get("skipped"), list)
            and record.get("file") == shard.filename):
        return None
    return record


def write_paths(output_dir, state_dir, shard):
    """(where a shard is written, where it is published): on a local disk a temporary name in the state folder,
    renamed into place once complete; on object stores, where a rename is a copy, the final name, written once (a
    partial one there has no record in the state folder, so it is never reused)."""
    final = os.path.join(output_dir, shard.filename)
    if storage.is_local(output_dir):
        return os.path.join(state_dir, shard.filename + storage.PARTIAL_SUFFIX), final
    return final, final


DAMAGED = object()


def read_json(path):
    """The JSON in one of this tool's state files; None when absent, DAMAGED when not JSON."""
    try:
        return json.loads(storage.read_text(path))
    except FileNotFoundError:
        return None
    except ValueError:
        return DAMAGED


def is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
