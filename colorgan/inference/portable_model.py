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
    """(inputs by name -> chroma, the description in the file's metadata or None) of an ONNX model's bytes."""
    import onnxruntime  # noqa: PLC0415 - the [onnx] extra, needed only for .onnx models

    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = {tensor.name.split(":")[0]: tensor.name for tensor in session.get_inputs()}
    embedded = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    return (lambda **inputs: session.run(None, {names[name]: value for name, value in inputs.items()})[0],
            embedded and json.loads(embedded))


def _tflite_chroma(data, description):
    """(inputs by name -> chroma, None) of a TFLite model's bytes, run by LiteRT: on its XNNPACK delegate unless the
    export found it wrong for this model (description["tflite_xnnpack"] false)."""
    from ai_edge_litert import interpreter  # noqa: PLC0415 - the [tflite] extra, needed only for .tflite models

    resolver = (interpreter.OpResolverType.AUTO if (description or {}).get("tflite_xnnpack", True)
                else interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    with native_logs.filtered():  # LiteRT's INFO line as its first call makes the CPU delegate
        runner = interpreter.Interpreter(model_content=data, experimental_op_resolver_type=resolver) \
            .get_signature_runner()
        inputs = runner.get_input_details()
        runner(**{name: np.zeros([1, *details["shape_signature"][1:]], np.float32)
                  for name, details in inputs.items()})
    return (lambda **inputs: next(iter(runner(**inputs).values()))), None


def runtime_chroma(model_format, data, description=None):
    """(inputs by name -> chroma, the embedded description or None) of a model file's bytes in its runtime, as
    `description` (the export's) says to run it."""
    if model_format == "onnx":
        return _onnx_chroma(data)
    return _tflite_chroma(data, description)


class PortableColorizer:
    """A loaded ONNX or TFLite export: `stages` (numpy), `chroma` (one runtime call per batch of canvases), and the
    export's `description`, `render_size` and `takes_hints`."""

    def __init__(self, predict_chroma, description):
        self._predict_chroma = predict_chroma
        self.description = description
        self.render_size = int(description["render_size"])
        self.takes_hints = bool(description.get("hints"))
        self.stages = numpy_stages.NumpyPhotoStages(self.render_size)

    @classmethod
    def load(cls, model_format, path, step=0, render_size=0):
        """The export in the model file `path`; `step` and `render_size` (0: any) must be the export's own."""
        if not storage.isfile(path):
            raise model_errors.InferenceError(f"--model={path}: no such {model_format} file")
        description = _description_beside(path) if model_format == "tflite" else None
        try:
            predict_chroma, embedded = runtime_chroma(model_format, storage.read_bytes(path), description)
        except ImportError:
            raise model_errors.InferenceError(f"--model={path}: {_RUNTIMES[model_format]} is not installed (pip "
                                              f"install '.[{model_format}]')") from None
        except Exception as e:  # noqa: BLE001 - the runtimes raise their own untyped errors for damaged files
            raise model_errors.DamagedModel(f"--model={path}: cannot be loaded, the {model_format} file is damaged "
                                            f"(export again): {' '.join(str(e).split())[:200]}") from None
        description = description or embedded or _description_beside(path)
        colorizer = cls(predict_chroma, description)
        if step and step != description["step"]:
            raise model_errors.InferenceError(f"--step={step}: {path} is an export of step {description['step']}")
        if render_size and render_size != colorizer.render_size:
            raise model_errors.InferenceError(f"--render_size={render_size}: {path} is an export fixed at "
                                              f"{colorizer.render_size} (export again with --render_size)")
        return colorizer

    def chroma(self, canvas, canvas_hints=None):
        """Canvases [n, R, R, 1] in [0, 1] (and their hints [n, R, R, 3]) -> a*, b* [n, R, R, 2]: one runtime call.
        A hints model without hints colorizes alone (no point, an all-zero mask)."""
        canvas = np.asarray(canvas, np.float32)
        if not self.takes_hints:
            if canvas_hints is not None:
                raise model_errors.InferenceError(f"{self.description['generator']} at step "
                                                  f"{self.description['step']} takes no colour hints (train with "
                                                  "--hints)")
            return self._predict_chroma(gray=canvas)
        if canvas_hints is None:
            canvas_hints = np.zeros((*canvas.shape[:3], 3), np.float32)
        return self._predict_chroma(gray=canvas, hints=np.asarray(canvas_hints, np.float32))

    def colorize(self, gray, dtype=np.float32, hints=None):
        """numpy gray [n, h, w, 1] in [0, 1] -> sRGB [n, h, w, 3] at full resolution, as `loading.Colorizer`'s
        (hints: (xy [n, k, 2], rgb [n, k, 3] in [0, 1], mask [n, k]))."""
        return self.stages.recombine(gray, self.chroma(*self.stages.canvas(gray, hints)), dtype)


def _description_beside(path):
    """The colorgan.json of the export folder holding `path`; InferenceError when it is not an export of ours."""
    beside = os.path.join(os.path.dirname(path), DESCRIPTION_FILENAME)
    try:
        return json.loads(storage.read_text(beside))
    except (OSError, ValueError):
        raise model_errors.InferenceError(f"--model={path}: not an export of ColorGAN (no readable {beside} beside "
                                          "it; export one with --format=onnx or --format=tflite)") from None
