"""The colorize job: photos (files, folders walked recursively, globs) -> colorized photos at full resolution.

Each output mirrors its input's place under the input folder, keeps its format (or --format) and bit depth where the
format allows, and its EXIF (orientation reset, since pixels are written upright). Outputs are written under a
temporary name and renamed, so a killed run leaves no partial file and a rerun skips what is done. A file that cannot
be colorized is reported with its reason and the job goes on.
"""

import dataclasses
import importlib.util
import os

from colorgan.core import cli
from colorgan.core import flag_config
from colorgan.core import image_files
from colorgan.core import progress
from colorgan.core import storage
from colorgan.inference import colorize_steps
from colorgan.inference import colorizers
from colorgan.inference import hint_points
from colorgan.inference import inference_flags
from colorgan.inference import model_errors
from colorgan.inference import photo_files


class ColorizeError(ValueError):
    """The job cannot start as asked (exit 2); the message is one line naming the flag or file."""


class ColorizeFailed(ColorizeError):
    """The job started and cannot go on (exit 1): a damaged model, an output that cannot be written, a failed
    pipeline. Outputs written so far are whole; a rerun resumes."""


RUNNERS = ("local", "beam")
_field = flag_config.field


@dataclasses.dataclass(frozen=True)
class ColorizeConfig:
    """colorize.py's flags (`flag_config`)."""

    model: str = inference_flags.model_field(runs_portable=True)
    inputs: tuple = _field((), "A photo, a folder (recursive) or a glob; repeat for more.", flag_name="input")
    output_dir: str = _field("", "Where colorized photos go (input folders' structure mirrored).")
    step: int = inference_flags.step_field()
    render_size: int = inference_flags.render_size_field()
    format: str = _field("", "Output format: jpeg, png, tiff or webp (default: the input's).")
    overwrite: bool = _field(False, "Colorize again photos whose output exists.")
    compare: bool = _field(False, "Also write NAME.compare.jpg: input | colorized.")
    max_pixels: int = inference_flags.max_pixels_field("Photos with more pixels are reported and skipped "
                                                       "(decompression bombs).")
    jpeg_quality: int = _field(95, "Quality of JPEG outputs.", minimum=1, maximum=100)
    hints: str = _field("", 'Colour hints for the one --input photo: a JSON file {"points": [{"x": 120, "y": 45, '
                            '"color": "#2a5caa"}, ...]} (pixels from the top-left of the photo as displayed). Without '
                            "it, NAME.hints.json beside a photo is used for it. Needs a model trained with --hints.")
    batch_size: int = _field(1, "Photos per generator call (any sizes: each is fitted to the render size first).",
                             minimum=1)
    runner: str = _field("local", "local: this process; beam: an Apache Beam pipeline, the model loaded once per "
                                  "worker (the [beam] extra).", choices=RUNNERS)
    beam_pipeline_options: str = _field("", "With --runner=beam: Beam's options as a comma list, as `tfds build` "
                                            "takes them (runner=DataflowRunner,project=...,region=...).")

    def validate(self):
        """One line per bad flag, found before any photo is read or the model loaded."""
        problems = [*inference_flags.required(self, "model", "inputs", "output_dir"),
                    *flag_config.value_problems(self)]
        try:
            photo_files.output_format("x.png", self.format)
        except ValueError as e:
            problems.append(str(e))
        if self.runner == "beam" and importlib.util.find_spec("apache_beam") is None:
            problems.append("--runner=beam: apache-beam is not installed (pip install -e '.[beam]')")
        if self.runner != "beam" and self.beam_pipeline_options:
            problems.append(f"--beam_pipeline_options={self.beam_pipeline_options}: only used with --runner=beam")
        return problems + inference_flags.output_dir_problems(self.output_dir)


@dataclasses.dataclass
class Summary:
    colorized: int = 0
    done_before: int = 0
    failed: list = dataclasses.field(default_factory=list)  # (path, reason)

    def exit_code(self):
        """0 when photos are colorized (by this run or an earlier one) and the rest reported, so a rerun ends as the
        first run did; 1 when none is."""
        return cli.EXIT_OK if self.colorized or self.done_before else cli.EXIT_FAILED


def list_sources(inputs, output_dir, on_unreadable=None):
    """(source path, output path relative to output_dir without extension) for every photo named by `inputs`: a
    file, a folder (walked recursively, structure mirrored, the output folder itself left out) or a glob. A folder
    that cannot be listed is passed to `on_unreadable(path, reason)`."""
    report = on_unreadable and (lambda path, error: on_unreadable(path, f"unreadable folder: {error.strerror}"))
    output_root = storage.resolved(output_dir)
    sources = []
    for pattern in inputs:
        if storage.isdir(pattern):
            root = storage.absolute(pattern)
            for directory, subdirs, files in storage.walk(root, on_error=report):
                subdirs[:] = sorted(d for d in subdirs
                                    if storage.resolved(os.path.join(directory, d)) != output_root)
                for name in sorted(files):
                    if os.path.splitext(name)[1].lower() in image_files.IMAGE_EXTENSIONS and not name.startswith("."):
                        path = os.path.join(directory, name)
                        sources.append((path, os.path.splitext(os.path.relpath(path, root))[0]))
        elif storage.isfile(pattern):
            sources.append((pattern, os.path.splitext(os.path.basename(pattern))[0]))
        else:
            matches = [p for p in storage.glob(pattern) if storage.isfile(p)]
            if not matches:
                raise ColorizeError(f"--input={pattern}: no such file or folder, and no file matches it as a glob")
            sources.extend((p, os.path.splitext(os.path.basename(p))[0]) for p in matches)
    return sources


def _claim_outputs(sources, output_dir):
    """(sources that get their own output, [(source, reason)] for those whose output another one's takes): of
    scan.tif and scan.jpg the first in sorted order is colorized and the other reported, not the whole job refused."""
    claimed, clashes = {}, []
    for path, relative in sorted(set(sources)):  # a photo named twice (a file and its folder) is colorized once
        if relative in claimed:
            clashes.append((path, f"would be written as {os.path.join(output_dir, relative)}.*, as "
                                  f"{claimed[relative]} is"))
        else:
            claimed[relative] = path
    kept = {(path, relative) for relative, path in claimed.items()}
    return [source for source in dict.fromkeys(sources) if source in kept], clashes


def _refuse_outputs_over_inputs(sources, output_dir):
    """An output folder that is an input folder or holds an input photo would have originals replaced (--overwrite)
    or taken for finished outputs: refused before anything is read or written."""
    output_root = storage.resolved(output_dir)
    for path, _ in sources:
        if storage.is_within(storage.resolved(path), output_root):
            raise ColorizeError(f"--output_dir={output_dir}: holds the input photo {path}; colorized photos would "
                                "replace or mix with the originals: choose an output folder outside the inputs")


def remove_stale_partials(output_dir):
    """Deletes temporary files a killed run left (`storage.write_atomic`'s '.NAME.<random>.partial')."""
    for directory, _, files in storage.walk(output_dir):
        for name in files:
            if name.startswith(".") and name.endswith(storage.PARTIAL_SUFFIX):
                storage.remove(os.path.join(directory, name))


def run(config, log=print):
    """Colorizes every photo named by config.inputs; returns the Summary (see Summary.exit_code)."""
    problems = config.validate()
    if problems:
        raise ColorizeError(problems[0])
    unreadable = []
    sources = list_sources(config.inputs, config.output_dir, on_unreadable=lambda *failure: unreadable.append(failure))
    if not sources:
        raise ColorizeError(f"--input={','.join(config.inputs)}: no photos found")
    _refuse_outputs_over_inputs(sources, config.output_dir)
    photos = len(set(sources))
    if config.hints and (photos != 1 or not storage.isfile(config.hints)):
        raise ColorizeError(f"--hints={config.hints}: " + (
            "not a file" if photos == 1 else
            f"names one photo's hints, and --input names {photos} photos; for folders, put NAME"
            f"{hint_points.SIDECAR_SUFFIX} beside each photo"))
    sources, clashes = _claim_outputs(sources, config.output_dir)
    try:  # the model loads (and TensorFlow with it, unless it is ONNX) only once the inputs are known to be usable
        colorizer = colorizers.load(config.model, config.step, config.render_size)
    except model_errors.DamagedModel as e:
        raise ColorizeFailed(str(e)) from None
    except model_errors.InferenceError as e:
        raise ColorizeError(str(e)) from None
    if config.hints and not colorizer.takes_hints:
        raise ColorizeError(f"--hints={config.hints}: {config.model} takes no colour hints (train with --hints)")
    log(f"colorize: {len(sources)} photo{'s' if len(sources) != 1 else ''} with {config.model} "
        f"({colorizer.description['generator']}, step {colorizer.description['step']}, rendered at "
        f"{colorizer.render_size} px)")
    storage.makedirs(config.output_dir)
    remove_stale_partials(config.output_dir)
    summary = Summary()
    for source, reason in unreadable + clashes:
        summary.failed.append((source, reason))
        log(f"colorize: skipped {source}: {reason}")
    tasks = []
    for source, relative in sources:
        image_format, extension = photo_files.output_format(source, config.format)
        task = colorize_steps.PhotoTask(source, relative, os.path.join(config.output_dir, relative + extension),
                                        image_format)
        if storage.exists(task.output) and not config.overwrite:
            summary.done_before += 1
        else:
            tasks.append(task)
            if not colorizer.takes_hints and storage.exists(hint_points.sidecar_path(source)):
                log(f"colorize: {hint_points.sidecar_path(source)}: ignored, {config.model} takes no colour hints "
                    "(train with --hints)")
    if config.runner == "beam":
        from colorgan.inference import beam_colorize  # noqa: PLC0415 - apache-beam is an optional extra

        try:
            outcomes = beam_colorize.colorize(config, colorizer, tasks, log)
        except beam_colorize.PipelineError as e:
            raise ColorizeFailed(str(e)) from None
    else:
        outcomes = _colorize_locally(config, colorizer, tasks, log)
    for task, reason in outcomes:
        if reason is None:
            summary.colorized += 1
        else:
            summary.failed.append((task.source, reason))
    log(f"colorize: {summary.colorized} colorized, {summary.done_before} already done, {len(summary.failed)} "
        f"failed; outputs in {config.output_dir}")
    return summary


def _colorize_locally(config, colorizer, tasks, log):
    """Colorizes the tasks in this process, config.batch_size photos per generator call; yields (task, None) for a
    photo written and (task, reason) for one that could not be colorized, each reported as it happens."""
    with progress.Progress("colorize", len(tasks), "photo", log) as bar:
        for first in range(0, len(tasks), config.batch_size):
            prepared = []
            for task in tasks[first:first + config.batch_size]:
                try:
                    prepared.append(colorize_steps.prepare(task, config, colorizer.stages, colorizer.takes_hints))
                except (photo_files.PhotoError, hint_points.HintsError) as e:
                    bar.note(f"colorize: skipped {task.source}: {e}")
                    bar.update(1, timed=False)
                    yield task, str(e)
            for item, chroma in zip(prepared, colorize_steps.chroma_for(colorizer, prepared)):
                try:
                    colorize_steps.finish(item, chroma, config, colorizer.stages)
                except colorize_steps.WriteError as e:
                    raise ColorizeFailed(str(e)) from None
                bar.update(1, lambda done, rate, eta, item=item: (
                    f"colorize: {done}/{len(tasks)} {rate:.2f} images/s ETA {eta} {item.task.output}"
                    + (f" ({len(item.hints)} hints)" if item.hints is not None else "")))
                yield item.task, None
