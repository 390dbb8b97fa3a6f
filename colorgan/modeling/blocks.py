"""Building blocks of the pix2pix U-Net and PatchGAN (`models`) and of the U-Net on a pretrained encoder: the
pix2pix encoder and decoder blocks, and the trainer's variants of LeakyReLU and dropout."""

import keras
import tensorflow as tf

from colorgan.modeling import example_noise
from colorgan.modeling import sync_batch_norm

LEAKY_SLOPE = 0.2  # pix2pix's LeakyReLU slope


def initializer():
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def normalization(norm, name, for_training=False):
    """for_training: the trainer's layer (`sync_batch_norm`, which traces faster); others get Keras's own."""
    if norm == "batch":
        # Statistics over the global batch, all-reduced across replicas: per-replica statistics would make one
        # flagfile train another model on each replica count (8 GPUs at batch 32 would see 4 examples each).
        kind = sync_batch_norm.SyncBatchNormalization if for_training else keras.layers.BatchNormalization
        return kind(synchronized=True, name=name)
    return keras.layers.GroupNormalization(groups=-1, name=name)  # One group per channel: instance norm.


@keras.saving.register_keras_serializable(package="colorgan")
class TrainingLeakyReLU(keras.layers.LeakyReLU):
    """Keras's LeakyReLU whose gradient reads the activation's output, not its input: the same numbers (with a
    positive slope, y > 0 exactly where x > 0), but the backward pass no longer keeps the pre-activation, so
    Grappler can fuse Conv2D + BiasAdd + LeakyRelu. With Keras's gradient, TF 2.21's oneDNN remapper fuses
    _FusedConv2D + LeakyRelu anyway when the activation has no control edges (the innermost U-Net block and
    PatchGAN's last block when they have a bias) and fails ("remapper failed: INVALID_ARGUMENT: Mutation::Apply
    error: fanout '...LeakyReluGrad' exist for missing node '...BiasAdd'"). Only the trainer's models use it:
    saved and exported models keep Keras's LeakyReLU (no weights either way, so checkpoints map)."""

    def call(self, inputs):
        slope = self.negative_slope

        @tf.custom_gradient
        def leaky_relu(x):
            y = tf.nn.leaky_relu(x, alpha=slope)
            return y, lambda dy: tf.raw_ops.LeakyReluGrad(gradients=dy, features=y, alpha=slope)

        return leaky_relu(inputs)


def down_block(x, filters, norm, name, activation_layer=keras.layers.LeakyReLU, for_training=False):
    """4x4 stride-2 convolution, normalization, LeakyReLU(0.2): the pix2pix encoder block (Ck / C-k)."""
    side = -(-x.shape[1] // 2)
    # Instance norm of a 1x1 activation is its beta whatever the input: it would cut the bottleneck off.
    normalized = norm == "batch" or (norm == "instance" and side > 1)
    x = keras.layers.Conv2D(filters, 4, strides=2, padding="same", use_bias=not normalized,
                            kernel_initializer=initializer(), name=f"{name}_conv")(x)
    if normalized:
        x = normalization(norm, f"{name}_norm", for_training)(x)
    return activation_layer(negative_slope=LEAKY_SLOPE, name=f"{name}_act")(x)


@keras.saving.register_keras_serializable(package="colorgan")
class ExampleDropout(keras.layers.Dropout):
    """Dropout whose mask, in the training step, comes from `example_noise.current()`: a function of (seed, data
    position, example index in the global batch), so resume and replica count leave it unchanged. Outside a training
    step (a model called on its own) it is Keras's Dropout. Only the trainer's models use it: saved and exported models
    keep Keras's Dropout (the same op positions, so checkpoints map), and load without colorgan."""

    def call(self, inputs, training=False):
        draws = example_noise.current()
        if not training or not self.rate or draws is None:
            return super().call(inputs, training=training)
        keep = draws.uniform(self.name, tf.shape(inputs)) >= self.rate
        return tf.where(keep, inputs / (1.0 - self.rate), tf.zeros_like(inputs))


def up_block(x, filters, norm, dropout_rate, dropout_layer, name, for_training=False):
    """4x4 stride-2 transposed convolution, normalization, optional dropout (pix2pix's noise), ReLU."""
    x = keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=norm == "none",
                                     kernel_initializer=initializer(), name=f"{name}_deconv")(x)
    if norm != "none":
        x = normalization(norm, f"{name}_norm", for_training)(x)
    if dropout_rate:
        x = dropout_layer(dropout_rate, name=f"{name}_dropout")(x)
    return keras.layers.ReLU(name=f"{name}_act")(x)
