"""One photo's way through a colorize job, the same whichever runner takes it: a PhotoTask is prepared (loaded, its
hints read, its canvas made), batched with others onto the generator (`chroma_for`), and finished (recombined at
full resolution, written atomically). `colorize_job` runs these in this process; `beam_colorize` on Beam's workers.
"""

import dataclasses
import os

import numpy as np

from colorgan.core import storage
from colorgan.core import visualize
from colorgan.inference import hint_points
from colorgan.inference import photo_files

COMPARE_SUFFIX = ".compare.jpg"
COMPARE_MAX_HEIGHT = 768
_SIXTEEN_BIT_FORMATS = ("PNG", "TIFF")


class WriteError(ValueError):
    """An output that cannot be written (a full disk, a read-only folder): the job stops; one line naming it."""


def output_dtype(photo, output_format):
    """uint16 for 16-bit sources where the format holds 16 bits, else uint8: what the tool writes."""
    return np.uint16 if photo.bit_depth == 16 and output_format in _SIXTEEN_BIT_FORMATS else np.uint8


def colorize_photo(colorizer, photo, output_format="PNG", hints=None):
    """The colorized pixels of a loaded photo as the tool writes them (`output_dtype`). hints: a hint_points.Hints
    for the photo, or None."""
    return colorizer.colorize(photo.gray, output_dtype(photo, output_format),
                              hints=hints.arrays() if hints is not None else None)


@dataclasses.dataclass(frozen=True)
class PhotoTask:
    """One photo to colorize: what a runner is handed (picklable, for Beam's workers)."""

    source: str
    relative: str  # the output's path under output_dir, without extension
    output: str
    image_format: str


@dataclasses.dataclass
class PreparedPhoto:
    """A photo loaded and put on its canvas: all its generator call needs, and all its recombination needs."""

    task: PhotoTask
    photo: photo_files.Photo
    hints: object  # hint_points.Hints, or None
    canvas: np.ndarray  # [1, R, R, 1]
    canvas_hints: np.ndarray | None  # [1, R, R, 3]


def prepare(task, config, stages, takes_hints):
    """Loads a photo and its hints and makes its canvas; PhotoError or HintsError for one that cannot be colorized."""
    photo = dataclasses.replace(photo_files.load_photo(task.source, config.max_pixels), rgb=None)  # not needed
    hints = None
    hints_path = config.hints or hint_points.sidecar_path(task.source)
    if takes_hints and (config.hints or storage.exists(hints_path)):
        height, width = photo.gray.shape
        hints = hint_points.load(hints_path, width, height)
    points = None if hints is None else [value[np.newaxis] for value in hints.arrays()]  # (0 points: still hints)
    return PreparedPhoto(task, photo, hints, *stages.canvas(photo.gray[np.newaxis, ..., np.newaxis], points))


def chroma_for(colorizer, prepared):
    """The chroma [1, R, R, 2] of each prepared photo, in order: one generator call for those with hints and one for
    the rest."""
    chroma = [None] * len(prepared)
    for with_hints in (False, True):
        members = [index for index, item in enumerate(prepared) if (item.canvas_hints is not None) == with_hints]
        if members:
            batch = colorizer.chroma(np.concatenate([prepared[index].canvas for index in members]),
                                     np.concatenate([prepared[index].canvas_hints for index in members])
                                     if with_hints else None)
            for row, index in enumerate(members):
                chroma[index] = batch[row:row + 1]
    return chroma


def finish(prepared, chroma, config, stages):
    """Recombines a photo at full resolution and writes it (and its comparison sheet); WriteError when the output
    cannot be written, which stops the job."""
    task, photo = prepared.task, prepared.photo
    rgb = stages.recombine(photo.gray[np.newaxis, ..., np.newaxis], chroma, output_dtype(photo, task.image_format))[0]
    storage.makedirs(storage.parent(task.output))
    try:
        if config.compare:
            photo_files.save_photo(compare_sheet(photo.gray, rgb, prepared.hints), os.path.join(
                config.output_dir, task.relative + COMPARE_SUFFIX), "JPEG", jpeg_quality=90)
        photo_files.save_photo(rgb, task.output, task.image_format, exif=photo.exif, jpeg_quality=config.jpeg_quality)
    except OSError as e:
        raise WriteError(f"{task.output}: cannot write: {e.strerror or e}") from None


def compare_sheet(gray, rgb, hints=None):
    """input | colorized (input | hints | colorized with hints), side by side, at most COMPARE_MAX_HEIGHT pixels
    high (gray: float [0, 1]; rgb: the colorized uint8 or uint16 pixels)."""
    images = [visualize.to_u8(gray), visualize.to_u8(rgb / np.iinfo(rgb.dtype).max)]
    titles = ["input", "colorized"]
    if hints is not None:
        images.insert(1, visualize.with_points(images[0], hints.xy, hints.rgb))
        titles.insert(1, "hints")
    return np.asarray(visualize.row_sheet(images, titles, COMPARE_MAX_HEIGHT))
