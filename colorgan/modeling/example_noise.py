"""The training step's random draws (dropout masks, noisy labels, colour hints) as pure functions of where they are
drawn.

A draw depends only on the run's --seed, the data position (`batches_consumed`: a skipped non-finite batch still
advances it, while the step number repeats), a name telling independent draws apart, and the example's index in the
global batch. Nothing is stateful, so a resumed run draws exactly what an uninterrupted one would, and 1 or N
replicas draw the same numbers for every example: each replica draws a tensor shaped like the global batch and
keeps its own rows, the rows the input pipeline gave it (replica r holds examples r*B .. r*B+B-1).
"""

import zlib

import tensorflow as tf

from colorgan.modeling import step_context

_current = step_context.StepValue()


class ExampleNoise:
    """Uniform draws for one replica's rows of the global batch at one data position."""

    def __init__(self, step_seed, first_example, global_batch):
        self.step_seed, self.first_example, self.global_batch = step_seed, first_example, global_batch

    def uniform(self, name, shape, minval=0.0, maxval=1.0):
        """float32 uniform in [minval, maxval) of `shape` ([this replica's batch, ...]); `name` selects the stream."""
        return self._draw(tf.random.stateless_uniform, name, shape, minval=minval, maxval=maxval)

    def normal(self, name, shape):
        """float32 standard normal of `shape` ([this replica's batch, ...]); `name` selects the stream."""
        return self._draw(tf.random.stateless_normal, name, shape)

    def _draw(self, distribution, name, shape, **parameters):
        """This replica's rows of a draw shaped like the global batch."""
        seed = tf.random.experimental.stateless_fold_in(self.step_seed, zlib.crc32(name.encode()) & 0x7FFFFFFF)
        shape = tf.convert_to_tensor(shape, tf.int32)
        values = distribution(tf.concat([[self.global_batch], shape[1:]], axis=0), seed, dtype=tf.float32,
                              **parameters)
        return values[self.first_example:self.first_example + shape[0]]


def step_seed(seed, batches_consumed):
    """The seed of every draw at one data position."""
    return tf.stack([tf.constant(seed, tf.int64), tf.cast(batches_consumed, tf.int64)])


def example_noise(seed, first_example, global_batch):
    """A context giving an ExampleNoise, the one `current()` returns while the training step's models are traced."""
    return _current.set(ExampleNoise(seed, first_example, global_batch))


def current():
    """The ExampleNoise of the step being traced in this thread, or None outside one."""
    return _current.get()
