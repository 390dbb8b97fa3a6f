"""Shared fixtures: real photos (scikit-image's bundled ones, cropped) and a way to run the CLI entrypoints."""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

from colorgan.demo import sample_photos

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_collection_modifyitems(items):
    """Tests marked slow (a minute or more) run first: with pytest-xdist's work stealing (setup.cfg) they start at
    once beside the rest instead of keeping one worker busy after the other has finished."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory):
    """40 real colour photos (random crops of the bundled ones), JPEG, 160x120."""
    directory = tmp_path_factory.mktemp("photos")
    sample_photos.write_photo_folder(str(directory), num_crops=40, crop_size=(160, 120), include_originals=False)
    return str(directory)


def run_script(relative_path, *args, timeout=300, check=False, cwd=None, env=None):
    """Runs a repo script in a fresh Python process (in `cwd`, default ours; `env` added to ours); returns the
    CompletedProcess (text output)."""
    result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, relative_path), *args], capture_output=True,
                            text=True, timeout=timeout, cwd=cwd, env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"{relative_path} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result


# Beam options for tests: FnApiRunner is the DirectRunner's own engine, asked for by name, since runner=DirectRunner
# (Beam 2.6x+) first tries the Prism runner, whose binary it downloads from GitHub, and the tests connect to nothing
# but 127.0.0.1. Two worker processes, as on a real cluster.
BEAM_MULTI_PROCESSING = "runner=FnApiRunner,direct_running_mode=multi_processing,direct_num_workers=2"


def skip_unless_ci(reason):
    """Skips with a one-line reason, except under CI (CI=true), where what the test needs is installed and a skip
    would hide a failure."""
    (pytest.fail if os.environ.get("CI") == "true" else pytest.skip)(reason)


@pytest.fixture
def small_disk(tmp_path):
    """mount(size_kib) -> a fresh tmpfs of that size: a disk that fills up. Mounting needs root (CI has it)."""
    mounts = []

    def mount(size_kib):
        if os.geteuid() != 0:
            skip_unless_ci("a full disk is made with a tmpfs mount, which needs root")
        path = tmp_path / f"small_disk{len(mounts)}"
        path.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)], check=True)
        mounts.append(path)
        return path

    yield mount
    for path in mounts:
        subprocess.run(["umount", "--lazy", str(path)], check=False)


@pytest.fixture
def live_pid():
    """The pid of a process that stays alive for the test (a `sleep`)."""
    process = subprocess.Popen(["sleep", "600"])
    yield process.pid
    process.kill()
    process.wait()


def dead_pid():
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid
