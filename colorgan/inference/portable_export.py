"""The chroma network for runtimes without TensorFlow: ONNX (onnxruntime, OpenVINO) and TFLite (LiteRT, phones),
`export --format=onnx` / `--format=tflite`.

Only the network is converted: the colorize graph around it has ops neither format has (the antialiased resize,
`Case`, image codecs), and `portable_model` runs those stages in numpy. The network's contract is the SavedModel's
`chroma` signature: gray float32 [n, R, R, 1] in [0, 1] -> ab float32 [n, R, R, 2] in CIE units, the colour space's
input and output maths inside the graph; a hints generator's takes its canvas hints as a second input, as
`chroma_hints` does. ONNX is written at a pinned opset, so a newer converter cannot silently
emit operators older runtimes lack.
"""

import json
import logging

import numpy as np
import tensorflow as tf

from colorgan.inference import loading
from colorgan.inference import portable_model
from colorgan.modeling import hint_patches

ONNX_OPSET = 17  # onnxruntime >= 1.11, OpenVINO >= 2022.3
CONTRACT = "gray float32 [n,R,R,1] -> ab float32 [n,R,R,2]"
PROBE_TOLERANCE = 0.5  # CIE a*b* units, under a level of sRGB; onnxruntime and LiteRT agree with TensorFlow to ~0.03
HINTS_CONTRACT = "gray float32 [n,R,R,1], hints float32 [n,R,R,3] (a, b normalised; mask) -> ab float32 [n,R,R,2]"


def convert(model_format, generator, color_space, render_size, description):
    """The model file (bytes) of `generator`'s chroma at `render_size` in `model_format`; InferenceError naming the
    generator when it does not convert (or the format's extra is missing)."""
    predict_chroma = loading.chroma_predictor(generator, color_space)
    signature = [tf.TensorSpec([None, render_size, render_size, 1], tf.float32, name="gray")]
    if description.get("hints"):  # the chroma_hints signature's contract: canvas hints as a second input
        signature.append(tf.TensorSpec([None, render_size, render_size, hint_patches.CHANNELS], tf.float32,
                                       name="hints"))
    function = tf.function(lambda *inputs: {"ab": predict_chroma(*inputs)}, input_signature=signature,
                           autograph=False)
    converter_log = logging.getLogger("tf2onnx")
    level = converter_log.level
    converter_log.setLevel(logging.CRITICAL)  # its per-op error lines: the reason is reported below in one line
    try:
        model_file = _onnx(function, signature, description) if model_format == "onnx" else _tflite(function)
        difference = _probe_difference(function, model_format, model_file, signature, description)
        if model_format == "tflite" and not difference <= PROBE_TOLERANCE:
            # LiteRT's default CPU delegate, XNNPACK, gives NaN on some graphs (a hints generator's where no hint
            # reaches, which LiteRT's own kernels get right): such a model runs without it, as its description says.
            description["tflite_xnnpack"] = False
            difference = _probe_difference(function, model_format, model_file, signature, description)
        if not difference <= PROBE_TOLERANCE:
            raise ValueError("the converted model gives NaN where the network gives numbers, on a probe batch"
                             if np.isnan(difference) else f"the converted model differs from the network by "
                             f"{difference:.3g} CIE units on a probe batch")
        return model_file
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


def _probe_difference(function, model_format, model_file, signature, description):
    """The largest difference (CIE a*b* units, NaN if any) between the converted model, run in its runtime as
    `description` says, and the network, on a probe batch: a converter or runtime may swap an op for one that
    differs, and such a model must not be written."""
    predict_chroma, _ = portable_model.runtime_chroma(model_format, model_file, description)
    side = signature[0].shape[1]
    probe = {"gray": np.linspace(0, 1, 2 * side * side, dtype=np.float32).reshape(2, side, side, 1)}
    if len(signature) > 1:  # the first canvas without any hint, the second with one patch of colour
        hints = np.zeros((2, side, side, hint_patches.CHANNELS), np.float32)
        hints[1, : side // 4, : side // 4] = (0.5, -0.3, 1.0)
        probe["hints"] = hints
    expected = function(*probe.values())["ab"].numpy()
    difference = np.abs(predict_chroma(**probe) - expected)
    return float("nan") if np.isnan(difference).any() else float(difference.max())


def _model_name(description):
    """"unet", or "unet (--encoder=convnext_tiny)" for a generator on a pretrained backbone."""
    encoder = [flag for flag in description["training_flags"]
               if flag.startswith("--encoder=") and not flag.endswith("=pix2pix")]
    return f"{description['generator']} ({encoder[0]})" if encoder else description["generator"]
