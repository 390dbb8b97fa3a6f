"""The chroma network for runtimes without TensorFlow: ONNX (onnxruntime, OpenVINO) and TFLite (LiteRT, phones),
`export --format=onnx` / `--format=tflite`.

Only the network is converted: the colorize graph around it has ops neither format has (the antialiased resize,
`Case`, image codecs), and `portable_model` runs those stages in numpy. The network's contract is the SavedModel's
`chroma` signature: gray float32 [n, R, R, 1] in [0, 1] -> ab float32 [n, R, R, 2] in CIE units, the colour space's
input and output maths inside the graph. ONNX is written at a pinned opset, so a newer converter cannot silently
emit operators older runtimes lack.
"""

import json
import logging

import tensorflow as tf

from colorgan.inference import loading
from colorgan.inference import portable_model

FORMATS = tuple(portable_model.MODEL_FILES)
ONNX_OPSET = 17  # onnxruntime >= 1.11, OpenVINO >= 2022.3
CONTRACT = "gray float32 [n,R,R,1] -> ab float32 [n,R,R,2]"


def convert(model_format, generator, color_space, render_size, description):
    """The model file (bytes) of `generator`'s chroma at `render_size` in `model_format`; InferenceError naming the
    generator when it does not convert (or the format's extra is missing)."""
    if description.get("hints"):
        raise loading.InferenceError(f"--format={model_format}: {description['generator']} takes colour hints, which "
                                     "the runner without TensorFlow does not place yet; export a SavedModel "
                                     "(--format=saved_model)")
    predict_chroma = loading.chroma_predictor(generator, color_space)
    signature = [tf.TensorSpec([None, render_size, render_size, 1], tf.float32, name="gray")]
    function = tf.function(lambda gray: {"ab": predict_chroma(gray)}, input_signature=signature, autograph=False)
    converter_log = logging.getLogger("tf2onnx")
    level = converter_log.level
    converter_log.setLevel(logging.CRITICAL)  # its per-op error lines: the reason is reported below in one line
    try:
        if model_format == "onnx":
            return _onnx(function, signature, description)
        return _tflite(function)
    except ImportError as e:
        raise loading.InferenceError(f"--format={model_format}: {e.name} is not installed (pip install "
                                     f"'.[{model_format}]')") from None
    except Exception as e:  # noqa: BLE001 - the converters raise bare exceptions for ops they cannot take
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise loading.InferenceError(f"--format={model_format}: {_model_name(description)} does not convert "
                                     f"({reason}); export a SavedModel (--format=saved_model)") from None
    finally:
        converter_log.setLevel(level)


def _onnx(function, signature, description):
    import onnx  # noqa: PLC0415 - the [onnx] extra
    import tf2onnx  # noqa: PLC0415 - the [onnx] extra

    model, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=ONNX_OPSET)
    # tf2onnx leaves the TensorFlow ops it has no handler for in the graph, unconverted, and returns.
    missing = sorted({node.op_type for node in model.graph.node if not onnx.defs.has(node.op_type, node.domain)})
    if missing:
        raise ValueError(f"TensorFlow ops with no ONNX form: {', '.join(missing)}")
    onnx.checker.check_model(model)
    onnx.helper.set_model_props(model, {portable_model.METADATA_KEY: json.dumps(description, sort_keys=True)})
    return model.SerializeToString()


def _tflite(function):
    concrete = function.get_concrete_function()
    holder = tf.Module()  # what tracks the weights the function reads, for the converter to fold them in
    holder.weights = list(concrete.variables)
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], holder).convert()


def _model_name(description):
    """"unet", or "unet (--encoder=convnext_tiny)" for a generator on a pretrained backbone."""
    encoder = [flag for flag in description["training_flags"]
               if flag.startswith("--encoder=") and not flag.endswith("=pix2pix")]
    return f"{description['generator']} ({encoder[0]})" if encoder else description["generator"]
