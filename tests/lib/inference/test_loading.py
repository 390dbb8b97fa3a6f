"""Tests of colorgan.inference.loading on damaged runs and exports: every way TensorFlow fails to read a checkpoint or
a SavedModel is one InferenceError line naming the file, and the tools that load models exit 2 with that line."""

import glob
import os
import shutil

import pytest
import run_dirs
import tensorflow as tf
from conftest import run_script

from colorgan.inference import export
from colorgan.inference import loading


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """(run dir, export dir) of a tiny Lab U-Net."""
    root = tmp_path_factory.mktemp("loading")
    model_dir, _ = run_dirs.make_run(root / "run", "unet", step=7)
    export.export(model_dir, str(root / "export" / "1"))
    return model_dir, str(root / "export" / "1")


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _flip_a_byte(path):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))


def _garbage(path):
    open(path, "wb").write(b"garbage" * 10)


def _other_variables(prefix):
    tf.train.Checkpoint(other=tf.Variable(1.0)).write(prefix)


RUN_DAMAGE = {  # what was done to a copy of the run -> what the one line says
    "truncated data": (lambda run: _truncate(glob.glob(f"{run}/ckpt-7.data*")[0]),
                       "ckpt-7: cannot be read, the checkpoint is damaged (Read less bytes than requested)"),
    "a checksum mismatch": (lambda run: _flip_a_byte(glob.glob(f"{run}/ckpt-7.data*")[0]),
                            "ckpt-7: cannot be read, the checkpoint is damaged (TensorBundle at"),
    "a garbage index": (lambda run: _garbage(f"{run}/ckpt-7.index"),
                        "ckpt-7: cannot be read, the checkpoint is damaged (not an sstable (bad magic number))"),
    "missing variables": (lambda run: _other_variables(f"{run}/ckpt-7"),
                          "ckpt-7: does not hold this run's generator: Found"),
}


@pytest.mark.parametrize("damage", sorted(RUN_DAMAGE))
def test_a_damaged_run_is_one_line_naming_its_checkpoint(model, tmp_path, damage):
    spoil, expected = RUN_DAMAGE[damage]
    run = str(tmp_path / "run")
    shutil.copytree(model[0], run)
    spoil(run)
    with pytest.raises(loading.InferenceError) as raised:
        loading.Colorizer.load(run)
    assert f"{run}/{expected}" in str(raised.value) and "\n" not in str(raised.value), str(raised.value)


@pytest.mark.parametrize("spoil", [_truncate, _flip_a_byte], ids=["truncated", "checksum"])
def test_a_damaged_export_is_one_line_naming_it(model, tmp_path, spoil):
    exported = str(tmp_path / "export")
    shutil.copytree(model[1], exported)
    spoil(glob.glob(f"{exported}/variables/variables.data*")[0])
    with pytest.raises(loading.InferenceError, match=rf"^{exported}: cannot be loaded, the export is damaged "
                                                     r"\(export again\): "):
        loading.Colorizer.load(exported)


@pytest.mark.parametrize("script", ["launch/colorize.py", "launch/evaluate.py", "launch/serve.py", "launch/export.py"])
def test_the_tools_exit_1_with_one_line_on_a_damaged_run(model, tmp_path, script):
    """A damaged model is a failure at run time (exit 1: BUILD.md, "Exit statuses"); these exited 2, the status of
    a command line that cannot be used, which a model path holding nothing still gets."""
    run = str(tmp_path / "run")
    shutil.copytree(model[0], run)
    _truncate(glob.glob(f"{run}/ckpt-7.data*")[0])
    (tmp_path / "photos").mkdir()
    args = {"launch/colorize.py": [f"--model={run}", f"--input={tmp_path / 'photos'}",
                                   f"--output_dir={tmp_path / 'out'}"],
            "launch/evaluate.py": [f"--model={run}", f"--input_dir={tmp_path / 'photos'}"],
            "launch/serve.py": [f"--model={run}", "--port=0"],
            "launch/export.py": [f"--model_dir={run}", f"--export_dir={tmp_path / 'export'}"]}[script]
    if script == "launch/colorize.py":
        shutil.copy(glob.glob(f"{run}/flags.cfg")[0], tmp_path / "photos" / "not_a_photo.jpg")
    result = run_script(script, *args)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    missing = run_script(script, *[arg.replace(run, str(tmp_path / "nothing")) for arg in args])
    assert missing.returncode == 2 and "Traceback" not in missing.stderr, missing.stderr[-3000:]
    assert "cannot be read, the checkpoint is damaged (Read less bytes than requested)" in result.stderr
