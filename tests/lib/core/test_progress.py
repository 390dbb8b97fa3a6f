"""Progress as people see it: a tqdm bar on a terminal, rate/ETA lines in a log. The tools are run under a real
pseudo-terminal (their stderr a pty) and with stderr a pipe."""

import fcntl
import io
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time

import pytest
import run_dirs
from conftest import REPO_ROOT
from PIL import Image

from colorgan.core import progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_format_duration():
    assert progress.format_duration(3725.9) == "1:02:05"
    assert progress.format_duration(float("inf")) == "?"


def test_on_a_terminal_a_bar_counts_and_notes_go_above_it():
    stream, logged = _Terminal(), []
    with progress.Progress("tool", 4, "photo", logged.append, done=1, stream=stream) as bar:
        bar.update(1, lambda done, rate, eta: "never logged")
        bar.note("tool: skipped x.jpg: truncated")
        bar.update(2)
    text = stream.getvalue()
    assert logged == []
    assert "\r" in text and "tool: skipped x.jpg: truncated\n" in text
    assert "4/4" in text.rsplit("\r", 1)[-1] and "photo/s" in text


@pytest.mark.parametrize("every_s", [0, 3600])
def test_in_a_log_lines_come_at_most_every_every_s_and_at_the_end(every_s):
    logged = []
    bar = progress.Progress("tool", 4, "photo", logged.append, every_s=every_s, stream=io.StringIO())
    bar.update(1, lambda done, rate, eta: f"{done} {eta}", timed=False)  # a skip: no rate yet, so no ETA
    for _ in range(3):
        bar.update(1, lambda done, rate, eta: f"{done} {eta}")
    bar.note("tool: skipped y.png")
    bar.close()
    lines = ["1 ?", "2 0:00:00", "3 0:00:00", "4 0:00:00"] if every_s == 0 else ["4 0:00:00"]
    assert logged == [*lines, "tool: skipped y.png"]


def _redraws(text):
    """A bar redraws its line: a carriage return not ending a line (a terminal turns each newline into \\r\\n)."""
    return re.search(r"\r(?!\n)", text) is not None


def _run(script, *args, terminal, timeout=300):
    """(exit status, stderr text) of `python script args`, stderr a pseudo-terminal 120 columns wide, or a pipe."""
    command = [sys.executable, os.path.join(REPO_ROOT, script), *args]
    if not terminal:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        return result.returncode, result.stderr
    controller, attached = os.openpty()
    fcntl.ioctl(attached, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=attached)
    os.close(attached)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(controller, 65536)
            except OSError:  # EIO: the process and its children closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(controller)
    return process.wait(timeout=60), b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Five colour photos and one that is not an image."""
    folder = tmp_path_factory.mktemp("photos")
    for index in range(5):
        Image.new("RGB", (64 + 8 * index, 48), (40 * index, 90, 200 - 30 * index)).save(folder / f"p{index}.png")
    (folder / "notes.jpg").write_bytes(b"not a photo")
    return folder


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return run_dirs.make_run(tmp_path_factory.mktemp("run"), "unet")[0]


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "log"])
def test_colorize_shows_a_bar_on_a_terminal_and_lines_in_a_log(photos, model_dir, tmp_path, terminal):
    code, text = _run("launch/colorize.py", f"--model={model_dir}", f"--input={photos}",
                      f"--output_dir={tmp_path / 'out'}", terminal=terminal)
    assert code == 0, text[-2000:]
    assert "colorize: skipped" in text and "notes.jpg" in text
    if terminal:
        assert _redraws(text) and "6/6" in text and "photo/s" in text
        assert "images/s ETA" not in text
    else:
        assert "\r" not in text
        assert sum("images/s ETA" in line for line in text.splitlines()) == 5


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "log"])
def test_evaluate_shows_a_bar_on_a_terminal_and_lines_in_a_log(photos, model_dir, terminal):
    code, text = _run("launch/evaluate.py", f"--model={model_dir}", f"--input_dir={photos}", terminal=terminal)
    assert code == 0, text[-2000:]
    if terminal:
        assert _redraws(text) and "6/6" in text and "photo/s" in text
    else:
        assert "\r" not in text
        assert any(line.startswith("evaluate: 6/6 photos") and "ETA" in line for line in text.splitlines())


@pytest.mark.parametrize("terminal", [True, False], ids=["terminal", "log"])
def test_make_tfrecords_and_inspect_show_a_bar_on_a_terminal_and_lines_in_a_log(photos, tmp_path, terminal):
    data_dir = tmp_path / "data"
    code, text = _run("data_prep/make_tfrecords.py", f"--input_dir={photos}", f"--output_dir={data_dir}",
                      "--image_size=32", "--val_fraction=0.2", terminal=terminal)
    assert code in (0, 1), text[-2000:]
    if terminal:
        assert _redraws(text) and "image/s" in text
    else:
        assert "\r" not in text and "images/s, ETA" in text
    code, text = _run("data_prep/inspect_tfrecords.py", f"--data_dir={data_dir}", terminal=terminal)
    assert code == 0, text[-2000:]
    if terminal:
        assert _redraws(text) and "shard/s" in text
    else:
        assert "\r" not in text and any(line.startswith("inspect_tfrecords: ") and "shards/s" in line
                                        for line in text.splitlines())
