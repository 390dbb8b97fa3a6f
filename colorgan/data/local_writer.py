"""The local runner's writer: pending shards written in order from the worker processes' results, each published
(renamed into place on local disks) and recorded in the state folder once complete, with a progress line."""

import contextlib

import tensorflow as tf

from colorgan.core import progress
from colorgan.core import storage
from colorgan.data import example_prep
from colorgan.data import records
from colorgan.data import shards


class ShardWriter:
    """Writes pending shards into `written` (a disk_full.Written): each finished shard's record as it closes, and
    the shard an error interrupted."""

    def __init__(self, config, state_dir, written, log):
        self.output_dir, self.state_dir, self.written, self.log = config.output_dir, state_dir, written, log
        self.options, self.progress_interval_s = config.prep_options(), config.progress_interval_s
        self.current = None

    def write(self, pool, source, pending):
        """Writes the pending shards. On any error (a full disk, Stopped) the shard being written is closed and its
        partial file removed: a rerun starts that shard again anyway."""
        try:
            self._write(pool, source, pending)
        except BaseException:
            if self.current is not None:
                self.written.abandon(*self.current.abandon())
                self.current = None
            raise

    def _write(self, pool, source, pending):
        finished = self.written.finished
        total = self.written.candidates
        done_before = total - sum(len(shard.candidates) for shard in pending)
        with progress.Progress("make_tfrecords", total, "image", self.log, done=done_before,
                               every_s=self.progress_interval_s) as bar:
            self._write_splits(pool, source, pending, finished, bar)

    def _write_splits(self, pool, source, pending, finished, bar):
        def line(done, rate, eta):
            return (f"{done}/{bar.total} images ({100 * done / max(bar.total, 1):.1f}%), {rate:.1f} images/s, "
                    f"ETA {eta}")

        for split in records.SPLITS:
            split_shards = [shard for shard in pending if shard.split == split]
            owners = [(shard, candidate) for shard in split_shards for candidate in shard.candidates]
            payloads = source.payloads([candidate for _, candidate in owners])
            tasks = ((payload, self.options) for payload in payloads)
            for (shard, candidate), result in zip(owners, pool.map(example_prep.prepare_task, tasks)):
                if self.current is None or self.current.shard is not shard:
                    if self.current is not None:
                        finished[self.current.shard.filename] = self.current.close()
                    self.current = None  # closed: an error in the next one's opening leaves nothing to abandon
                    self.current = _OpenShard(self.output_dir, self.state_dir, shard, self.options)
                self.current.add(candidate, result)
                bar.update(1, line)
            if self.current is not None:
                finished[self.current.shard.filename] = self.current.close()
                self.current = None


class _OpenShard:
    """One shard being written by the local runner; `close` publishes it and records it for resuming."""

    def __init__(self, output_dir, state_dir, shard, options):
        self.shard = shard
        path, self.final_path = shards.write_paths(output_dir, state_dir, shard)
        self.record_path = shards.record_path(state_dir, shard)
        self.builder = shards.ShardBuilder(shard, path, options)

    def add(self, candidate, result):
        self.builder.add(candidate, result)

    def close(self):
        self.builder.close()
        path = self.builder.path
        if path != self.final_path:  # published by a rename: TensorFlow's writer never syncs
            with storage.open_for_reading(path) as f:
                storage.flush_to_disk(f)
        size, sha256 = records.file_digest(path)
        if path != self.final_path:
            storage.rename(path, self.final_path)
        record = self.builder.record(size, sha256)
        records.write_json_atomic(self.record_path, record)
        return record

    def abandon(self):
        """Closes and removes the partial file; returns (filename, bytes it had, candidates added)."""
        with contextlib.suppress(tf.errors.OpError, OSError):
            self.builder.close()  # before the removal: an open file keeps its space
        path = self.builder.path
        size = storage.size(path) if storage.exists(path) else 0
        storage.remove(path)
        return self.shard.filename, size, self.builder.num_examples + len(self.builder.skipped)
