"""Converts image folders or a TFDS split into the sharded TFRecord dataset of `colorgan.records`.

Workers (separate processes, no TensorFlow) decode, resize and encode; this process serializes and writes, in a
fixed order, so the output is byte-identical whatever the number of workers. Work is planned as shards written one
after another; a finished shard is published (renamed from a temporary name on local disks, written once under its
final name on object stores) and recorded in a state folder, which lets a killed run resume where it stopped. The
manifest is written last: its presence means the dataset is complete. A lock file keeps a second run out of a local
output while one writes it. Paths go through colorgan.storage, so inputs and outputs may be local, gs:// or ram://.
With --runner=beam, colorgan.beam_conversion writes the same planned shards as an Apache Beam pipeline.
"""

import collections
import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import sys
import time

import tensorflow as tf

from colorgan import flag_config
from colorgan import imaging
from colorgan import output_lock
from colorgan import records
from colorgan import sources
from colorgan import storage
from colorgan import worker_pool

STATE_DIRNAME = ".make_tfrecords_state"
LOCK_FILENAME = ".make_tfrecords.lock"
# Bounds that keep the manifest valid JSON (no Infinity) and records of a trainable size.
MAX_SHARD_SIZE_MB = 65536
MAX_IMAGE_SIZE = 4096
PLAN_FILENAME = "plan.json"
# Images sampled to estimate the encoded size of an example when planning shard counts of large datasets.
SIZE_SAMPLE = 32
RUNNERS = ("local", "beam")
# ram:// files live in one process: worker processes (local or Beam) cannot see them.
_PROCESS_LOCAL_SCHEME = "ram"

_field = flag_config.field


@dataclasses.dataclass(frozen=True)
class ConversionConfig:
    """Every setting of a conversion, each flag declared once; `output_flags()` is the subset that determines the
    output bytes, recorded in the manifest."""

    output_dir: str = _field("", "Where shards and manifest.json go: a local folder, gs://bucket/folder, or ram://.")
    input_dirs: tuple = _field((), "Image folder(s), local or gs://; repeat the flag or give a comma list.",
                               flag_name="input_dir")
    tfds_name: str = _field("", "Read a prepared TFDS dataset instead of folders.")
    tfds_split: str = _field("train", "TFDS split (slicing syntax allowed).")
    tfds_data_dir: str = _field("", "TFDS data_dir holding the prepared dataset.")
    tfds_image_key: str = _field("image", "Name of the image feature in the TFDS dataset.")
    image_size: int = _field(150, "Side of the stored square images (the seed used 150).")
    resize: str = _field("crop", "crop: centre square crop; stretch: ignore aspect (the seed); pad: letterbox.",
                         imaging.RESIZE_MODES)
    encoding: str = _field("jpeg", "Codec of both stored images: jpeg (4:4:4) reads fastest; png is lossless.",
                           records.ENCODINGS)
    jpeg_quality: int = _field(95, "JPEG quality with --encoding=jpeg.")
    val_fraction: float = _field(0.1, "Share of examples in the val split (by a hash of the key).")
    shard_size_mb: float = _field(128.0, "Target shard size in MiB.")
    min_shards: int = _field(16, "Never fewer shards per split (unless fewer examples).")
    num_shards: int = _field(0, "Fix the shard count of each split (0: from --shard_size_mb).")
    max_pixels: int = _field(100_000_000, "Skip images with more pixels (decompression bombs).")
    min_size: int = _field(0, "Skip images whose shorter side is smaller (0: image_size / 2).")
    num_workers: int = _field(0, "Decoding processes (0: all usable cores).")
    overwrite: bool = _field(False, "Replace an output made with other flags or inputs (only this tool's files: a "
                             "manifest.json it did not write is never replaced).")
    break_lock: bool = _field(False, "Take the output's lock even if another run, maybe on another host, seems to "
                              "hold it: only when no run is writing there.")
    runner: str = _field("local", "local: worker processes on this host; beam: an Apache Beam pipeline, one unit of "
                         "work per shard (the [beam] extra).", RUNNERS)
    beam_pipeline_options: str = _field("", "With --runner=beam: Beam's options as a comma list, as `tfds build` "
                                        "takes them: runner=DataflowRunner,project=P,region=R,... (BUILD.md).")
    progress_interval_s: float = 1.0  # not a flag: tests silence the progress lines

    def validate(self):
        """Every problem as one line naming its flag; empty when the config is usable."""
        problems = []

        def check(ok, message):
            if not ok:
                problems.append(message)

        check(bool(self.output_dir), "--output_dir is required")
        check(bool(self.input_dirs) != bool(self.tfds_name), "give exactly one of --input_dir or --tfds_name")
        check(self.image_size >= 8, f"--image_size={self.image_size}: must be >= 8")
        check(self.image_size <= MAX_IMAGE_SIZE, f"--image_size={self.image_size}: must be <= {MAX_IMAGE_SIZE}")
        problems.extend(flag_config.choice_problems(self))
        check(1 <= self.jpeg_quality <= 100, f"--jpeg_quality={self.jpeg_quality}: must be in 1..100")
        check(0.0 <= self.val_fraction < 1.0, f"--val_fraction={self.val_fraction}: must be in [0, 1)")
        check(math.isfinite(self.shard_size_mb) and 0 < self.shard_size_mb <= MAX_SHARD_SIZE_MB,
              f"--shard_size_mb={self.shard_size_mb:g}: must be a number in (0, {MAX_SHARD_SIZE_MB}]")
        check(self.min_shards >= 1, f"--min_shards={self.min_shards}: must be >= 1")
        check(self.num_shards >= 0, f"--num_shards={self.num_shards}: must be >= 0 (0 sizes shards automatically)")
        check(self.max_pixels > 0, f"--max_pixels={self.max_pixels}: must be > 0")
        check(self.min_size >= 0, f"--min_size={self.min_size}: must be >= 0")
        check(self.num_workers >= 0, f"--num_workers={self.num_workers}: must be >= 0")
        for flag, value in (("--output_dir", self.output_dir), ("--tfds_data_dir", self.tfds_data_dir)):
            # TensorFlow's file API would fail on it half way, naming no flag.
            check(_utf8(value), f"{flag}={_shown(value)}: not valid UTF-8 (TensorFlow opens files by UTF-8 names); "
                                "rename it")
        if self.output_dir and _utf8(self.output_dir):
            try:
                check(not storage.exists(self.output_dir) or storage.isdir(self.output_dir),
                      f"--output_dir={self.output_dir}: exists and is not a directory")
            except OSError as e:
                problems.append(f"--output_dir={self.output_dir}: cannot be read ({e.strerror or e})")
        folder_problems = sources.folder_problems(self.input_dirs)
        problems.extend(folder_problems)
        if self.output_dir and not folder_problems:
            problems.extend(self._overlap_problems())
        if self.runner == "beam":
            check(importlib.util.find_spec("apache_beam") is not None,
                  "--runner=beam: apache-beam is not installed (pip install -e '.[beam]')")
            check(not self.tfds_name, "--runner=beam: converts --input_dir folders, not --tfds_name")
            for flag, path in (("--output_dir", self.output_dir), *(("--input_dir", d) for d in self.input_dirs)):
                check(storage.scheme(path) != _PROCESS_LOCAL_SCHEME,
                      f"{flag}={path}: ram:// lives in one process, which Beam's workers are not")
        else:
            check(not self.beam_pipeline_options,
                  f"--beam_pipeline_options={self.beam_pipeline_options}: only used with --runner=beam")
        return problems

    def _overlap_problems(self):
        """An output inside an input would feed its own files (previews, shards) back in as examples; nested inputs
        would store one photo twice under two keys, possibly in both splits."""
        problems = []
        roots = {directory: storage.resolved(directory) for directory in self.input_dirs}
        for directory, root in roots.items():
            if _inside(storage.resolved(self.output_dir), root):
                problems.append(f"--output_dir={self.output_dir}: is inside --input_dir={directory}")
            for other, other_root in roots.items():
                if other_root != root and _inside(root, other_root):
                    problems.append(f"--input_dir={directory}: is inside --input_dir={other}")
        return problems

    def prep_options(self):
        return imaging.PrepOptions(
            image_size=self.image_size,
            resize=self.resize,
            encoding=self.encoding,
            jpeg_quality=self.jpeg_quality,
            max_pixels=self.max_pixels,
            min_size=self.min_size or max(1, self.image_size // 2),
        )

    def output_flags(self, source):
        """Flags recorded in the manifest: those that change the output (not workers, runner, paths out,
        overwrite)."""
        return {
            **source.describe(),
            **dataclasses.asdict(self.prep_options()),
            "val_fraction": self.val_fraction,
            "shard_size_mb": self.shard_size_mb,
            "min_shards": self.min_shards,
            "num_shards": self.num_shards,
        }

    def workers(self):
        """Worker processes of the local runner: 1 (this process) for ram:// inputs, which only it can read."""
        if any(storage.scheme(directory) == _PROCESS_LOCAL_SCHEME for directory in self.input_dirs):
            return 1
        return self.num_workers or len(os.sched_getaffinity(0))


def config_from_flags(flag_values):
    """The ConversionConfig of parsed flags (defined by `flag_config.define_flags(ConversionConfig)`); an
    --input_dir value that is not itself a folder is a comma list of folders."""
    config = flag_config.from_flags(ConversionConfig, flag_values)
    input_dirs = []
    for value in config.input_dirs:
        if "," in value and not storage.isdir(value):
            input_dirs.extend(directory for directory in value.split(",") if directory)
        else:
            input_dirs.append(value)
    return dataclasses.replace(config, input_dirs=tuple(input_dirs))


class ConfigError(ValueError):
    """Bad flags: every problem, one line each (`problems`); the message joins them on one line."""

    def __init__(self, problems):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclasses.dataclass
class Shard:
    split: str
    index: int
    count: int
    candidates: list

    @property
    def filename(self):
        return records.shard_filename(self.split, self.index, self.count)


class OutputExistsError(ValueError):
    """The output directory holds other data and --overwrite was not given (or cannot replace it)."""


class DiskFullError(ValueError):
    """The output's file system filled up; what cannot be resumed was removed, finished shards are kept."""


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
        raise DiskFullError(f"{config.output_dir}: no space left on device ({e.filename or e}); free space and run "
                            "the same command again") from None
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

    state_dir = os.path.join(config.output_dir, STATE_DIRNAME)
    kind, existing, why = _inspect_manifest(config.output_dir)
    path = records.manifest_path(config.output_dir)
    if kind == "foreign":
        raise OutputExistsError(f"--output_dir={config.output_dir} holds {path}, which this tool did not write "
                                f"({why}); move it away or choose another --output_dir: --overwrite never replaces it")
    if kind == "damaged":
        _refuse_or_clear(config, log, f"holds a damaged dataset manifest {path} ({why})")
    elif kind == "other version":
        _refuse_or_clear(config, log, f"holds a dataset of another format ({why})")
    elif kind == "ours":
        if _identity(existing) == identity:
            storage.rmtree(state_dir)
            log(f"up to date: {config.output_dir} ({_counts(existing)})")
            _require_examples(config.output_dir, existing)
            return existing
        _refuse_or_clear(config, log, f"holds a dataset made with other flags or inputs "
                                      f"({_diff(_identity(existing), identity)})")
    saved_plan = _read_plan(state_dir)
    if saved_plan is _DAMAGED:
        _refuse_or_clear(config, log, f"holds an unfinished conversion whose plan "
                                      f"{os.path.join(state_dir, PLAN_FILENAME)} is damaged")
        saved_plan = None
    if saved_plan is not None and saved_plan["identity"] != identity:
        _refuse_or_clear(config, log, f"holds an unfinished conversion with other flags or inputs "
                                      f"({_diff(saved_plan['identity'], identity)})")
        saved_plan = None
    if saved_plan is None and _shard_files(config.output_dir):
        _refuse_or_clear(config, log, "holds shard files without a manifest")

    shards, finished, writer, writing = [], {}, None, STATE_DIRNAME
    try:
        storage.makedirs(state_dir)
        options = config.prep_options()
        by_split = _split_candidates(listing.candidates, config.val_fraction)
        # The Beam runner plans here too (a sample of SIZE_SAMPLE images at most), then leaves the shards to Beam.
        with worker_pool.WorkerPool(config.workers() if config.runner == "local" else 1) as pool:
            if saved_plan is None:
                num_shards = {split: _plan_shard_count(config, pool, source, items)
                              for split, items in by_split.items()}
                writing = PLAN_FILENAME
                records.write_json_atomic(os.path.join(state_dir, PLAN_FILENAME),
                                          {"identity": identity, "num_shards": num_shards})
            else:
                num_shards = saved_plan["num_shards"]
            shards = [shard for split in records.SPLITS for shard in _shards(split, by_split[split], num_shards[split])]
            finished = {shard.filename: _finished_record(config.output_dir, state_dir, shard) for shard in shards}
            pending = [shard for shard in shards if finished[shard.filename] is None]
            if len(pending) < len(shards):
                log(f"resuming: reusing {len(shards) - len(pending)} finished shards")
            if config.runner == "local":
                writer = _ShardWriter(config.output_dir, state_dir, options, log, config.progress_interval_s,
                                      total=len(listing.candidates), done=len(listing.candidates) - sum(
                                          len(s.candidates) for s in pending))
                finished.update(writer.write(pool, source, pending))
        if config.runner == "beam":
            from colorgan import beam_conversion  # noqa: PLC0415 - apache-beam is an optional extra

            finished.update(beam_conversion.write_shards(config, pending, state_dir, log))

        manifest = _manifest(config, identity, shards, finished, listing.skipped)
        writing = records.MANIFEST_FILENAME
        records.write_json_atomic(records.manifest_path(config.output_dir), manifest)
    except (OSError, tf.errors.OpError) as e:
        if not storage.is_disk_full(e):
            raise
        if writer is not None:
            finished.update(writer.finished)
            if writer.abandoned is not None:
                writing = writer.abandoned[0]
        raise _disk_full_error(config, state_dir, listing.candidates, shards, finished,
                               writer and writer.abandoned, writing) from None
    storage.rmtree(state_dir)
    log(_summary(config.output_dir, manifest))
    _require_examples(config.output_dir, manifest)
    return manifest


def _require_examples(output_dir, manifest):
    """A dataset without a single example is of no use downstream: an error, with why every file was skipped (the
    manifest, kept, lists each)."""
    if sum(split["num_examples"] for split in manifest["splits"].values()):
        return
    reasons = collections.Counter(entry["reason"] for entry in manifest["skipped"])
    detail = ", ".join(f"{reason}: {count}" for reason, count in reasons.most_common()) or "no files found"
    raise ValueError(f"{output_dir}: no example written, every file was skipped ({detail})")


def _inside(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def _stderr(message):
    print(f"make_tfrecords: {message}", file=sys.stderr, flush=True)


def _utf8(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(text):
    """A path for a message: undecodable bytes (surrogate escapes) as \\xNN."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("ascii")


_DAMAGED = object()


def _read_json(path):
    """The JSON in one of this tool's state files; None when absent, _DAMAGED when not JSON."""
    try:
        return json.loads(storage.read_text(path))
    except FileNotFoundError:
        return None
    except ValueError:
        return _DAMAGED


def _is_count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _json_kind(value):
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return kinds.get(type(value), "number")


def _inspect_manifest(output_dir):
    """(kind, manifest, why) for the output's manifest.json. kind: None (absent); "ours" (a well-formed dataset
    manifest); "other version" and "damaged" (ours: --overwrite may replace it); "foreign" (never touched).

    Ours is told by our marker, `format_version`. A file that cannot be identified by its content (not JSON, not an
    object) counts as ours only in a folder that also holds our state folder or shard files: a manifest of ours is
    written atomically, so only a damaged disk or copy truncates it, and then its shards are around."""
    path = records.manifest_path(output_dir)
    if not storage.exists(path):
        return None, None, None
    if storage.isdir(path):
        return "foreign", None, "a directory"
    try:
        raw = storage.read_bytes(path)
    except OSError as e:
        return "foreign", None, f"unreadable: {e.strerror or e}"
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return _ours_by_context(output_dir, "not valid JSON: not UTF-8 text")
    except json.JSONDecodeError as e:
        return _ours_by_context(output_dir, f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}")
    if not isinstance(manifest, dict):
        return _ours_by_context(output_dir, f"a JSON {_json_kind(manifest)}")
    if "format_version" not in manifest:
        return "foreign", None, "a JSON object without format_version"
    if manifest["format_version"] != records.FORMAT_VERSION:
        return "other version", None, (f"format_version {manifest['format_version']!r}, this colorgan writes "
                                       f"{records.FORMAT_VERSION}")
    problem = _manifest_problem(manifest)
    return ("damaged", None, problem) if problem else ("ours", manifest, None)


def _ours_by_context(output_dir, why):
    ours = storage.isdir(os.path.join(output_dir, STATE_DIRNAME)) or _shard_files(output_dir)
    return ("damaged" if ours else "foreign"), None, why


def _manifest_problem(manifest):
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
        if not isinstance(entry, dict) or not _is_count(entry.get("num_examples")) or not isinstance(
                entry.get("shards"), list):
            return f"splits.{split} is damaged"
        for i, shard in enumerate(entry["shards"]):
            if not (isinstance(shard, dict) and isinstance(shard.get("file"), str)
                    and records.is_shard_filename(shard["file"]) and isinstance(shard.get("sha256"), str)
                    and _is_count(shard.get("bytes")) and _is_count(shard.get("num_examples"))):
                return f"splits.{split}.shards[{i}] is damaged"
    skipped = manifest.get("skipped")
    if not isinstance(skipped, list) or not all(isinstance(e, dict) and isinstance(e.get("reason"), str)
                                                for e in skipped):
        return "'skipped' is damaged"
    return None


def _read_plan(state_dir):
    """The saved plan of an unfinished conversion: None (none), _DAMAGED, or {"identity", "num_shards"}."""
    plan = _read_json(os.path.join(state_dir, PLAN_FILENAME))
    if plan is None or plan is _DAMAGED:
        return plan
    if not (isinstance(plan, dict) and isinstance(plan.get("identity"), dict)
            and isinstance(plan.get("num_shards"), dict)
            and all(_is_count(plan["num_shards"].get(split)) for split in records.SPLITS)):
        return _DAMAGED
    return plan


def _identity(manifest):
    return {"flags": manifest.get("flags"), "source_fingerprint": manifest.get("source", {}).get("fingerprint")}


def _diff(old_identity, new_identity):
    old_flags, new_flags = old_identity.get("flags") or {}, new_identity["flags"]
    changed = sorted(k for k in set(old_flags) | set(new_flags) if old_flags.get(k) != new_flags.get(k))
    if old_identity.get("source_fingerprint") != new_identity["source_fingerprint"]:
        changed.append("input files")
    return "differs in: " + ", ".join(changed)


def _shard_files(output_dir):
    return [name for name in storage.listdir(output_dir) if records.is_shard_filename(name)]


def _refuse_or_clear(config, log, why):
    """Without --overwrite nothing is touched; with it, only this tool's own files are removed (callers have made
    sure a manifest.json there is ours)."""
    if not config.overwrite:
        raise OutputExistsError(f"--output_dir={config.output_dir} {why}; pass --overwrite to replace it")
    log(f"--overwrite: replacing this tool's files: {config.output_dir} {why}")
    storage.remove(records.manifest_path(config.output_dir))  # First, so an interrupted overwrite never looks finished.
    storage.rmtree(os.path.join(config.output_dir, STATE_DIRNAME))
    for name in _shard_files(config.output_dir):
        storage.remove(os.path.join(config.output_dir, name))


def _split_candidates(candidates, val_fraction):
    by_split = {split: [] for split in records.SPLITS}
    for candidate in candidates:
        by_split["val" if sources.key_fraction(candidate.key) < val_fraction else "train"].append(candidate)
    return by_split


def _plan_shard_count(config, pool, source, candidates):
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
    sample = pool.map(imaging.prepare_task, ((p, options) for p in source.payloads(candidates[:SIZE_SAMPLE])))
    sizes = [len(r.rgb) + len(r.gray) + 64 for r in sample if isinstance(r, imaging.Prepared)]
    per_example = sum(sizes) / len(sizes) if sizes else upper_bound
    return min(count, max(config.min_shards, math.ceil(count * per_example / shard_bytes)))


def _shards(split, candidates, count):
    return [
        Shard(split, i, count, candidates[i * len(candidates) // count:(i + 1) * len(candidates) // count])
        for i in range(count)
    ]


def _finished_record(output_dir, state_dir, shard):
    """The saved record of a shard finished by an earlier run, if the file still matches it."""
    record = shard_record(state_dir, shard)
    path = os.path.join(output_dir, shard.filename)
    if record is None or not storage.exists(path):
        return None
    size, sha256 = records.file_digest(path)
    return record if (size, sha256) == (record["bytes"], record["sha256"]) else None


def shard_record(state_dir, shard):
    """The record a finished shard left in the state folder (file, num_examples, bytes, sha256, skipped), or None
    when it is absent or damaged."""
    record = _read_json(os.path.join(state_dir, shard.filename + ".json"))
    if not (isinstance(record, dict) and _is_count(record.get("bytes")) and _is_count(record.get("num_examples"))
            and isinstance(record.get("sha256"), str) and isinstance(record.get("skipped"), list)
            and record.get("file") == shard.filename):
        return None
    return record


def shard_paths(output_dir, state_dir, shard):
    """(where a shard is written, where it is published): on a local disk a temporary name in the state folder,
    renamed into place once complete; on object stores, where a rename is a copy, the final name, written once (a
    partial one there has no record in the state folder, so it is never reused)."""
    final = os.path.join(output_dir, shard.filename)
    if storage.is_local(output_dir):
        return os.path.join(state_dir, shard.filename + storage.PARTIAL_SUFFIX), final
    return final, final


class _ShardWriter:
    """Writes pending shards in order from the workers' results, with a progress line."""

    def __init__(self, output_dir, state_dir, options, log, progress_interval_s, total, done):
        self.output_dir, self.state_dir, self.options, self.log = output_dir, state_dir, options, log
        self.progress_interval_s = progress_interval_s
        self.total, self.done = total, done
        self.finished = {}  # filename -> record, of the shards this writer finished
        self.current = None
        self.abandoned = None  # (filename, bytes written, candidates added) of the shard an error interrupted

    def write(self, pool, source, pending):
        """Writes the pending shards; returns their records. On any error (a full disk, Stopped) the shard being
        written is closed and its partial file removed: a rerun starts that shard again anyway."""
        try:
            self._write(pool, source, pending)
        except BaseException:
            if self.current is not None:
                self.abandoned = self.current.abandon()
                self.current = None
            raise
        return self.finished

    def _write(self, pool, source, pending):
        finished = self.finished
        start = last_report = time.monotonic()
        processed = 0
        for split in records.SPLITS:
            shards = [shard for shard in pending if shard.split == split]
            owners = [(shard, candidate) for shard in shards for candidate in shard.candidates]
            payloads = source.payloads([candidate for _, candidate in owners])
            tasks = ((payload, self.options) for payload in payloads)
            for (shard, candidate), result in zip(owners, pool.map(imaging.prepare_task, tasks)):
                if self.current is None or self.current.shard is not shard:
                    if self.current is not None:
                        finished[self.current.shard.filename] = self.current.close()
                    self.current = None  # closed: an error in the next one's opening leaves nothing to abandon
                    self.current = _OpenShard(self.output_dir, self.state_dir, shard, self.options)
                self.current.add(candidate, result)
                processed += 1
                now = time.monotonic()
                if now - last_report >= self.progress_interval_s:
                    last_report = now
                    self._progress(processed, now - start)
            if self.current is not None:
                finished[self.current.shard.filename] = self.current.close()
                self.current = None

    def _progress(self, processed, elapsed):
        rate = processed / max(elapsed, 1e-9)
        done = self.done + processed
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        self.log(f"{done}/{self.total} images ({100 * done / max(self.total, 1):.1f}%), "
                 f"{rate:.1f} images/s, ETA {_duration(eta)}")


def _duration(seconds):
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class ShardBuilder:
    """Serializes one shard's examples, in order, into a TFRecord file at `path` and keeps its skipped files: the
    shard's bytes, whoever runs it (the local runner, a Beam worker)."""

    def __init__(self, shard, path, options):
        self.shard, self.path, self.options = shard, path, options
        self.writer = tf.io.TFRecordWriter(path)
        self.num_examples = 0
        self.skipped = []

    def add(self, candidate, result):
        if isinstance(result, imaging.Skipped):
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


class _OpenShard:
    """One shard being written by the local runner; `close` publishes it and records it for resuming."""

    def __init__(self, output_dir, state_dir, shard, options):
        self.shard = shard
        path, self.final_path = shard_paths(output_dir, state_dir, shard)
        self.record_path = os.path.join(state_dir, shard.filename + ".json")
        self.builder = ShardBuilder(shard, path, options)

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


def _manifest(config, identity, shards, finished, listing_skipped):
    splits = {}
    skipped = list(listing_skipped)
    for split in records.SPLITS:
        entries = []
        for shard in (s for s in shards if s.split == split):
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


def _counts(manifest):
    return ", ".join(f"{split} {manifest['splits'][split]['num_examples']}" for split in records.SPLITS)


def _summary(output_dir, manifest):
    reasons = collections.Counter(s["reason"] for s in manifest["skipped"])
    total_bytes = sum(sh["bytes"] for sp in manifest["splits"].values() for sh in sp["shards"])
    shard_counts = "+".join(str(len(manifest["splits"][s]["shards"])) for s in records.SPLITS)
    skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items())) or "none"
    return (f"wrote {_counts(manifest)} examples in {shard_counts} shards ({total_bytes / 2**20:.1f} MiB) "
            f"to {output_dir}; skipped {sum(reasons.values())}: {skipped}")


def _disk_full_error(config, state_dir, candidates, shards, finished, abandoned, writing):
    """Removes what a rerun could not reuse (partial and temporary files, shards without their record), keeps the
    finished shards, and returns the one-line error with the space still needed."""
    output_dir = config.output_dir
    for directory, leftover in ((state_dir, lambda n: n.endswith(storage.PARTIAL_SUFFIX)),
                                (output_dir, lambda n: n.startswith(f".{records.MANIFEST_FILENAME}.")
                                 and n.endswith(storage.PARTIAL_SUFFIX))):
        with contextlib.suppress(FileNotFoundError):
            for name in storage.listdir(directory):
                if leftover(name):
                    storage.remove(os.path.join(directory, name))
    unfinished = [shard for shard in shards if finished.get(shard.filename) is None]
    for shard in unfinished:
        storage.remove(os.path.join(output_dir, shard.filename))
    free = storage.free_bytes(output_dir) / 2**20
    remaining = sum(len(shard.candidates) for shard in unfinished) if shards else len(candidates)
    if remaining == 0:
        return DiskFullError(f"{output_dir}: no space left on device while writing {writing} ({free:.1f} MiB free); "
                             "every shard is finished and kept: free some space and run the same command to finish")
    # Bytes per candidate so far: finished shards, else the shard that was interrupted, else raw pixels (an upper
    # bound for either codec).
    done = [record for record in finished.values() if record is not None]
    written = sum(record["bytes"] for record in done)
    counted = sum(record["num_examples"] + len(record["skipped"]) for record in done)
    if abandoned is not None:
        written, counted = written + abandoned[1], counted + abandoned[2]
    if written and counted:
        needed = f"about {written / counted * remaining / 2**20:.1f} MiB more are needed"
    else:
        needed = f"up to {(4 * config.image_size**2 + 1024) * remaining / 2**20:.1f} MiB more are needed"
    left = (f"{len(unfinished)} unfinished shard{'s' * (len(unfinished) != 1)}" if shards
            else f"{remaining} images")
    return DiskFullError(f"{output_dir}: no space left on device while writing {writing}; {needed} for {left} "
                         f"({free:.1f} MiB free); finished shards are kept: free space and run the same command to "
                         "resume")
