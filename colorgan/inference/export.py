"""Exports a run's generator as a SavedModel that TensorFlow alone can serve (TF Serving, tf.saved_model.load).

The serving contract (BUILD.md, "Export and serving") has three signatures, each with the full-resolution
recombination of `rendering` inside the graph, so a server returns finished photos (serving_default runs a request's
photos through one generator call, whatever their sizes):

  serving_default  image_bytes: string [n] (encoded images; EXIF orientation applied)  -> image_bytes: PNG [n]
                   (refused before decoding, as the service refuses them: `safe_decode`, up to max_pixels)
  colorize         images: uint8 [n, h, w, 1 or 3] (gray or colour, any size)         -> images: uint8 [n, h, w, 3]
  chroma           gray: float32 [n, R, R, 1] in [0, 1] (already at the render size)   -> ab: float32 [n, R, R, 2]

and, for a generator trained with colour hints, two more (HINTS_SIGNATURES): serving_hints (serving_default with a
person's points) and chroma_hints (chroma with canvas hints).

Beside it: colorgan.json (training flags, step, colour space, render size, sha256 of the weights) and the generator
as generator.keras.
"""

import hashlib
import json
import os
import re

import tensorflow as tf

from colorgan.core import storage
from colorgan.inference import loading
from colorgan.inference import photo_files
from colorgan.inference import portable_model
from colorgan.inference import rendering
from colorgan.modeling import hint_patches
from colorgan.modeling import models

KERAS_FILENAME = "generator.keras"
SERVING_HINTS_SIGNATURE = "serving_hints"
SIGNATURES = {"serving_default": "image_bytes -> image_bytes (PNG)",
              "colorize": "images uint8 [n,h,w,1|3] -> images uint8 [n,h,w,3]",
              loading.CHROMA_SIGNATURE: "gray float32 [n,R,R,1] -> ab float32 [n,R,R,2]"}
HINTS_SIGNATURES = {
    SERVING_HINTS_SIGNATURE: "image_bytes, hint_xy float32 [n,k,2] (photo pixels), hint_rgb uint8 [n,k,3], "
                             "hint_mask float32 [n,k] -> image_bytes (PNG)",
    loading.CHROMA_HINTS_SIGNATURE: "gray float32 [n,R,R,1], hints float32 [n,R,R,3] (a, b normalised; mask) -> "
                                    "ab float32 [n,R,R,2]"}
# An export in progress on a local disk is built beside its folder, as VERSION.partial-PID, then renamed.
_STAGING_SUFFIX = ".partial-"
_STAGING = re.compile(r"\d+" + re.escape(_STAGING_SUFFIX) + r"\d+")
EXPORT_FORMAT = "colorgan-export"  # colorgan.json's "format": what tells an export of ours
# Everything an export folder holds: what tf.saved_model.save writes, the Keras file and our metadata. A folder with
# anything else in it is not an export of ours, and --overwrite never replaces it.
EXPORT_ENTRIES = frozenset({loading.SAVED_MODEL_FILENAME, "fingerprint.pb", "variables", "assets", KERAS_FILENAME,
                            loading.EXPORT_METADATA_FILENAME, *portable_model.MODEL_FILES.values()})


class ServingModule(tf.Module):
    """The generator and the signatures' functions, at a fixed render size (SIGNATURES, and HINTS_SIGNATURES for a
    generator that takes colour hints). No autograph: the graphs use explicit while_loop / map_fn, and autograph
    would leave a generated file in $TMPDIR per converted function."""

    def __init__(self, generator, color_space, render_size, max_pixels):
        super().__init__()
        predict_chroma = loading.chroma_predictor(generator, color_space)

        def colorize_u8(images):
            return rendering.render_full_resolution(rendering.gray_from_u8(images), predict_chroma, render_size,
                                                    tf.uint8)

        def decoded(image_bytes):
            return rendering.gray_from_encoded(image_bytes, max_pixels)

        def encoded_to_pngs(image_bytes, points=None):
            """One generator call for a request's photos of any sizes: each decoded and fitted to its canvas, the
            canvases stacked, then each photo decoded again and recombined at its own size (holding every photo of
            a request at full size at once would cost more than a second decode)."""
            if points is None:
                canvases = tf.map_fn(lambda data: rendering.fit_canvas(decoded(data), render_size)[0][0],
                                     image_bytes, fn_output_signature=tf.TensorSpec([render_size, render_size, 1]))
                chroma = predict_chroma(canvases)
            else:
                xy, rgb, mask = points
                canvases, canvas_hints = tf.map_fn(
                    lambda row: [canvas[0] for canvas in rendering.fit_canvas_with_hints(
                        decoded(row[0]), (row[1][tf.newaxis], tf.cast(row[2], tf.float32)[tf.newaxis] / 255.0,
                                          row[3][tf.newaxis]), render_size)],
                    (image_bytes, xy, rgb, mask),
                    fn_output_signature=[tf.TensorSpec([render_size, render_size, 1]),
                                         tf.TensorSpec([render_size, render_size, hint_patches.CHANNELS])])
                chroma = predict_chroma(canvases, canvas_hints)
            return tf.map_fn(
                lambda row: tf.io.encode_png(rendering.recombine(decoded(row[0]), row[1][tf.newaxis], render_size,
                                                                 tf.uint8)[0]),
                (image_bytes, chroma), fn_output_signature=tf.TensorSpec([], tf.string))

        self.serving_default = tf.function(
            lambda image_bytes: {"image_bytes": encoded_to_pngs(image_bytes)},
            input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")], autograph=False)
        self.colorize = tf.function(
            lambda images: {"images": colorize_u8(images)},
            input_signature=[tf.TensorSpec([None, None, None, None], tf.uint8, name="images")], autograph=False)
        self.chroma = tf.function(
            lambda gray: {"ab": predict_chroma(gray)},
            input_signature=[tf.TensorSpec([None, render_size, render_size, 1], tf.float32, name="gray")],
            autograph=False)
        self.hints_signatures = {}
        if models.takes_hints(generator):
            # TF Serving's row format stacks each input over the instances: points come padded to one count k per
            # request, hint_mask 0 for padding. Colours are sRGB bytes, as a person picks them.
            self.hints_signatures[SERVING_HINTS_SIGNATURE] = tf.function(
                lambda image_bytes, hint_xy, hint_rgb, hint_mask: {
                    "image_bytes": encoded_to_pngs(image_bytes, (hint_xy, hint_rgb, hint_mask))},
                input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes"),
                                 tf.TensorSpec([None, None, 2], tf.float32, name="hint_xy"),
                                 tf.TensorSpec([None, None, 3], tf.uint8, name="hint_rgb"),
                                 tf.TensorSpec([None, None], tf.float32, name="hint_mask")], autograph=False)
            self.hints_signatures[loading.CHROMA_HINTS_SIGNATURE] = tf.function(
                lambda gray, hints: {"ab": predict_chroma(gray, hints)},
                input_signature=[tf.TensorSpec([None, render_size, render_size, 1], tf.float32, name="gray"),
                                 tf.TensorSpec([None, render_size, render_size, hint_patches.CHANNELS], tf.float32,
                                               name="hints")], autograph=False)

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
                loading.CHROMA_SIGNATURE: self.chroma, **self.hints_signatures}


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


def version_folder(export_dir):
    """Where an export to `export_dir` goes, TF Serving's layout: a path whose last part is a number is a version
    folder, taken as given; any other path is a base of versions, and the export becomes its next version
    (BASE/1 when new). A base holding anything but numbered versions (and the staging folders of exports in
    progress) is refused: it is not ours to add to."""
    if os.path.basename(os.path.normpath(export_dir)).isdigit():
        return export_dir
    if not storage.exists(export_dir):
        return os.path.join(export_dir, "1")
    if not storage.isdir(export_dir):
        raise loading.InferenceError(f"--export_dir={export_dir}: is a file, not a folder")
    names = [name.rstrip("/") for name in storage.listdir(export_dir)]
    foreign = sorted(name for name in names if not (name.isdigit() or _STAGING.fullmatch(name)))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise loading.InferenceError(
            f"--export_dir={export_dir}: holds {shown}, which no base of numbered exports holds; give a version "
            f"folder (--export_dir={os.path.join(export_dir, '1')}) or a folder of versions only")
    return os.path.join(export_dir, str(max((int(name) for name in names if name.isdigit()), default=0) + 1))


def export(model_dir, export_dir, step=0, render_size=0, overwrite=False, max_pixels=photo_files.DEFAULT_MAX_PIXELS,
           export_format="saved_model"):
    """Writes the export of `model_dir` (latest checkpoint or `step`) to `version_folder(export_dir)`; returns its
    description, with the folder as "export_dir". saved_model: the SavedModel (`serving_default` refuses photos of
    more than `max_pixels` decoded pixels, every frame of a GIF) and the Keras file; onnx and tflite: the chroma
    network as model.onnx or model.tflite (`portable_export`). A failed export never leaves one that loads: see
    `storage` for how, on local disks and object stores."""
    export_dir = version_folder(export_dir)
    problem = _replace_problem(export_dir)
    if problem:
        raise loading.InferenceError(f"--export_dir={export_dir}: {problem}; choose another --export_dir (--overwrite "
                                     f"replaces only a previous export, with its {loading.EXPORT_METADATA_FILENAME})")
    if storage.exists(export_dir) and storage.listdir(export_dir) and not overwrite:
        raise loading.InferenceError(f"--export_dir={export_dir}: exists and is not empty (--overwrite replaces it)")
    generator, description = loading.load_generator(model_dir, step, render_size)
    color_space = models.GENERATORS[description["generator"]].color_space
    description.update(format=EXPORT_FORMAT, format_version=1, weights_sha256=weights_sha256(generator))
    if export_format in portable_model.MODEL_FILES:
        from colorgan.inference import portable_export  # noqa: PLC0415 - tf2onnx is the optional [onnx] extra

        contract = portable_export.HINTS_CONTRACT if description["hints"] else portable_export.CONTRACT
        description.update(runtime=export_format, signatures={portable_model.MODEL_FILES[export_format]: contract})
        if export_format == "onnx":
            description.update(onnx_opset=portable_export.ONNX_OPSET)
        model_file = portable_export.convert(export_format, generator, color_space, description["render_size"],
                                             description)
    else:
        description.update(max_pixels=max_pixels,
                           signatures={**SIGNATURES, **(HINTS_SIGNATURES if description["hints"] else {})})
    # Local disks: built beside it and renamed into place. Object stores cannot rename a folder (it would be a copy):
    # built in place, the metadata file, which loading needs, written last.
    local = storage.is_local(export_dir)
    staging = f"{export_dir.rstrip('/')}{_STAGING_SUFFIX}{os.getpid()}" if local else export_dir
    storage.rmtree(staging)
    try:
        if export_format in portable_model.MODEL_FILES:
            storage.makedirs(staging)
            storage.write_atomic(os.path.join(staging, portable_model.MODEL_FILES[export_format]), model_file)
        else:
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
    return {**description, "export_dir": export_dir}
