"""The conversion's shards written by an Apache Beam pipeline (--runner=beam): the same plan, another executor.

`conversion` lists the source, splits it and assigns candidates to shards once, as for the local runner, and writes
the manifest last. Here each pending shard is one unit of Beam work: its images are read and the shard is
written through Beam's FileSystems (so anything a Beam install reads and writes: local disks, gs://, ...), under a
temporary name renamed into place on local disks, and recorded in the state folder exactly as the local runner
records it. The records are all the driver needs back, and what a rerun after a failed pipeline reuses. The shard's
bytes come from the same `shards.ShardBuilder` as the local runner's, so the output is byte-identical to --runner=local.
"""

import contextlib
import dataclasses
import hashlib
import uuid

import apache_beam as beam
import tensorflow as tf
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from colorgan.core import storage
from colorgan.data import conversion_config
from colorgan.data import example_prep
from colorgan.data import records
from colorgan.data import shards

_RAW = CompressionTypes.UNCOMPRESSED  # Beam would otherwise guess a codec from the file name


def pipeline_options(text):
    """Beam's options from --beam_pipeline_options, read as `tfds build` reads its own: NAME=VALUE,... each one
    --NAME=VALUE."""
    return PipelineOptions(flags=[f"--{option}" for option in text.split(",") if option])


@dataclasses.dataclass(frozen=True)
class ShardTask:
    """One unit of Beam work: everything a worker needs to write one shard (picklable)."""

    shard: shards.Shard
    options: example_prep.PrepOptions
    output_dir: str
    state_dir: str


def write_shards(config, pending, state_dir, log):
    """Writes the pending shards in one pipeline; returns {filename: record}, as the local runner's writer does."""
    if not pending:
        return {}
    tasks = [ShardTask(shard, config.prep_options(), config.output_dir, state_dir) for shard in pending]
    log(f"beam: writing {len(tasks)} shards ({config.beam_pipeline_options or 'Beam default options'})")
    with beam.Pipeline(options=pipeline_options(config.beam_pipeline_options)) as pipeline:
        _ = pipeline | beam.Create(tasks) | beam.Reshuffle() | beam.Map(write_shard)
    finished = {task.shard.filename: shards.shard_record(state_dir, task.shard) for task in tasks}
    missing = sorted(name for name, record in finished.items() if record is None)
    if missing:
        raise conversion_config.ConversionFailed(
            f"--runner=beam: the pipeline ended without writing {', '.join(missing)} (its state record in "
            f"{state_dir} is missing); run the same command again")
    return finished


def write_shard(task):
    """Prepares a shard's images in order, writes the shard and its state record; returns the shard's file name."""
    shard = task.shard
    # TensorFlow frames the records (the local runner's bytes) into an in-memory file of this process; Beam's
    # FileSystems then write it out. Memory: one shard (--shard_size_mb) per running task.
    scratch = f"ram://colorgan_beam/{uuid.uuid4().hex}/{shard.filename}"
    builder = shards.ShardBuilder(shard, scratch, task.options)
    path, final = shards.write_paths(task.output_dir, task.state_dir, shard)
    try:
        for candidate in shard.candidates:
            builder.add(candidate, _prepare(candidate.locator, task.options))
        builder.close()
        size, sha256 = _copy_out(scratch, path)
    finally:
        with contextlib.suppress(tf.errors.OpError):
            tf.io.gfile.remove(scratch)
    if path != final:
        FileSystems.rename([path], [final])
    _write_whole(shards.record_path(task.state_dir, shard), records.json_text(builder.record(size, sha256)).encode())
    return shard.filename


def _prepare(locator, options):
    """example_prep.prepare_task on a file read through Beam's FileSystems; a file that cannot be opened is skipped as
    unreadable, as a worker of the local runner skips it."""
    try:
        f = FileSystems.open(locator, compression_type=_RAW)
    except Exception as e:  # noqa: BLE001 - one unreadable file must not fail the pipeline
        return example_prep.Skipped("unreadable", f"{type(e).__name__}: {e}")
    with f:
        return example_prep.prepare_task((f, options))


def _copy_out(source, target):
    """Copies the in-memory shard to `target` through FileSystems; returns its (size, sha256)."""
    sha, size = hashlib.sha256(), 0
    with tf.io.gfile.GFile(source, "rb") as f, FileSystems.create(target, compression_type=_RAW) as out:
        while chunk := f.read(1 << 20):
            out.write(chunk)
            sha.update(chunk)
            size += len(chunk)
        if storage.is_local(target):  # published by a rename
            storage.flush_to_disk(out)
    return size, sha.hexdigest()


def _write_whole(path, data):
    """Writes a small file so that it is never seen half written: a temporary name renamed on local disks, the name
    itself on object stores (an object appears whole)."""
    tmp = f"{path}.{uuid.uuid4().hex[:12]}{storage.PARTIAL_SUFFIX}" if storage.is_local(path) else path
    with FileSystems.create(tmp, compression_type=_RAW) as out:
        out.write(data)
        if storage.is_local(tmp):
            storage.flush_to_disk(out)
    if tmp != path:
        FileSystems.rename([tmp], [path])
