"""Colorizing an archive on Apache Beam (colorize.py --runner=beam): the local run's photos, stages and reports, on
Beam's workers.

The driver plans as the local run does (which photos, which outputs, what is done already); each pending photo is
one element. A DoFn loads it and makes its canvas, RunInference calls the generator on batches of canvases with the
model loaded once per worker (`ColorizerHandler`), and a DoFn recombines each photo at full resolution and writes it
atomically. All three run `colorize_steps`, as the local run does, so a batch size of 1 writes the local run's bytes.
Each photo's outcome (written, or why not) returns to the driver through a report in a folder of the run's own under
the output folder, read and removed when the pipeline ends. A failed pipeline leaves whole outputs only: a rerun
skips them, as the local run's does.
"""

import json
import os
import uuid

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference import base as inference_base

from colorgan.core import storage
from colorgan.data import beam_conversion
from colorgan.inference import colorize_steps
from colorgan.inference import colorizers
from colorgan.inference import hint_points
from colorgan.inference import photo_files
from colorgan.inference import photo_stages

REPORT_FOLDER_PREFIX = ".colorize-beam-"
_FAILED = "failed"


class PipelineError(ValueError):
    """The pipeline failed or lost photos; one line. The outputs written so far are whole: a rerun finishes."""


class ColorizerHandler(inference_base.ModelHandler):
    """RunInference's model: the run or export loaded once per worker, its generator called once per batch of
    prepared photos (one call per kind, with and without hints)."""

    def __init__(self, config):
        # A fixed batch size (Beam's default grows it from 1 as it times calls): full batches for the accelerator,
        # and batch size 1 meaning one photo per call, as in the local run.
        super().__init__(min_batch_size=config.batch_size, max_batch_size=config.batch_size)
        self._config = config

    def load_model(self):
        return colorizers.load(self._config.model, self._config.step, self._config.render_size)

    def run_inference(self, batch, model, inference_args=None):
        return [inference_base.PredictionResult(item, chroma)
                for item, chroma in zip(batch, colorize_steps.chroma_for(model, batch))]

    def get_num_bytes(self, batch):  # Beam's default pickles the batch to measure it
        return sum(item.photo.gray.nbytes + item.canvas.nbytes for item in batch)


class _Prepare(beam.DoFn):
    """A photo task -> its PreparedPhoto, or (to the "failed" output) the task's outcome line with the reason."""

    def __init__(self, config, render_size, takes_hints):
        self._config, self._render_size, self._takes_hints = config, render_size, takes_hints

    def setup(self):
        self._stages = photo_stages.PhotoStages(self._render_size)

    def process(self, task):
        try:
            yield colorize_steps.prepare(task, self._config, self._stages, self._takes_hints)
        except (photo_files.PhotoError, hint_points.HintsError) as e:
            yield beam.pvalue.TaggedOutput(_FAILED, _outcome(task, str(e)))


class _Finish(beam.DoFn):
    """RunInference's PredictionResult -> the photo written at full resolution, and its outcome line."""

    def __init__(self, config, render_size):
        self._config, self._render_size = config, render_size

    def setup(self):
        self._stages = photo_stages.PhotoStages(self._render_size)

    def process(self, result):
        colorize_steps.finish(result.example, result.inference, self._config, self._stages)
        yield _outcome(result.example.task, None)


def _outcome(task, reason):
    return json.dumps({"source": task.source, "reason": reason})


def colorize(config, colorizer, tasks, log):
    """Colorizes the tasks in one Beam pipeline; returns (task, None) for each photo written and (task, reason)
    for each that could not be colorized, in the tasks' order."""
    if not tasks:
        return []
    log(f"beam: colorizing {len(tasks)} photos, up to {config.batch_size} per generator call "
        f"({config.beam_pipeline_options or 'Beam default options'})")
    report_dir = os.path.join(config.output_dir, f"{REPORT_FOLDER_PREFIX}{uuid.uuid4().hex}")
    try:
        try:
            with beam.Pipeline(options=beam_conversion.pipeline_options(config.beam_pipeline_options)) as pipeline:
                prepared = (pipeline | beam.Create(tasks) | beam.Reshuffle()
                            | beam.ParDo(_Prepare(config, colorizer.render_size, colorizer.takes_hints))
                            .with_outputs(_FAILED, main="prepared"))
                written = (prepared.prepared | inference_base.RunInference(ColorizerHandler(config))
                           | beam.ParDo(_Finish(config, colorizer.render_size)))
                _ = ((written, prepared[_FAILED]) | beam.Flatten()
                     | beam.io.WriteToText(os.path.join(report_dir, "outcomes"), file_name_suffix=".jsonl"))
        except Exception as e:  # noqa: BLE001 - Beam re-raises a worker's error wrapped in its own types
            raise PipelineError(f"--runner=beam: the pipeline failed, outputs written so far are kept "
                                f"(run the same command to finish): {_last_line(e)}") from None
        reasons = {}
        for match in FileSystems.match([os.path.join(report_dir, "outcomes*")])[0].metadata_list:
            for line in storage.read_text(match.path).splitlines():
                outcome = json.loads(line)
                reasons[outcome["source"]] = outcome["reason"]
    finally:
        if storage.exists(report_dir):
            storage.rmtree(report_dir)
    missing = [task.source for task in tasks if task.source not in reasons]
    if missing:
        raise PipelineError(f"--runner=beam: the pipeline ended without an outcome for {missing[0]} "
                            f"and {len(missing) - 1} more; run the same command again")
    for task in tasks:
        if reasons[task.source] is not None:
            log(f"colorize: skipped {task.source}: {reasons[task.source]}")
    return [(task, reasons[task.source]) for task in tasks]


def _last_line(error):
    """The line of a Beam error that says what went wrong: its last non-empty one."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:300]
