"""What a training run leaves for people and tools: metrics.jsonl, TensorBoard scalars and images, PNG sample sheets.

Only the chief writes (`enabled=False` elsewhere makes every call a no-op), so a multi-worker job leaves one log.
Each metrics.jsonl line is one JSON object with `kind` ("train", "eval", "baseline" or "event") and `step`; a resumed
run first drops the lines past its checkpoint, so the file always describes the weights that exist.
"""

import json
import os

import numpy as np
import tensorflow as tf

from colorgan.core import storage
from colorgan.core import visualize

METRICS_FILENAME = "metrics.jsonl"
SAMPLES_DIRNAME = "samples"
TENSORBOARD_DIRNAME = "tensorboard"


def sample_sheet_path(model_dir, step):
    return os.path.join(model_dir, SAMPLES_DIRNAME, f"step_{step:07d}.png")


def read_metrics(path, on_bad_line=None):
    """The metrics.jsonl records as a list of dicts. A torn last line (a killed writer) is skipped; any other line
    that is not a JSON object raises ValueError naming the file and line, or with `on_bad_line` is passed to it
    (its 1-based number) and skipped."""
    lines = storage.read_bytes(path).split(b"\n")
    entries = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line.decode("utf-8"))
        except ValueError:
            entry = None
        if isinstance(entry, dict):
            entries.append(entry)
        elif number == len(lines):
            continue  # torn: the file does not end with a newline
        elif on_bad_line is None:
            raise ValueError(f"{path}:{number}: not a JSON object")
        else:
            on_bad_line(number)
    return entries


class MetricsLogger:
    """Appends metrics of one run; see the module docstring for the format."""

    def __init__(self, model_dir, enabled=True):
        self.model_dir = model_dir
        self.enabled = enabled
        self.path = os.path.join(model_dir, METRICS_FILENAME)
        self._summary_writer = None

    def _writer(self):
        if self._summary_writer is None:
            self._summary_writer = tf.summary.create_file_writer(os.path.join(self.model_dir, TENSORBOARD_DIRNAME))
        return self._summary_writer

    def truncate_after(self, step):
        """Drops the lines of steps past `step` (written after the checkpoint a resumed run starts from) and lines that
        are not JSON objects (a writer killed mid-line); returns the numbers of the latter, for the caller to report."""
        dropped = []
        if not self.enabled or not storage.exists(self.path):
            return dropped
        kept = [entry for entry in read_metrics(self.path, on_bad_line=dropped.append) if entry.get("step", 0) <= step]
        storage.write_atomic(self.path, "".join(json.dumps(entry, sort_keys=True) + "\n" for entry in kept))
        return dropped

    def _append(self, kind, step, values):
        if not self.enabled:
            return
        storage.makedirs(self.model_dir)
        entry = {"kind": kind, "step": int(step), **{k: _plain(v) for k, v in values.items()}}
        storage.append_text(self.path, json.dumps(entry, sort_keys=True) + "\n")
        with self._writer().as_default(step=int(step)):
            for name, value in values.items():
                tf.summary.scalar(f"{kind}/{name}", value)

    def run_settings(self, flagfile_text, hparams, metric_tags):
        """The run's settings for TensorBoard, at step 0: the flagfile as text, and for the HParams dashboard the
        flags as hyperparameters ({name: bool, number or string}) with `metric_tags` (scalars this run writes, such
        as eval/psnr) as the metrics to compare runs by. Every run writes the same experiment config, so whichever
        TensorBoard reads describes them all."""
        if not self.enabled:
            return
        from tensorboard.plugins.hparams import api as hparams_api  # noqa: PLC0415 - only the chief writes these

        with self._writer().as_default(step=0):
            hparams_api.hparams_config(hparams=[hparams_api.HParam(name) for name in hparams],
                                       metrics=[hparams_api.Metric(tag) for tag in metric_tags])
            hparams_api.hparams(hparams)
            # Indented: TensorBoard renders text as Markdown, where an indented block is shown verbatim.
            tf.summary.text("flags", "".join(f"    {line}\n" for line in flagfile_text.splitlines()))

    def train(self, step, scalars):
        """Losses, throughput and input wait of one log interval."""
        self._append("train", step, scalars)

    def eval(self, step, scalars):
        """PSNR, SSIM and colorfulness on the val split."""
        self._append("eval", step, scalars)

    def baseline(self, step, scalars):
        """Reference figures measured once, such as the gray-copy PSNR."""
        self._append("baseline", step, scalars)

    def event(self, step, scalars):
        """Rare happenings worth a line, such as a restore after a non-finite loss."""
        self._append("event", step, scalars)

    def sample_sheet(self, step, gray, generated, real, max_rows=8):
        """Writes samples/step_NNNNNNN.png (rows of gray | generated | real, floats in [0, 1]) and the same grid to
        TensorBoard; returns the PNG's path (None when disabled)."""
        if not self.enabled:
            return None
        rows = [[visualize.to_u8(image) for image in row] for row in list(zip(gray, generated, real))[:max_rows]]
        sheet = visualize.image_grid(rows, titles=visualize.SAMPLE_TITLES)
        path = sample_sheet_path(self.model_dir, step)
        visualize.save_png(sheet, path)
        with self._writer().as_default(step=int(step)):
            tf.summary.image("samples", np.asarray(sheet)[np.newaxis], max_outputs=1)
        return path

    def close(self):
        if self._summary_writer is not None:
            self._summary_writer.close()
            self._summary_writer = None


def _plain(value):
    """JSON-ready Python numbers from numpy/TF scalars."""
    return value.item() if hasattr(value, "item") else value
