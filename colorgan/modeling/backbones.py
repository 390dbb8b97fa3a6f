"""Pretrained encoders for the U-Net: Keras Applications backbones, fed L* the way each expects, with their features
at every scale for the decoder's skips.

Why these two (BUILD.md, "Pretrained encoders"): ResNet50V2 is the ResNet-50 class DeOldify's and most colorization
U-Nets build on (Keras Applications has no ResNet-18/34), and its pre-activation design takes [-1, 1] input, which L*
already is; ConvNeXt-Tiny is what DDColor builds on, with LayerNorm and no drop-path at rate 0, so nothing in it
depends on the batch or on a random draw. EfficientNetV2 is left out: it hard-codes a drop-connect rate, whose draws
would break exact resume and 1-vs-N-replica equality.

What the project's guarantees need from a backbone:
- batch normalization must be the synchronised kind (statistics over the global batch), as the U-Net's own is;
- while the encoder is frozen (--freeze_encoder_steps), its batch normalization uses and keeps its moving statistics.
  `trainable` cannot be toggled inside a run (the compiled step captured the variables, Keras 3's optimizer refuses
  others, and batch normalization changes mode with it), so the trainer's models get FreezableBatchNormalization,
  which picks the moving or the batch statistics by a flag the training step sets (`frozen`), without a cond.
"""

import dataclasses
import warnings
from typing import Callable

import keras
import tensorflow as tf

from colorgan.modeling import step_context
from colorgan.modeling import sync_batch_norm

STRIDE = 32  # every backbone here halves its input five times: image sides must be multiples of this
STRIDES = (2, 4, 8, 16)  # the decoder's skips below the encoder's output, at 1/stride of the image
WEIGHTS = ("imagenet", "none")  # besides a path to a weights file


@dataclasses.dataclass(frozen=True)
class Backbone:
    """application: the keras.applications constructor; input_scale, input_offset: L* in [-1, 1] -> the input
    range it expects (x * scale + offset, on L* copied to three channels); skips: the layer whose output is the
    feature at each of STRIDES (None: it has none there; the decoder makes its own from the input); batch_norm: it
    has batch normalization."""

    application: Callable[..., keras.Model]
    input_scale: float
    input_offset: float
    skips: tuple
    batch_norm: bool


BACKBONES = {
    # keras.applications.resnet_v2.preprocess_input: x / 127.5 - 1, i.e. [-1, 1].
    "resnet50v2": Backbone(keras.applications.ResNet50V2, 1.0, 0.0,
                           ("conv1_conv", "conv2_block3_1_relu", "conv3_block4_1_relu", "conv4_block6_1_relu"),
                           batch_norm=True),
    # ConvNeXt normalises 0..255 input itself (its first layer); its stem is a 4x4 stride-4 convolution.
    "convnext_tiny": Backbone(keras.applications.ConvNeXtTiny, 127.5, 127.5,
                              (None, "convnext_tiny_stage_0_block_2_identity", "convnext_tiny_stage_1_block_2_identity",
                               "convnext_tiny_stage_2_block_8_identity"), batch_norm=False),
}

_frozen = step_context.StepValue()


class WeightsError(ValueError):
    """An encoder weights file that cannot be read or does not fit the backbone; the message names the file."""


def check_size(name, image_size):
    """ValueError in one line unless `image_size` suits backbone `name`."""
    if image_size % STRIDE:
        raise ValueError(f"encoder {name}: image size {image_size} is not a multiple of {STRIDE} (the backbone "
                         f"halves it five times)")


def encoder(name, image_size, *, for_training=False):
    """The backbone `name` as a model "encoder": an image [b, s, s, 3] in its own input range -> its features at
    STRIDES where it has them, then at STRIDE; random weights (`load_weights` sets them). for_training: its batch
    normalization is FreezableBatchNormalization (others get Keras's own, which loads without colorgan); either way
    synchronised."""
    backbone = BACKBONES[name]
    check_size(name, image_size)
    application = backbone.application(include_top=False, weights=None, input_shape=(image_size, image_size, 3))
    application = _with_synchronised_batch_norm(application, for_training)
    features = [application.get_layer(layer).output for layer in backbone.skips if layer]
    return keras.Model(application.input, [*features, application.output], name="encoder")


def _with_synchronised_batch_norm(application, for_training):
    if not any(isinstance(layer, keras.layers.BatchNormalization) for layer in application.layers):
        return application
    kind = FreezableBatchNormalization if for_training else keras.layers.BatchNormalization

    def clone(layer):
        if isinstance(layer, keras.layers.BatchNormalization):
            return kind.from_config({**layer.get_config(), "synchronized": True})
        return layer.__class__.from_config(layer.get_config())

    return keras.models.clone_model(application, clone_function=clone)


def load_weights(encoder_model, name, weights):
    """Sets `encoder_model`'s weights (built by `encoder`) from "imagenet" (Keras's own download and cache) or a
    weights file (what Keras caches, or a model's save_weights of the same backbone); WeightsError in one line when
    the download fails or the file cannot be read or does not fit."""
    backbone = BACKBONES[name]
    size = encoder_model.input_shape[1]
    try:
        with warnings.catch_warnings():  # Keras warns per layer it cannot fill, then raises: the error says it
            warnings.simplefilter("ignore")
            application = backbone.application(include_top=False, weights=weights, input_shape=(size, size, 3))
    except Exception as e:  # noqa: BLE001 (Keras raises a bare Exception for a failed download)
        reason = " ".join(str(e).split())[:200]
        if weights == "imagenet":
            raise WeightsError(f"--encoder_weights=imagenet: Keras could not fetch the {name} weights ({reason}); "
                               f"without internet, pass a weights file") from None
        raise WeightsError(f"--encoder_weights={weights}: does not hold {name} weights without the top "
                           f"(include_top=False): {reason}") from None
    source = application.weights
    if [tuple(w.shape) for w in source] != [tuple(w.shape) for w in encoder_model.weights]:
        raise WeightsError(f"--encoder_weights={weights}: its layers do not match the {name} encoder")
    encoder_model.set_weights([w.numpy() for w in source])


def frozen(flag):
    """A context in which, while the training step's models are traced, FreezableBatchNormalization layers use their
    moving statistics (and keep them) where the boolean tensor `flag` is true."""
    return _frozen.set(flag)


@keras.saving.register_keras_serializable(package="colorgan")
class FreezableBatchNormalization(sync_batch_norm.SyncBatchNormalization):
    """The trainer's synchronised batch norm (`sync_batch_norm`) whose training mode, inside a training step under
    `frozen(flag)`, uses and keeps the moving statistics where `flag` is true: the numbers of inference mode, chosen
    by tf.where, so the compiled step holds one graph and the synchronised moments are all-reduced on every step by
    every replica alike. Only the trainer's models use it: saved and exported models keep Keras's layer (the same
    weights)."""

    def call(self, inputs, training=None, mask=None):
        flag = _frozen.get()
        if flag is None or not training or mask is not None or self.renorm:
            return super().call(inputs, training=training, mask=mask)
        inputs = tf.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
        moving_mean = tf.cast(self.moving_mean, inputs.dtype)
        moving_variance = tf.cast(self.moving_variance, inputs.dtype)
        batch_mean, batch_variance = self._moments(inputs, mask)
        mean = tf.where(flag, moving_mean, batch_mean)
        variance = tf.where(flag, moving_variance, batch_variance)
        # Frozen: the moving statistics stay exactly as they were (not m * x + (1 - m) * x, which rounds).
        self.moving_mean.assign(tf.where(flag, self.moving_mean, tf.cast(
            moving_mean * self.momentum + batch_mean * (1.0 - self.momentum), self.moving_mean.dtype)))
        self.moving_variance.assign(tf.where(flag, self.moving_variance, tf.cast(
            moving_variance * self.momentum + batch_variance * (1.0 - self.momentum), self.moving_variance.dtype)))
        outputs = keras.ops.batch_normalization(
            inputs, mean, variance, axis=self.axis, epsilon=self.epsilon,
            offset=tf.cast(self.beta, inputs.dtype) if self.center else None,
            scale=tf.cast(self.gamma, inputs.dtype) if self.scale else None)
        return tf.cast(outputs, self.compute_dtype)
