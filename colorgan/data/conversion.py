"""Converts image folders or a TFDS split into the sharded TFRecord dataset of `records`: the job, from its checked
config to the manifest written last.

Workers (separate processes, no TensorFlow) decode, resize and encode; this process serializes and writes, in a
fixed order, so the output is byte-identical whatever the number of workers. Work is planned as shards written one
after another; a finished shard is published (renamed from a temporary name on local disks, written once under its
final name on object stores) and recorded in a state folder, which lets a killed run resume where it stopped. The
manifest is written last: its presence means the dataset is complete. A lock file keeps a second run out of a local
output while one writes it. Paths go through `storage`, so inputs and outputs may be local, gs:// or ram://. With
--runner=beam, `beam_conversion` writes the same planned shards as an Apache Beam pipeline.
"""

import contextlib
import os
import sys

import tensorflow as tf

from colorgan.core import storage
from colorgan.data import dataset_manifest
from colorgan.data import disk_full
from colorgan.data import existing_output
from colorgan.data import local_writer
from colorgan.data import output_lock
from colorgan.data import records
from colorgan.data import shard_plan
from colorgan.data import sources
from colorgan.data import worker_pool
from colorgan.data.conversion_config import ConfigError

LOCK_FILENAME = ".make_tfrecords.lock"


def make_source(config):
    if config.input_dirs:
        return sources.FolderSource(config.input_dirs)
    return sources.TfdsSource(config.tfds_name, config.tfds_split, config.tfds_data_dir or None, config.tfds_image_key)


def run(config, log=None):
    """Runs (or resumes, or confirms up to date) one conversion; returns the manifest dict. Raises ConfigError
    listing every bad flag, and Stopped on SIGTERM or Ctrl-C (in the main thread), with finished shards kept for the
    rerun."""
    with worker_pool.stop_on_signals():
        return _run(config, log)


def _run(config, log):
    log = log or _stderr
    problems = config.validate()
    if problems:
        raise ConfigError(problems)
    scheme = storage.scheme(config.output_dir)
    if scheme not in storage.BUILTIN_SCHEMES:
        log(f"warning: --output_dir={config.output_dir}: the trainer reads {scheme}:// only with tensorflow-io "
            "installed (TensorFlow itself reads local, gs:// and ram:// paths)")
    source = make_source(config)
    created = not storage.isdir(config.output_dir)
    try:
        storage.makedirs(config.output_dir)
    except OSError as e:
        raise ValueError(f"--output_dir={config.output_dir}: cannot create it ({e.strerror or e})") from None
    try:
        with _output_lock(config, log):  # released on every way out: return, error, Stopped
            return _run_locked(config, source, log)
    except OSError as e:
        if not storage.is_disk_full(e):
            raise
        raise disk_full.DiskFullError(f"{config.output_dir}: no space left on device ({e.filename or e}); free space "
                                      "and run the same command again") from None
    finally:
        if created:
            with contextlib.suppress(OSError):
                if not storage.listdir(config.output_dir):  # only when the run left it empty
                    storage.rmtree(config.output_dir)


def _output_lock(config, log):
    """The output's lock file on a local disk. Object stores have no exclusive create to lock with: said once."""
    if not storage.is_local(config.output_dir):
        log(f"--output_dir={config.output_dir} is not locked (object stores have no exclusive create): no other run "
            "may write there meanwhile")
        return contextlib.nullcontext()
    return output_lock.OutputLock(os.path.join(config.output_dir, LOCK_FILENAME),
                                  subject=f"--output_dir={config.output_dir}", log=log, break_lock=config.break_lock)


def _run_locked(config, source, log):
    listing = source.list()
    log(f"found {len(listing.candidates)} candidate images ({len(listing.skipped)} other files skipped)")
    identity = {"flags": config.output_flags(source), "source_fingerprint": listing.fingerprint}
    state_dir = existing_output.state_dir(config.output_dir)
    found = existing_output.inspect(config.output_dir, identity)
    if found.foreign:
        raise existing_output.OutputExistsError(
            f"--output_dir={config.output_dir} {found.conflict}; move it away or choose another --output_dir: "
            "--overwrite never replaces it")
    if found.up_to_date is not None:
        storage.rmtree(state_dir)
        log(f"up to date: {config.output_dir} ({dataset_manifest.counts(found.up_to_date)})")
        dataset_manifest.require_examples(config.output_dir, found.up_to_date)
        return found.up_to_date
    if found.conflict:
        existing_output.refuse_or_clear(config.output_dir, config.overwrite, log, found.conflict)

    written = disk_full.Written(candidates=len(listing.candidates))
    try:
        storage.makedirs(state_dir)
        pending = _plan(config, source, listing, identity, found.saved_plan, written, log)
        if config.runner == "beam":
            from colorgan.data import beam_conversion  # noqa: PLC0415 - apache-beam is an optional extra

            written.finished.update(beam_conversion.write_shards(config, pending, state_dir, log))
        manifest = dataset_manifest.build(config, identity, written.shards, written.finished, listing.skipped)
        written.writing = records.MANIFEST_FILENAME
        records.write_json_atomic(records.manifest_path(config.output_dir), manifest)
    except (OSError, tf.errors.OpError) as e:
        if not storage.is_disk_full(e):
            raise
        raise disk_full.disk_full_error(config.output_dir, state_dir, config.image_size, written) from None
    storage.rmtree(state_dir)
    log(dataset_manifest.summary(config.output_dir, manifest))
    dataset_manifest.require_examples(config.output_dir, manifest)
    return manifest


def _plan(config, source, listing, identity, saved_plan, written, log):
    """Plans the shards (or takes the saved plan), finds those an earlier run finished and, with the local runner,
    writes the others; returns the shards still to write."""
    by_split = shard_plan.split_candidates(listing.candidates, config.val_fraction)
    # The Beam runner plans here too (a sample of SIZE_SAMPLE images at most), then leaves the shards to Beam.
    with worker_pool.WorkerPool(config.workers() if config.runner == "local" else 1) as pool:
        if saved_plan is None:
            num_shards = {split: shard_plan.shard_count(config, pool, source, items)
                          for split, items in by_split.items()}
            written.writing = existing_output.PLAN_FILENAME
            existing_output.save_plan(config.output_dir, identity, num_shards)
        else:
            num_shards = saved_plan["num_shards"]
        state_dir = existing_output.state_dir(config.output_dir)
        written.shards = [shard for split in records.SPLITS
                          for shard in shard_plan.make_shards(split, by_split[split], num_shards[split])]
        written.finished.update({shard.filename: shard_plan.finished_record(config.output_dir, state_dir, shard)
                                 for shard in written.shards})
        pending = [shard for shard in written.shards if written.finished[shard.filename] is None]
        if len(pending) < len(written.shards):
            log(f"resuming: reusing {len(written.shards) - len(pending)} finished shards")
        if config.runner == "local":
            local_writer.ShardWriter(config, state_dir, written, log).write(pool, source, pending)
    return pending


def _stderr(message):
    print(f"make_tfrecords: {message}", file=sys.stderr, flush=True)
