"""Colorizing with an export for a runtime without TensorFlow (`export --format=onnx` or `--format=tflite`): the
chroma network runs in onnxruntime or LiteRT, the canvas and the full-resolution recombination in numpy
(`numpy_stages`), decoding in PIL (`photo_files`). `PortableColorizer` offers what a colorize job asks of
`loading.Colorizer`.

The export's description (colorgan.json) sits beside the model file; an .onnx file also carries it in its metadata,
under METADATA_KEY, so it alone can be copied and run.
"""

import json
import os

import numpy as np

from colorgan.core import native_logs
from colorgan.core import storage
from colorgan.inference import model_errors
from colorgan.inference import numpy_stages

# --format -> the model file an export of that format holds, and the runtime (pip package) that runs it.
MODEL_FILES = {"onnx": "model.onnx", "tflite": "model.tflite"}
_RUNTIMES = {"onnx": "onnxruntime", "tflite": "ai-edge-litert"}
METADATA_KEY = "colorgan"
DESCRIPTION_FILENAME = "colorgan.json"


def portable_path(path):
    """(format, the model file) that `path` names (the file, or an export folder holding it), or None for a model
    that needs TensorFlow."""
    for model_format, filename in MODEL_FILES.items():
        if path.endswith(os.path.splitext(filename)[1]):
            return model_format, path
        if storage.isfile(os.path.join(path, filename)):
            return model_format, os.path.join(path, filename)
    return None


def _onnx_chroma(data):
    """(canvases -> chroma, the description in the file's metadata or None) of an ONNX model's bytes."""
    import onnxruntime  # noqa: PLC0415 - the [onnx] extra, needed only for .onnx models

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    embedded = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    return (lambda canvas: session.run(None, {name: canvas})[0]), embedded and json.loads(embedded)


def _tflite_chroma(data):
    """(canvases -> chroma, None) of a TFLite model's bytes, run by LiteRT."""
    from ai_edge_litert import interpreter  # noqa: PLC0415 - the [tflite] extra, needed only for .tflite models

    with native_logs.filtered():  # LiteRT's INFO line as its first call makes the CPU delegate
        runner = interpreter.Interpreter(model_content=data).get_signature_runner()
        side = runner.get_input_details()["gray"]["shape_signature"][1]
        runner(gray=np.zeros((1, side, side, 1), np.float32))
    return (lambda canvas: next(iter(runner(gray=canvas).values()))), None


_LOADERS = {"onnx": _onnx_chroma, "tflite": _tflite_chroma}


class PortableColorizer:
    """A loaded ONNX or TFLite export: `stages` (numpy), `chroma` (one runtime call per batch of canvases), and the
    export's `description`, `render_size` and `takes_hints` (False: colour hints need the TensorFlow stages)."""

    def __init__(self, predict_chroma, description):
        self._predict_chroma = predict_chroma
        self.description = description
        self.render_size = int(description["render_size"])
        self.takes_hints = False
        self.stages = numpy_stages.NumpyPhotoStages(self.render_size)

    @classmethod
    def load(cls, model_format, path, step=0, render_size=0):
        """The export in the model file `path`; `step` and `render_size` (0: any) must be the export's own."""
        if not storage.isfile(path):
            raise model_errors.InferenceError(f"--model={path}: no such {model_format} file")
        try:
            predict_chroma, description = _LOADERS[model_format](storage.read_bytes(path))
        except ImportError:
            raise model_errors.InferenceError(f"--model={path}: {_RUNTIMES[model_format]} is not installed (pip "
                                              f"install '.[{model_format}]')") from None
        except Exception as e:  # noqa: BLE001 - the runtimes raise their own untyped errors for damaged files
            raise model_errors.DamagedModel(f"--model={path}: cannot be loaded, the {model_format} file is damaged "
                                            f"(export again): {' '.join(str(e).split())[:200]}") from None
        description = description or _description_beside(path)
        colorizer = cls(predict_chroma, description)
        if step and step != description["step"]:
            raise model_errors.InferenceError(f"--step={step}: {path} is an export of step {description['step']}")
        if render_size and render_size != colorizer.render_size:
            raise model_errors.InferenceError(f"--render_size={render_size}: {path} is an export fixed at "
                                              f"{colorizer.render_size} (export again with --render_size)")
        return colorizer

    def chroma(self, canvas, canvas_hints=None):
        """Canvases [n, R, R, 1] in [0, 1] -> a*, b* [n, R, R, 2]: one runtime call."""
        if canvas_hints is not None:
            raise model_errors.InferenceError("exports for other runtimes take no colour hints (colorize with the "
                                              "SavedModel)")
        return self._predict_chroma(np.asarray(canvas, np.float32))

    def colorize(self, gray, dtype=np.float32):
        """numpy gray [n, h, w, 1] in [0, 1] -> sRGB [n, h, w, 3] at full resolution (as `loading.Colorizer`)."""
        canvas, _ = self.stages.canvas(gray)
        return self.stages.recombine(gray, self.chroma(canvas), dtype)


def _description_beside(path):
    """The colorgan.json of the export folder holding `path`; InferenceError when it is not an export of ours."""
    beside = os.path.join(os.path.dirname(path), DESCRIPTION_FILENAME)
    try:
        return json.loads(storage.read_text(beside))
    except (OSError, ValueError):
        raise model_errors.InferenceError(f"--model={path}: not an export of ColorGAN (no readable {beside} beside "
                                          "it; export one with --format=onnx or --format=tflite)") from None
