"""Tests of colorgan.storage: one reading of "the disk is full" for every tool."""

import errno

import pytest
import tensorflow as tf

from colorgan import storage


@pytest.mark.parametrize("error, full", [
    (OSError(errno.ENOSPC, "No space left on device"), True),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), True),
    (OSError(errno.EACCES, "Permission denied"), False),
    (tf.errors.ResourceExhaustedError(None, None, "/run/ckpt-4.data-00000-of-00001.tempstate; No space left on device"),
     True),
    (tf.errors.UnknownError(None, None, "Failed to flush: No space left on device"), True),
    # What TensorFlow raises when memory runs out: not a full disk, whatever its class says.
    (tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[64,256,256,64]"), False),
    (tf.errors.InvalidArgumentError(None, None, "Invalid JPEG data"), False),
    (ValueError("No space left on device"), False),
])
def test_is_disk_full_reads_the_os_error_not_the_class(error, full):
    assert storage.is_disk_full(error) is full
