"""TensorFlow's (and LiteRT's) native start-up lines, held to the level TensorFlow was asked for.

TF 2.21's C++ code logs (oneDNN, CUDA stubs) before absl::InitializeLog runs, and those early lines ignore
TF_CPP_MIN_LOG_LEVEL (tensorflow#102212): a tool's first lines were INFO noise ahead of its own. While TensorFlow
loads, `filtered` passes the process's fd 2 through a pipe that drops glog-format lines below TF_CPP_MIN_LOG_LEVEL
(0 INFO, 1 WARNING, 2 ERROR, 3 FATAL) and absl's notice about them, and passes every other byte through, so a real
error or traceback still shows. The block must not start processes that outlive it (they would hold the pipe open).
"""

import contextlib
import os
import re
import sys
import threading

# "I1204 22:46:28.056549 140066720877440 file.cc:156] message": severity, date, time, thread, source. Before
# absl::InitializeLog the date is 0000 and the time 00:00:<seconds since the epoch>.
_NATIVE_LINE = re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]\s]+:\d+\] ")
# TensorFlow Lite's (LiteRT's) minimal logger: "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
_LITE_LINE = re.compile(rb"^(INFO|WARNING|ERROR): ")
_SEVERITIES = b"IWEF"
_EARLY_LOG_NOTICE = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"


def min_level():
    """TF_CPP_MIN_LOG_LEVEL as TensorFlow reads it (0 when unset or not a number)."""
    level = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")
    return int(level) if level.isdigit() else 0


def keeps(line, level):
    """Whether a line written to stderr while TensorFlow loads is shown at `level`."""
    if line == _EARLY_LOG_NOTICE:
        return level == 0
    native = _NATIVE_LINE.match(line) or _LITE_LINE.match(line)
    return native is None or _SEVERITIES.index(native.group(1)[:1]) >= level


@contextlib.contextmanager
def filtered(level=None):
    """Runs the block with fd 2 filtered by `keeps` (level: TF_CPP_MIN_LOG_LEVEL's by default)."""
    level = min_level() if level is None else level
    if level == 0:
        yield
        return
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    shown = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)

    def forward():
        with os.fdopen(read_end, "rb") as pipe:
            for line in pipe:
                while line and keeps(line, level):
                    line = line[os.write(shown, line):]

    forwarder = threading.Thread(target=forward, name="native-log-filter", daemon=True)
    forwarder.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(shown, 2)  # closes the pipe's last write end: the forwarder reads to its end and stops
        forwarder.join()
        os.close(shown)
