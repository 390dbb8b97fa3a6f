"""Colorizing photos with a trained generator, outside the trainer: no optimizer, no strategy, no global seeding.

`Colorizer.load(path)` takes a run directory (its flags.cfg and checkpoints; the EMA weights where the run kept
them) or an export made by launch/export.py, and colorizes gray photos of any size at full resolution through
`photo_stages` (the stages `rendering.render_full_resolution` runs in one graph in an export), so a run and its
export give the same photos.
"""

import dataclasses
import json
import os
import re

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from colorgan.core import storage
from colorgan.inference import model_errors
from colorgan.inference import photo_stages
from colorgan.inference import portable_model
from colorgan.inference import rendering
from colorgan.modeling import models
from colorgan.training import train_config

EXPORT_METADATA_FILENAME = portable_model.DESCRIPTION_FILENAME
SAVED_MODEL_FILENAME = "saved_model.pb"
CHROMA_SIGNATURE = "chroma"
CHROMA_HINTS_SIGNATURE = "chroma_hints"


InferenceError = model_errors.InferenceError
DamagedModel = model_errors.DamagedModel

# What TensorFlow raises for damaged checkpoint and SavedModel files: truncated data (IndexError: "Read less bytes
# than requested"), a checksum mismatch (DataLossError), a garbage index ("not an sstable"), a bad graph proto.
_DAMAGE_ERRORS = (tf.errors.OpError, IndexError, ValueError, RuntimeError, OSError)


def _reason(error):
    """A TensorFlow error as a short line, without its graph-function noise ({{function_node ...}})."""
    text = " ".join(re.sub(r"\{\{[^}]*\}\}", "", str(error)).split())
    return text[:200] or type(error).__name__


def chroma_predictor(generator, color_space):
    """(canvas gray [n, R, R, 1] in [0, 1], canvas hints [n, R, R, 3] or None) -> the generator's a*, b*
    [n, R, R, 2]: what rendering needs of a model (a hints generator without hints colorizes alone)."""

    def predict(canvas, hints=None):
        inputs = color_space.model_input(canvas)
        return color_space.chroma(inputs, generator(models.generator_inputs(generator, inputs, hints),
                                                    training=False))

    return predict


def _checkpoint_path(model_dir, step):
    if step:
        path = os.path.join(model_dir, f"ckpt-{step}")
        if not tf.io.gfile.exists(f"{path}.index"):
            available = sorted(int(name[5:-6]) for name in tf.io.gfile.listdir(model_dir)
                               if name.startswith("ckpt-") and name.endswith(".index"))
            raise InferenceError(f"--step={step}: {model_dir} has no checkpoint of that step (it has {available})")
        return path
    path = tf.train.latest_checkpoint(model_dir)
    if not path:
        raise InferenceError(f"{model_dir}: no checkpoint yet (train first)")
    return path


def load_generator(model_dir, step=0, render_size=0):
    """(generator built at render_size with the run's weights, description) from a run directory. render_size 0:
    the run's training size. The EMA weights are taken where the run kept them."""
    flags_path = os.path.join(model_dir, train_config.FLAGFILE_NAME)
    if not tf.io.gfile.exists(flags_path):
        raise InferenceError(f"{model_dir}: not a training run (no {train_config.FLAGFILE_NAME})")
    config = train_config.read_flagfile(flags_path)
    checkpoint = _checkpoint_path(model_dir, step)
    spec = models.GENERATORS[config.generator]
    render_size = render_size or config.image_size
    hparams = config.model_hparams()
    if spec.has_depth:  # the depth trained with, whatever the render size
        hparams["depth"] = models.unet_depth(config.image_size, config.depth)
    try:
        generator = models.build_generator(config.generator, render_size, **hparams)
    except ValueError as e:
        raise InferenceError(f"--render_size={render_size}: {e}") from None
    try:
        names = storage.checkpoint_reader(checkpoint).get_variable_to_shape_map()
        weights = "ema_generator" if any(name.startswith("ema_generator/") for name in names) else "generator"
        tf.train.Checkpoint(**{weights: generator}).restore(checkpoint).expect_partial() \
            .assert_existing_objects_matched()
    except AssertionError as e:
        raise DamagedModel(f"{checkpoint}: does not hold this run's generator: {str(e).splitlines()[0][:200]}") \
            from None
    except _DAMAGE_ERRORS as e:
        raise DamagedModel(f"{checkpoint}: cannot be read, the checkpoint is damaged ({_reason(e)})") from None
    description = dict(generator=config.generator, color_space=spec.color_space.name, render_size=render_size,
                       training_image_size=config.image_size, depth=hparams["depth"], hints=config.hints,
                       weights=weights,
                       step=int(checkpoint.rsplit("-", 1)[1]), checkpoint=checkpoint,
                       training_flags=train_config.to_flagfile_text(config).split())
    return generator, description


def model_kind(path):
    """("export" or "run", the path to load): what `path` holds, told by the file each kind always has. A base of
    versioned exports (TF Serving's BASE/VERSION) resolves to its highest version, the one TF Serving serves.
    InferenceError otherwise."""
    if tf.io.gfile.exists(os.path.join(path, SAVED_MODEL_FILENAME)):
        return "export", path
    if tf.io.gfile.exists(os.path.join(path, train_config.FLAGFILE_NAME)):
        return "run", path
    latest = latest_version(path)
    if latest:
        return "export", latest
    if portable_model.portable_path(path):
        raise InferenceError(f"{path}: an export for a runtime without TensorFlow, which only colorize.py runs; give "
                             "a training run or a SavedModel export")
    raise InferenceError(f"{path}: neither a training run ({train_config.FLAGFILE_NAME}) nor an export "
                         f"({SAVED_MODEL_FILENAME}, or numbered versions of one: {path}/1/{SAVED_MODEL_FILENAME})")


def versions(base):
    """The version numbers of the exports in `base` (folders named by a number holding a SavedModel), sorted."""
    try:
        names = [name.rstrip("/") for name in tf.io.gfile.listdir(base)]
    except tf.errors.OpError:
        return []
    return sorted(int(name) for name in names
                  if name.isdigit() and tf.io.gfile.exists(os.path.join(base, name, SAVED_MODEL_FILENAME)))


def latest_version(base):
    """BASE/<highest version> of a base of exports, or None."""
    found = versions(base)
    return os.path.join(base, str(found[-1])) if found else None


@dataclasses.dataclass(frozen=True)
class LoadedExport:
    """An export loaded once: its colorgan.json, the SavedModel (which must outlive its signatures), the chroma
    signature as canvases -> ab, and, when asked for, its SignatureDef protos (what TF Serving's metadata shows)."""

    description: dict
    saved_model: object
    predict_chroma: object
    signature_defs: dict | None = None


def load_export(export_dir, with_signature_defs=False):
    """The LoadedExport of `export_dir`; InferenceError naming the file when its metadata is unreadable."""
    metadata = os.path.join(export_dir, EXPORT_METADATA_FILENAME)
    try:  # written last: without it the export is unfinished
        description = json.loads(storage.read_text(metadata))
    except (OSError, ValueError) as e:
        raise DamagedModel(f"{metadata}: unreadable, the export is incomplete or damaged (export again): "
                             f"{e}") from None
    try:
        loaded = tf.saved_model.load(export_dir)
    except _DAMAGE_ERRORS as e:
        raise DamagedModel(f"{export_dir}: cannot be loaded, the export is damaged (export again): "
                             f"{_reason(e)}") from None
    chroma = loaded.signatures[CHROMA_SIGNATURE]
    with_hints = loaded.signatures.get(CHROMA_HINTS_SIGNATURE)

    def predict_chroma(canvas, hints=None):
        return chroma(gray=canvas)["ab"] if hints is None else with_hints(gray=canvas, hints=hints)["ab"]

    signature_defs = None
    if with_signature_defs:  # tf.saved_model.load keeps no SignatureDef protos: read them from the graph file
        saved_model = saved_model_pb2.SavedModel.FromString(
            storage.read_bytes(os.path.join(export_dir, SAVED_MODEL_FILENAME)))
        signature_defs = dict(saved_model.meta_graphs[0].signature_def)
    return LoadedExport(description, loaded, predict_chroma, signature_defs)


class Colorizer:
    """Colorizes gray photos [h, w] / [h, w, 1] / [n, h, w, 1] in [0, 1] at full resolution, with a person's colour
    hints where the model takes them, through `photo_stages`: canvas, `chroma` (the generator, the one stage that
    batches photos of any sizes together), recombination."""

    def __init__(self, predict_chroma, render_size, description, keep_alive=None):
        self.render_size = size = render_size
        self.description = description
        self.takes_hints = bool(description.get("hints"))
        self.stages = photo_stages.PhotoStages(render_size)
        self._keep_alive = keep_alive  # a loaded SavedModel must outlive its signatures
        canvases = tf.TensorSpec([None, size, size, 1], tf.float32)
        self._chroma = tf.function(lambda canvas: predict_chroma(canvas), input_signature=[canvases], autograph=False)
        self._chroma_with_hints = tf.function(
            predict_chroma, input_signature=[canvases, tf.TensorSpec([None, size, size, 3], tf.float32)],
            autograph=False) if self.takes_hints else None
        # The three stages in one graph, composable in another (the evaluator's metrics), as an export runs them.
        self.colorize_batch = tf.function(
            lambda gray: rendering.render_full_resolution(gray, predict_chroma, size),
            input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32)], autograph=False)

    @classmethod
    def from_run(cls, model_dir, step=0, render_size=0):
        generator, description = load_generator(model_dir, step, render_size)
        space = models.GENERATORS[description["generator"]].color_space
        return cls(chroma_predictor(generator, space), description["render_size"], description)

    @classmethod
    def from_export(cls, export_dir):
        loaded = load_export(export_dir)
        return cls(loaded.predict_chroma, loaded.description["render_size"], loaded.description, loaded.saved_model)

    @classmethod
    def load(cls, path, step=0, render_size=0):
        """A run directory or an export; `step` and `render_size` apply to runs (an export has them fixed)."""
        kind, path = model_kind(path)
        if kind == "export":
            colorizer = cls.from_export(path)
            if step and step != colorizer.description["step"]:
                raise InferenceError(f"--step={step}: {path} is an export of step {colorizer.description['step']}")
            if render_size and render_size != colorizer.render_size:
                raise InferenceError(f"--render_size={render_size}: {path} is an export fixed at "
                                     f"{colorizer.render_size} (export again with --render_size)")
            return colorizer
        return cls.from_run(path, step, render_size)

    def chroma(self, canvas, canvas_hints=None):
        """Canvases [n, R, R, 1] (and their hints [n, R, R, 3]) -> a*, b* [n, R, R, 2] numpy: one generator call."""
        if canvas_hints is None:
            return self._chroma(tf.constant(canvas)).numpy()
        self._refuse_hints()
        return self._chroma_with_hints(tf.constant(canvas), tf.constant(canvas_hints)).numpy()

    def colorize(self, gray, dtype=np.float32, hints=None):
        """numpy gray in [0, 1] -> numpy sRGB with a channel axis of 3 (batch axis as given): float32 in [0, 1], or
        uint8 / uint16 over their full range. hints: (xy [k, 2], rgb [k, 3] in [0, 1], mask [k]) per photo (a batch
        axis first for a batch), as `rendering.canvas_hints` reads them."""
        gray = np.asarray(gray, np.float32)
        batch = gray if gray.ndim == 4 else (gray[..., np.newaxis] if gray.ndim == 2 else gray)[np.newaxis]
        if hints is not None:
            hints = [np.asarray(value, np.float32) for value in hints]
            hints = [value if gray.ndim == 4 else value[np.newaxis] for value in hints]
            self._refuse_hints()  # before any work
        rgb = self.stages.recombine(batch, self.chroma(*self.stages.canvas(batch, hints)), dtype)
        return rgb if gray.ndim == 4 else rgb[0]

    def _refuse_hints(self):
        if not self.takes_hints:
            raise InferenceError(f"{self.description['generator']} at step {self.description['step']} takes no "
                                 "colour hints (train with --hints)")
