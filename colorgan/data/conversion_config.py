"""Every setting of a data-prep conversion, each flag declared once (`flag_config`), and their checks: every bad flag
is reported, one line each, before anything is read or written."""

import dataclasses
import importlib.util
import math

from colorgan.core import flag_config
from colorgan.core import portable
from colorgan.core import storage
from colorgan.data import example_prep
from colorgan.data import sources

# Bounds that keep the manifest valid JSON (no Infinity) and records of a trainable size.
MAX_SHARD_SIZE_MB = 65536
MAX_IMAGE_SIZE = 4096
RUNNERS = ("local", "beam")
# ram:// files live in one process: worker processes (local or Beam) cannot see them.
PROCESS_LOCAL_SCHEME = "ram"

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
                         example_prep.RESIZE_MODES)
    encoding: str = _field("jpeg", "Codec of both stored images: jpeg (4:4:4) reads fastest; png is lossless.",
                           example_prep.ENCODINGS)
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
        problems.extend(flag_config.value_problems(self))
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
                check(storage.scheme(path) != PROCESS_LOCAL_SCHEME,
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
            if storage.is_within(storage.resolved(self.output_dir), root):
                problems.append(f"--output_dir={self.output_dir}: is inside --input_dir={directory}")
            for other, other_root in roots.items():
                if other_root != root and storage.is_within(root, other_root):
                    problems.append(f"--input_dir={directory}: is inside --input_dir={other}")
        return problems

    def prep_options(self):
        return example_prep.PrepOptions(
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
        if any(storage.scheme(directory) == PROCESS_LOCAL_SCHEME for directory in self.input_dirs):
            return 1
        return self.num_workers or portable.usable_cpus()


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
    """Bad flags: every problem, one line each (`problems`); the message joins them on one line. Exit 2, as every
    ValueError found before the conversion starts writing (an output in the way, a locked one, a bad source)."""

    def __init__(self, problems):
        super().__init__("; ".join(problems))
        self.problems = problems


class ConversionFailed(ValueError):
    """The conversion started writing and could not finish (exit 1): finished shards are kept, a rerun resumes."""


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
