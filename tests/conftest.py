"""Shared fixtures: real photos (scikit-image's bundled ones, cropped) and a way to run the CLI entrypoints."""

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from colorgan import sample_photos  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory):
    """40 real colour photos (random crops of the bundled ones), JPEG, 160x120."""
    directory = tmp_path_factory.mktemp("photos")
    sample_photos.write_photo_folder(str(directory), num_crops=40, crop_size=(160, 120), include_originals=False)
    return str(directory)


def run_script(relative_path, *args, timeout=300, check=False):
    """Runs a repo script in a fresh Python process; returns the CompletedProcess (text output)."""
    result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, relative_path), *args], capture_output=True,
                            text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{relative_path} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result
