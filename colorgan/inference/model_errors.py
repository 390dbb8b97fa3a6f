"""Why a --model cannot colorize, without TensorFlow: shared by the TensorFlow loaders (`loading`) and the ONNX one
(`portable_model`), so every tool maps them to the same exit statuses."""


class InferenceError(ValueError):
    """A run or export that cannot be loaded as asked; the message is one line naming the path or flag. As such, a
    usage error (exit 2): the flags name nothing loadable."""


class DamagedModel(InferenceError):
    """A run or export that is there but cannot be read (damaged files, a checkpoint not matching its run's
    flags): a failure at run time (exit 1), which flags cannot fix."""
