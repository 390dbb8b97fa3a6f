"""Tests of colorgan.core.native_logs: while TensorFlow loads, fd 2 drops native log lines below
TF_CPP_MIN_LOG_LEVEL and passes every other byte (tracebacks, the tool's own lines) through in order."""

import subprocess
import sys

import pytest

from colorgan.core import native_logs

# What a process writes to fd 2 itself (as TensorFlow's C++ does), one line of each kind.
WRITTEN = [
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
    b"I0000 00:00:1796424384.062296   23484 port.cc:153] oneDNN custom operations are on.\n",
    b"W1204 22:46:28.056549 140066720877440 cuda_dnn.cc:8] no GPU\n",
    b"E0000 00:00:1796424385.194167   23484 cuda_platform.cc:52] failed call to cuInit\n",
    b"F0000 00:00:1796424385.194167   23484 check.cc:1] Check failed\n",
    b"Traceback (most recent call last):\n",
    b"I0000 is not a log line\n",
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n",  # LiteRT's minimal logger
    b"WARNING:root:Python's logging, not a native line\n",
    b"no newline at the end",
]
CHILD = r'''
import os, sys
from colorgan.core import native_logs
with native_logs.filtered(int(sys.argv[1])):
    for line in {written!r}:
        os.write(2, line)
    print("python's own stderr", file=sys.stderr)
print("after the block", file=sys.stderr)
'''


@pytest.mark.parametrize("level,kept", [(0, range(10)), (1, [2, 3, 4, 5, 6, 8, 9]), (2, [3, 4, 5, 6, 8, 9]),
                                        (3, [4, 5, 6, 8, 9])])
def test_lines_below_the_level_are_dropped_and_everything_else_passes_in_order(level, kept):
    result = subprocess.run([sys.executable, "-c", CHILD.format(written=WRITTEN), str(level)], capture_output=True,
                            timeout=60, check=True)
    assert result.stderr == b"".join(WRITTEN[index] for index in kept) + b"python's own stderr\nafter the block\n"


def test_the_level_is_read_as_tensorflow_reads_it(monkeypatch):
    for value, level in (("2", 2), ("", 0), ("x", 0), ("3", 3)):
        monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", value)
        assert native_logs.min_level() == level
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    assert native_logs.min_level() == 0
