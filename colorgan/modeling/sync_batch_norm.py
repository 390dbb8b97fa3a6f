"""Synchronised batch normalization that traces in time linear in the model's depth.

Keras's BatchNormalization(synchronized=True) sums its moments over replicas with ReplicaContext.all_reduce, which
wraps the sum in tf.custom_gradient. In a graph, that decorator walks back from the sum to find the variables it
reads; under MirroredStrategy the sum depends on every replica's ops, so the walk covers all that the other replicas
built before it, forward and backward, and tracing grows with the square of the number of layers (ResNet50V2 on two
CPU replicas: minutes). Here the all-reduce takes stop_gradient'ed values, where the walk ends, and the gradient (the
all-sum of the sum's gradient, as TF's own) comes from a custom_gradient whose inputs are those same values. The
numbers are Keras's, forward and backward: the same sums of the same terms.
"""

import keras
import tensorflow as tf


def cross_replica_sum(values):
    """[tensor] -> their sums over the replicas in sync (the values themselves on one replica); the gradient, to
    any order, is the all-sum of the sums' gradients."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return list(values)

    @tf.custom_gradient
    def all_sum(*xs):
        sums = context.all_reduce(tf.distribute.ReduceOp.SUM, [tf.stop_gradient(x) for x in xs])

        def grad(*dys):
            return cross_replica_sum([tf.zeros_like(x) if dy is None else dy for x, dy in zip(xs, dys)])

        return sums, grad

    return list(all_sum(*values))


def moments(x, axes):
    """Keras's synchronised moments (keras.src.backend.tensorflow.nn._compute_moments_sync) over `axes`, squeezed:
    the mean and variance of the global batch, E[x^2] - E[x]^2 from all-summed sums; tf.nn.moments in cross-replica
    context, as Keras. (The layer has cast half-precision inputs to float32 before this, as Keras's does.)"""
    if not tf.distribute.get_replica_context():
        return tf.nn.moments(x, axes)
    local = [tf.reduce_sum(x, axis=axes, keepdims=True), tf.reduce_sum(tf.square(x), axis=axes, keepdims=True),
             tf.reduce_sum(tf.ones_like(x, name="count"), axis=axes, keepdims=True)]
    total, squared_total, count = cross_replica_sum(local)
    mean = tf.math.divide_no_nan(total, count)
    variance = tf.maximum(tf.math.divide_no_nan(squared_total, count) - tf.square(mean), 0.0)
    return tf.squeeze(mean, axes), tf.squeeze(variance, axes)


@keras.saving.register_keras_serializable(package="colorgan")
class SyncBatchNormalization(keras.layers.BatchNormalization):
    """Keras's BatchNormalization whose synchronised moments come from `moments`. Only the trainer's models use it:
    saved and exported models keep Keras's layer (the same weights and numbers)."""

    def _moments(self, inputs, mask):
        if not self.synchronized or mask is not None:
            return super()._moments(inputs, mask)
        return moments(inputs, self._reduction_axes)
