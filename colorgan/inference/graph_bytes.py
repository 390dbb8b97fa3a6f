"""Reading encoded image bytes in TensorFlow graph ops, so an exported SavedModel parses headers with TensorFlow
alone: no py_function, no Python-side parsing. Every read clamps its indexes into the data and reads zeros past the
end, so malformed or truncated input can make a check fail, never an out-of-bounds read."""

import tensorflow as tf


def padded(image_bytes):
    """(uint8 data with one padding zero at its end, the real length as int64): what `uint` reads."""
    data = tf.pad(tf.io.decode_raw(tf.convert_to_tensor(image_bytes, tf.string), tf.uint8), [[0, 1]])
    return data, tf.size(data, tf.int64) - 1


def uint(data, pos, width, little=False):
    """Unsigned `width`-byte integers at int64 positions `pos` (any shape); bytes past the end read as 0.

    `data` ends with one padding zero (`padded`), so clamping indexes into it is both in range and zero past the real
    end.
    """
    index = tf.expand_dims(tf.convert_to_tensor(pos, tf.int64), -1) + tf.range(width, dtype=tf.int64)
    raw = tf.cast(tf.gather(data, tf.clip_by_value(index, 0, tf.size(data, tf.int64) - 1)), tf.int64)
    powers = tf.constant([256**i for i in range(width)], tf.int64)
    return tf.reduce_sum(raw * tf.where(little, powers, tf.reverse(powers, [0])), -1)


def matches(data, pos, expected):
    """Whether the bytes at `pos` are `expected`; callers bound the length, since data reads as zeros past its end."""
    return tf.reduce_all(tf.equal(uint(data, pos + tf.range(len(expected), dtype=tf.int64), 1),
                                  tf.constant(list(expected), tf.int64)))


def fourcc(code):
    """A four-byte code as the big-endian integer `uint(data, pos, 4)` reads."""
    return int.from_bytes(code, "big")
