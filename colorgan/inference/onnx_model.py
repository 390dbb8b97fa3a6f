"""Colorizing with an ONNX export (`export --format=onnx`) through onnxruntime, without TensorFlow: the chroma
network runs in onnxruntime, the canvas and the full-resolution recombination in numpy (`numpy_stages`), decoding
in PIL (`photo_files`). `OnnxColorizer` offers what a colorize job asks of `loading.Colorizer`.

The .onnx file is self-contained: the export's description (colorgan.json) is also in its metadata, under
METADATA_KEY, so the file alone can be copied and run.
"""

import json
import os

import numpy as np

from colorgan.core import storage
from colorgan.inference import model_errors
from colorgan.inference import numpy_stages

ONNX_FILENAME = "model.onnx"
METADATA_KEY = "colorgan"


def onnx_path(path):
    """The .onnx file `path` names (the file, or a folder holding ONNX_FILENAME), or None for any other model."""
    if path.endswith(".onnx"):
        return path
    inside = os.path.join(path, ONNX_FILENAME)
    return inside if storage.isfile(inside) else None


class OnnxColorizer:
    """A loaded ONNX export: `stages` (numpy), `chroma` (one onnxruntime call per batch of canvases), and the
    export's `description`, `render_size` and `takes_hints` (False: colour hints need the TensorFlow stages)."""

    def __init__(self, session, description):
        self._session = session
        self._input = session.get_inputs()[0].name
        self.description = description
        self.render_size = int(description["render_size"])
        self.takes_hints = False
        self.stages = numpy_stages.NumpyPhotoStages(self.render_size)

    @classmethod
    def load(cls, path, step=0, render_size=0):
        """The ONNX export at `path`; `step` and `render_size` (0: any) must be the export's own."""
        try:
            import onnxruntime  # noqa: PLC0415 - the [onnx] extra, needed only for .onnx models
        except ImportError:
            raise model_errors.InferenceError(
                f"--model={path}: onnxruntime is not installed (pip install '.[onnx]')") from None
        if not storage.isfile(path):
            raise model_errors.InferenceError(f"--model={path}: no such ONNX file")
        try:
            session = onnxruntime.InferenceSession(storage.read_bytes(path), providers=["CPUExecutionProvider"])
            description = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
        except KeyError:
            raise model_errors.InferenceError(f"--model={path}: not an ONNX export of ColorGAN (no '{METADATA_KEY}' "
                                              "metadata; export one with --format=onnx)") from None
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own untyped errors for damaged files
            raise model_errors.DamagedModel(f"--model={path}: cannot be loaded, the ONNX file is damaged (export "
                                            f"again): {' '.join(str(e).split())[:200]}") from None
        colorizer = cls(session, description)
        if step and step != description["step"]:
            raise model_errors.InferenceError(f"--step={step}: {path} is an export of step {description['step']}")
        if render_size and render_size != colorizer.render_size:
            raise model_errors.InferenceError(f"--render_size={render_size}: {path} is an export fixed at "
                                              f"{colorizer.render_size} (export again with --render_size)")
        return colorizer

    def chroma(self, canvas, canvas_hints=None):
        """Canvases [n, R, R, 1] in [0, 1] -> a*, b* [n, R, R, 2]: one onnxruntime call."""
        if canvas_hints is not None:
            raise model_errors.InferenceError("ONNX exports take no colour hints (colorize with the SavedModel)")
        return self._session.run(None, {self._input: np.asarray(canvas, np.float32)})[0]

    def colorize(self, gray, dtype=np.float32):
        """numpy gray [n, h, w, 1] in [0, 1] -> sRGB [n, h, w, 3] at full resolution (as `loading.Colorizer`)."""
        canvas, _ = self.stages.canvas(gray)
        return self.stages.recombine(gray, self.chroma(canvas), dtype)
