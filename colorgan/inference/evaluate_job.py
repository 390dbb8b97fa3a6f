"""What launch/evaluate.py measures: a loaded run or export on a dataset split or on a folder of colour photos, through
the full-resolution colorize path, with `evaluation.evaluator`'s metrics; and the gray | colorized | real sheets.

Here, in the inference layer, because it joins both sides: the data layer's records and pipeline, and the colorize
tool's way of reading photos."""

import os

import numpy as np
import tensorflow as tf

from colorgan.core import progress
from colorgan.core import visualize
from colorgan.data import input_pipeline
from colorgan.data import records
from colorgan.evaluation import evaluator
from colorgan.inference import colorize_job
from colorgan.inference import colorize_steps
from colorgan.inference import hint_points
from colorgan.inference import photo_files

HINTS_SEED = 2017  # the points revealed per photo: the same on every run, for every model compared


def evaluate_dataset(colorizer, data_dir, split="val", keep_samples=0):
    """Every example of a dataset split at its stored size, through the colorizer's full-resolution path."""
    stored = records.read_manifest(data_dir)["image_size"]
    # One example per batch: nothing is dropped, whatever the split's size.
    batches = input_pipeline.make_dataset(data_dir, split, 1, stored, training=False, color_space="rgb")
    return evaluator.Evaluator(colorizer.colorize_batch).run(iter(batches), keep_samples=keep_samples)


def evaluate_folder(colorizer, inputs, max_pixels, keep_samples=0, log=print, hints=0):
    """Colour photos at full resolution, exactly as colorize.py treats them: gray (the luma) -> colorize ->
    compare with the original. Photos without colour, and unreadable ones, are reported and left out. hints: points
    revealed per photo from its original (`hint_points.from_original`, seeded by HINTS_SEED and the photo's
    place in the sorted list), drawn on the samples' gray column."""
    means, samples = evaluator.Means(), []
    def unreadable(path, reason):
        log(f"evaluate: skipped {path}: {reason}")

    sources = colorize_job.list_sources(inputs, output_dir="", on_unreadable=unreadable)
    with progress.Progress("evaluate", len(sources), "photo", log) as bar:
        for index, (path, _) in enumerate(sources):
            problem = _evaluate_photo(colorizer, path, max_pixels, hints, index, means, samples, keep_samples)
            if problem:
                bar.note(f"evaluate: skipped {path}: {problem}")
            bar.update(1, lambda done, rate, eta: f"evaluate: {done}/{len(sources)} photos, {rate:.2f} photos/s, "
                                                  f"ETA {eta}", timed=not problem)
    return evaluator.Result(means.means(), means.count, samples)


def _evaluate_photo(colorizer, path, max_pixels, hints, index, means, samples, keep_samples):
    """Adds one photo's metrics to `means` (and it to `samples` while they are wanted); the reason it could not be
    evaluated, or None."""
    try:
        photo = photo_files.load_photo(path, max_pixels)
    except photo_files.PhotoError as e:
        return str(e)
    if photo.rgb is None:
        return "no colour original to compare with"
    points = hint_points.from_original(photo.rgb, hints, np.random.default_rng([HINTS_SEED, index])) \
        if hints else None
    generated = colorize_steps.colorize_photo(colorizer, photo, "JPEG", points).astype("float32") / 255.0
    gray = tf.constant(photo.gray[None, ..., None])
    real = tf.constant(photo.rgb[None].astype("float32") / 255.0)
    values = evaluator.pair_metrics(tf.constant(generated[None]), real, evaluator.gray_as_rgb(gray))
    means.add({name: float(tf.reduce_sum(value)) for name, value in values.items()}, 1)
    if len(samples) < keep_samples:
        shown = evaluator.gray_as_rgb(gray)[0].numpy()
        if points is not None:
            shown = visualize.with_points(visualize.to_u8(shown), points.xy, points.rgb) / 255.0
        samples.append((shown, generated, real[0].numpy()))
    return None


SAMPLE_MAX_HEIGHT = 384


def write_sample_sheets(samples, directory):
    """One PNG per sample, gray | colorized | real, at most SAMPLE_MAX_HEIGHT high; returns the paths."""
    paths = []
    for index, images in enumerate(samples):
        path = os.path.join(directory, f"sample_{index:03d}.png")
        visualize.save_png(visualize.row_sheet([visualize.to_u8(image) for image in images],
                                               visualize.SAMPLE_TITLES, SAMPLE_MAX_HEIGHT), path)
        paths.append(path)
    return paths
