"""Exports a run's generator as a SavedModel that TensorFlow alone can serve (TF Serving, tf.saved_model.load).

The serving contract (BUILD.md, "Export and serving") has three signatures, each with the full-resolution
recombination of `rendering` inside the graph, so a server returns finished photos:

  serving_default  image_bytes: string [n] (encoded images; EXIF orientation applied)  -> image_bytes: PNG [n]
                   (refused before decoding, as the service refuses them: `safe_decode`, up to max_pixels)
  colorize         images: uint8 [n, h, w, 1 or 3] (gray or colour, any size)         -> images: uint8 [n, h, w, 3]
  chroma           gray: float32 [n, R, R, 1] in [0, 1] (already at the render size)   -> ab: float32 [n, R, R, 2]

Beside it: colorgan.json (training flags, step, colour space, render size, sha256 of the weights) and the generator
as generator.keras.
"""

import hashlib
import json
import os

import tensorflow as tf

from colorgan.core import storage
from colorgan.inference import loading
from colorgan.inference import photo_files
from colorgan.inference import rendering
from colorgan.inference import safe_decode
from colorgan.modeling import models

KERAS_FILENAME = "generator.keras"
EXPORT_FORMAT = "colorgan-export"  # colorgan.json's "format": what tells an export of ours
# Everything an export folder holds: what tf.saved_model.save writes, the Keras file and our metadata. A folder with
# anything else in it is not an export of ours, and --overwrite never replaces it.
EXPORT_ENTRIES = frozenset({loading.SAVED_MODEL_FILENAME, "fingerprint.pb", "variables", "assets", KERAS_FILENAME,
                            loading.EXPORT_METADATA_FILENAME})


class ServingModule(tf.Module):
    """The generator and the three signatures' functions, at a fixed render size. No autograph: the graphs use
    explicit while_loop / map_fn, and autograph would leave a generated file in $TMPDIR per converted function."""

    def __init__(self, generator, color_space, render_size, max_pixels):
        super().__init__()
        predict_chroma = loading.chroma_predictor(generator, color_space)

        def colorize_u8(images):
            return rendering.render_full_resolution(rendering.gray_from_u8(images), predict_chroma, render_size,
                                                    tf.uint8)

        def encoded_to_png(image_bytes):
            image = safe_decode.decode_upright(image_bytes, max_pixels)
            return tf.io.encode_png(colorize_u8(image[tf.newaxis])[0])

        self.serving_default = tf.function(
            lambda image_bytes: {"image_bytes": tf.map_fn(encoded_to_png, image_bytes,
                                                          fn_output_signature=tf.TensorSpec([], tf.string))},
            input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")], autograph=False)
        self.colorize = tf.function(
            lambda images: {"images": colorize_u8(images)},
            input_signature=[tf.TensorSpec([None, None, None, None], tf.uint8, name="images")], autograph=False)
        self.chroma = tf.function(
            lambda gray: {"ab": predict_chroma(gray)},
            input_signature=[tf.TensorSpec([None, render_size, render_size, 1], tf.float32, name="gray")],
            autograph=False)

        # Track the tf.Variables the traced functions read, not the Keras model: a tracked Keras 3 model saves its
        # variable wrappers, whose weights TF1-style loaders (TF Serving, saved_model_cli) then cannot find.
        # Keras's own ExportArchive tracks variables this way.
        used = {}
        for function in self.signatures().values():
            for variable in function.get_concrete_function().variables:
                used.setdefault(id(variable), variable)
        self.serving_variables = list(used.values())

    def signatures(self):
        return {"serving_default": self.serving_default, "colorize": self.colorize,
                loading.CHROMA_SIGNATURE: self.chroma}


def weights_sha256(model):
    """sha256 over the model's weights (names, shapes and bytes, in order): ties an export to its weights."""
    digest = hashlib.sha256()
    for weight in model.weights:
        value = weight.numpy()
        digest.update(f"{weight.path}:{value.shape}:{value.dtype}".encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _replace_problem(export_dir):
    """Why `export_dir` may not become an export, even with --overwrite, or None: absent, empty, or a previous export
    of ours (only EXPORT_ENTRIES, our metadata among them) may be written or replaced. A run folder, its parent, the
    current folder or a base of numbered versions holds other things: deleting them is never this tool's to do."""
    try:
        if not storage.exists(export_dir):
            return None
        if not storage.isdir(export_dir):
            return "is a file, not a folder"
        names = storage.listdir(export_dir)
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    foreign = [name for name in names if name not in EXPORT_ENTRIES]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        return f"holds {shown}, which no export of ours holds"
    if names and not _is_our_export(export_dir):
        return f"holds no readable {loading.EXPORT_METADATA_FILENAME} of an export of ours"
    return None


def _is_our_export(export_dir):
    try:
        metadata = json.loads(storage.read_text(os.path.join(export_dir, loading.EXPORT_METADATA_FILENAME)))
    except (OSError, ValueError):
        return False
    return isinstance(metadata, dict) and metadata.get("format") == EXPORT_FORMAT


def export(model_dir, export_dir, step=0, render_size=0, overwrite=False, max_pixels=photo_files.DEFAULT_MAX_PIXELS):
    """Writes the export of `model_dir` (latest checkpoint or `step`) to `export_dir`; returns its description.
    `serving_default` refuses photos of more than `max_pixels` decoded pixels (every frame of a GIF).
    A failed export never leaves one that loads: see `storage` for how, on local disks and object stores."""
    problem = _replace_problem(export_dir)
    if problem:
        raise loading.InferenceError(f"--export_dir={export_dir}: {problem}; choose another --export_dir (--overwrite "
                                     f"replaces only a previous export, with its {loading.EXPORT_METADATA_FILENAME})")
    if storage.exists(export_dir) and storage.listdir(export_dir) and not overwrite:
        raise loading.InferenceError(f"--export_dir={export_dir}: exists and is not empty (--overwrite replaces it)")
    generator, description = loading.load_generator(model_dir, step, render_size)
    color_space = models.GENERATORS[description["generator"]].color_space
    description.update(format=EXPORT_FORMAT, format_version=1, weights_sha256=weights_sha256(generator),
                       max_pixels=max_pixels,
                       signatures={"serving_default": "image_bytes -> image_bytes (PNG)",
                                   "colorize": "images uint8 [n,h,w,1|3] -> images uint8 [n,h,w,3]",
                                   loading.CHROMA_SIGNATURE: "gray float32 [n,R,R,1] -> ab float32 [n,R,R,2]"})
    # Local disks: built beside it and renamed into place. Object stores cannot rename a folder (it would be a copy):
    # built in place, the metadata file, which loading needs, written last.
    local = storage.is_local(export_dir)
    staging = f"{export_dir.rstrip('/')}.partial-{os.getpid()}" if local else export_dir
    storage.rmtree(staging)
    try:
        module = ServingModule(generator, color_space, description["render_size"], max_pixels)
        tf.saved_model.save(module, staging, signatures=module.signatures())
        generator.save(os.path.join(staging, KERAS_FILENAME))
        storage.write_atomic(os.path.join(staging, loading.EXPORT_METADATA_FILENAME),
                             json.dumps(description, indent=2, sort_keys=True) + "\n")
        if local:
            storage.rmtree(export_dir)
            storage.rename(staging, export_dir)
    finally:
        if local:
            storage.rmtree(staging)
    return description
