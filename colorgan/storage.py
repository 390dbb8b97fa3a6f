"""What the file system tells us, read the same way by every tool (data prep, training)."""

import errno

import tensorflow as tf

_DISK_FULL_MESSAGES = ("No space left on device", "Disk quota exceeded")


def is_disk_full(error):
    """Whether `error` means the file system is full: ENOSPC or EDQUOT from Python, or TensorFlow's report of them
    (ResourceExhaustedError or UnknownError carrying the OS message; an out-of-memory ResourceExhaustedError is not
    a full disk)."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(error, tf.errors.OpError):
        return any(message in str(error) for message in _DISK_FULL_MESSAGES)
    return False
