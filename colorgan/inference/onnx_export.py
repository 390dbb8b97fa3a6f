"""The chroma network as ONNX (`export --format=onnx`), for runtimes without TensorFlow (onnxruntime, OpenVINO).

Only the network is converted: the colorize graph around it has ops ONNX lacks (the antialiased resize, `Case`, image
codecs), and `onnx_model` runs those stages in numpy. The network's contract is the SavedModel's `chroma`
signature: gray float32 [n, R, R, 1] in [0, 1] -> ab float32 [n, R, R, 2] in CIE units, the colour space's input
and output maths inside the graph. tf2onnx converts it at a pinned opset, so a newer converter cannot silently
emit operators older runtimes lack.
"""

import json
import logging

import tensorflow as tf

from colorgan.inference import loading
from colorgan.inference import onnx_model

OPSET = 17  # onnxruntime >= 1.11, OpenVINO >= 2022.3
SIGNATURES = {onnx_model.ONNX_FILENAME: "gray float32 [n,R,R,1] -> ab float32 [n,R,R,2]"}


def convert(generator, color_space, render_size, description):
    """The ONNX model (bytes) of `generator`'s chroma at `render_size`, `description` in its metadata;
    InferenceError naming the generator when it does not convert (or the [onnx] extra is missing)."""
    try:
        import onnx  # noqa: PLC0415 - the [onnx] extra
        import tf2onnx  # noqa: PLC0415 - the [onnx] extra
    except ImportError:
        raise loading.InferenceError("--format=onnx: tf2onnx is not installed (pip install '.[onnx]')") \
            from None
    if description.get("hints"):
        raise loading.InferenceError(f"--format=onnx: {description['generator']} takes colour hints, which the ONNX "
                                     "runner does not place yet; export a SavedModel (--format=saved_model)")
    predict_chroma = loading.chroma_predictor(generator, color_space)
    signature = [tf.TensorSpec([None, render_size, render_size, 1], tf.float32, name="gray")]
    function = tf.function(lambda gray: {"ab": predict_chroma(gray)}, input_signature=signature, autograph=False)
    converter_log = logging.getLogger("tf2onnx")
    level = converter_log.level
    converter_log.setLevel(logging.CRITICAL)  # its per-op error lines: the reason is reported below in one line
    try:
        model, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=OPSET)
        # tf2onnx leaves the TensorFlow ops it has no handler for in the graph, unconverted, and returns.
        missing = sorted({node.op_type for node in model.graph.node if not onnx.defs.has(node.op_type, node.domain)})
        if missing:
            raise ValueError(f"TensorFlow ops with no ONNX form: {', '.join(missing)}")
        onnx.checker.check_model(model)
    except Exception as e:  # noqa: BLE001 - tf2onnx and the checker raise bare exceptions
        reason = " ".join(str(e).split())[:200] or type(e).__name__
        raise loading.InferenceError(f"--format=onnx: {_model_name(description)} does not convert to ONNX "
                                     f"({reason}); export a SavedModel (--format=saved_model)") from None
    finally:
        converter_log.setLevel(level)
    onnx.helper.set_model_props(model, {onnx_model.METADATA_KEY: json.dumps(description, sort_keys=True)})
    return model.SerializeToString()


def _model_name(description):
    """"unet", or "unet (--encoder=convnext_tiny)" for a generator on a pretrained backbone."""
    encoder = [flag for flag in description["training_flags"]
               if flag.startswith("--encoder=") and not flag.endswith("=pix2pix")]
    return f"{description['generator']} ({encoder[0]})" if encoder else description["generator"]
