"""The model a service serves: an export (or a run, exported to memory first) loaded once through the inference
layer's loader, and the per-photo stages around the batched chroma call, as the export's bytes signature runs them."""

import os
import re

import tensorflow as tf

from colorgan.core import storage
from colorgan.inference import export
from colorgan.inference import hint_points
from colorgan.inference import loading
from colorgan.inference import rendering
from colorgan.serving import tf_serving_rest
from colorgan.serving.tf_serving_rest import ServingError


class ServedModel:
    """Loaded once: the chroma signature (what the batcher calls), the metadata TF Serving shows, and the stages
    before (decode upright, the records' luma, the canvas) and after (full-size recombination, PNG) it."""

    def __init__(self, path, max_pixels):
        try:
            kind, path = loading.model_kind(path)
        except loading.InferenceError as e:
            raise loading.InferenceError(f"--model={e}") from None
        if kind == "export":
            export_dir, self.version = path, tf_serving_rest.version_of(path)
        else:  # a run is exported to TensorFlow's in-memory filesystem: one code path, nothing written to disk
            export_dir, self.version = f"ram://colorgan-serve-{os.getpid()}/1", "1"
            export.export(path, export_dir, overwrite=True, max_pixels=max_pixels)
        try:
            loaded = loading.load_export(export_dir, with_signature_defs=True)
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise loading.DamagedModel(f"--model={path}: cannot load the export: "
                                         f"{' '.join(str(e).split())[:300]}") from None
        finally:
            if export_dir.startswith("ram://"):
                storage.rmtree(storage.parent(export_dir))
        self.description, self.predict_chroma = loaded.description, loaded.predict_chroma
        self.takes_hints = bool(self.description.get("hints"))
        self.signature_defs, self._saved_model = loaded.signature_defs, loaded.saved_model
        self.render_size = size = self.description["render_size"]
        # autograph=False: these graphs have no Python control flow to convert, and autograph leaves a generated
        # file in $TMPDIR for every function it converts.
        self._prepare = tf.function(lambda data: _prepare(data, size, max_pixels),
                                    input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
        self._prepare_with_points = tf.function(
            lambda data, xy, rgb, mask: _prepare(data, size, max_pixels, (xy, rgb, mask)),
            input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([1, None, 2], tf.float32),
                             tf.TensorSpec([1, None, 3], tf.float32), tf.TensorSpec([1, None], tf.float32)],
            autograph=False)
        self._finish = tf.function(
            lambda gray, ab: tf.io.encode_png(rendering.recombine(gray, ab, size, tf.uint8)[0]),
            input_signature=[tf.TensorSpec([1, None, None, 1], tf.float32),
                             tf.TensorSpec([1, size, size, 2], tf.float32)], autograph=False)

    def prepare(self, data, hints=None):
        """Encoded photo (and a hint_points.Hints) -> (gray [1, h, w, 1], canvas [1, R, R, 1], canvas hints
        [1, R, R, 3], None for a model without hints): decoded upright as the bytes signature does. Points must lie
        inside the photo as displayed."""
        if hints is not None and not self.takes_hints:
            raise ServingError(400, f"hints: this model ({self.description['generator']} at step "
                                    f"{self.description['step']}) takes no colour hints")
        try:
            if not self.takes_hints:
                return (*self._prepare(tf.constant(data)), None)
            xy, rgb, mask = (value[None] for value in (hints or hint_points.NONE).arrays())
            gray, canvas, canvas_hints = self._prepare_with_points(tf.constant(data), xy, rgb, mask)
        except tf.errors.InvalidArgumentError as e:  # TensorFlow's decoders name what is wrong; drop its graph noise
            reason = re.sub(r"\{\{[^}]*\}\}|\[\[[^\]]*\]\]", "", e.message).strip()
            raise ServingError(400, f"corrupt image: {reason.splitlines()[0][:200] if reason else 'undecodable'}") \
                from None
        if hints is not None:
            try:
                hint_points.check_inside(hints, int(gray.shape[2]), int(gray.shape[1]))
            except ValueError as e:
                raise ServingError(400, f"hints: {e}") from None
        return gray, canvas, canvas_hints

    def finish(self, gray, ab):
        """gray [1, h, w, 1] + its chroma at the render size -> PNG bytes of the photo colorized at full size."""
        return self._finish(gray, ab).numpy()


def _prepare(data, render_size, max_pixels, points=None):
    """The bytes signature's first steps (decode upright, the records' luma), then the canvas the model sees, and the
    points on it."""
    gray = rendering.gray_from_encoded(data, max_pixels)
    if points is None:
        return gray, rendering.fit_canvas(gray, render_size)[0]
    return gray, *rendering.fit_canvas_with_hints(gray, points, render_size)
