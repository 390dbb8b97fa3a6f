"""The colorizer a --model path needs: an ONNX export (`onnx_model`) runs in onnxruntime and numpy, and never loads
TensorFlow; a training run or a SavedModel export loads through TensorFlow (`loading`), imported only then."""

from colorgan.inference import onnx_model


def load(path, step=0, render_size=0):
    """An `onnx_model.OnnxColorizer` or a `loading.Colorizer`; model_errors.InferenceError (or DamagedModel) when
    `path` cannot colorize as asked."""
    onnx_file = onnx_model.onnx_path(path)
    if onnx_file:
        return onnx_model.OnnxColorizer.load(onnx_file, step, render_size)
    from colorgan.inference import loading  # noqa: PLC0415 - TensorFlow loads only for TensorFlow models

    return loading.Colorizer.load(path, step, render_size)
