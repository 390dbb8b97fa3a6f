"""The colorizer a --model path needs: an ONNX or TFLite export (`portable_model`) runs in onnxruntime or LiteRT and
numpy, and never loads TensorFlow; a training run or a SavedModel export loads through TensorFlow (`loading`),
imported only then."""

from colorgan.core import native_logs
from colorgan.inference import portable_model


def load(path, step=0, render_size=0):
    """A `portable_model.PortableColorizer` or a `loading.Colorizer`; model_errors.InferenceError (or DamagedModel)
    when `path` cannot colorize as asked."""
    portable = portable_model.portable_path(path)
    if portable:
        return portable_model.PortableColorizer.load(*portable, step, render_size)
    with native_logs.filtered():  # TensorFlow's start-up lines, held to TF_CPP_MIN_LOG_LEVEL
        from colorgan.inference import loading  # noqa: PLC0415 - TensorFlow loads only for TensorFlow models

    return loading.Colorizer.load(path, step, render_size)
