"""Tests of colorgan.core.storage: one reading of "the disk is full", every path through storage, a whole run on ram://."""

import errno
import os

import pytest
import tensorflow as tf
from conftest import REPO_ROOT

from colorgan.core import storage


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



# ------------------------------------------------------------------------------------- the primitives

_RAM = "ram://test-storage"


@pytest.fixture(params=["local", "ram"])
def folder(request, tmp_path):
    """A fresh folder on the local disk, then on ram:// (the tf.io.gfile path that gs:// takes)."""
    if request.param == "local":
        return str(tmp_path)
    path = f"{_RAM}/{request.node.originalname}"  # no [param]: brackets are glob syntax
    storage.rmtree(path)
    storage.makedirs(path)
    return path


def test_write_atomic_replaces_whole_content_and_leaves_no_temporary_file(folder):
    path = f"{folder}/notes.json"
    storage.write_atomic(path, "first version, longer than the second\n")
    storage.write_atomic(path, b"second\n")
    assert storage.read_text(path) == "second\n" and storage.size(path) == 7
    assert storage.listdir(folder) == ["notes.json"]


def test_a_failed_local_write_keeps_the_old_content_and_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "manifest.json"
    storage.write_atomic(path, "old")

    def fail(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="No space"):
        storage.write_atomic(path, "new")
    assert path.read_text() == "old" and sorted(os.listdir(tmp_path)) == ["manifest.json"]


def test_append_text_on_every_file_system(folder):
    path = f"{folder}/metrics.jsonl"
    storage.append_text(path, "1\n")
    storage.append_text(path, "2\n")
    assert storage.read_text(path) == "1\n2\n"


def test_listing_walking_renaming_and_removing_folders(folder):
    storage.makedirs(f"{folder}/a/b")
    storage.write_atomic(f"{folder}/a/b/x.png", b"x")
    storage.write_atomic(f"{folder}/a/y.png", b"y")
    assert storage.listdir(f"{folder}/a") == ["b", "y.png"]  # no trailing '/' on folders
    assert storage.isdir(f"{folder}/a/b") and storage.isfile(f"{folder}/a/y.png") and not storage.isfile(
        f"{folder}/a/b")
    walked = {os.path.relpath(top, folder): sorted(files) for top, _, files in storage.walk(folder)}
    assert walked == {".": [], "a": ["y.png"], os.path.join("a", "b"): ["x.png"]}
    assert [os.path.basename(p) for p in storage.glob(f"{folder}/a/*.png")] == ["y.png"]
    if storage.is_local(folder):
        storage.rename(f"{folder}/a", f"{folder}/c")
        assert not storage.exists(f"{folder}/a") and storage.read_bytes(f"{folder}/c/b/x.png") == b"x"
    else:  # object stores have no rename; writers there use final names
        with pytest.raises(ValueError, match="only local paths are renamed"):
            storage.rename(f"{folder}/a", f"{folder}/c")
        storage.rmtree(f"{folder}/a")
    storage.rmtree(f"{folder}/c")
    storage.rmtree(f"{folder}/c")  # already gone: not an error
    storage.remove(f"{folder}/gone.png")
    assert storage.listdir(folder) == []


def test_a_missing_file_is_an_oserror_whatever_the_file_system(folder):
    with pytest.raises(OSError) as raised:
        storage.open_for_reading(f"{folder}/missing.png")
    assert raised.value.errno == errno.ENOENT


def test_only_local_paths_count_as_local():
    assert storage.is_local("runs/a") and storage.is_local("/abs") and storage.is_local("file:///abs")
    assert not storage.is_local("gs://bucket/x") and not storage.is_local("ram://x")
    assert storage.scheme("gs://bucket/x") == "gs" and storage.scheme("runs/a") == ""
    assert storage.directory_problem("gs://bucket/run") is None


# ------------------------------------------------------------------------------------- every path through storage

# Calls that read or write a file system path directly. Every data and run path goes through colorgan.core.storage
# instead, which is what lets a run live on gs:// or ram:// (os.makedirs("ram://x") silently makes a local folder).
_DIRECT_FILE_CALLS = {
    "open", "os.open", "os.path.exists", "os.path.lexists", "os.path.isdir", "os.path.isfile", "os.path.getsize",
    "os.path.getmtime", "os.makedirs", "os.mkdir", "os.replace", "os.rename", "os.remove", "os.unlink", "os.rmdir",
    "os.listdir", "os.scandir", "os.walk", "os.stat", "os.access", "shutil.rmtree", "shutil.copy", "shutil.copyfile",
    "shutil.copytree", "shutil.move", "shutil.disk_usage", "glob.glob", "tempfile.mkdtemp",
}
# Modules allowed direct calls, and why (nothing else is).
_LOCAL_BY_DESIGN = {
    "colorgan/core/storage.py": "the one implementation of local paths",
    "colorgan/data/output_lock.py": "lock files are local by nature (O_EXCL, /proc pids)",
}


def _direct_file_calls(path):
    """(line, call) of every direct file-system call in a Python file, except reads of /proc (kernel facts, not
    data)."""
    import ast

    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.Call):
            continue
        parts, func = [], node.func
        while isinstance(func, ast.Attribute):
            parts.insert(0, func.attr)
            func = func.value
        if not isinstance(func, ast.Name):
            continue
        name = ".".join([func.id, *parts])
        literal = node.args and isinstance(node.args[0], (ast.Constant, ast.JoinedStr)) and (
            ast.unparse(node.args[0]).strip("f'\"").startswith("/proc/"))
        if name in _DIRECT_FILE_CALLS and not literal:
            found.append((node.lineno, name))
    return found


def _package_modules():
    """colorgan's modules as the import system finds them (a folder without __init__.py is not among them)."""
    import pkgutil

    import colorgan

    return {info.name for info in pkgutil.walk_packages(colorgan.__path__, "colorgan.")}


def test_no_tool_reads_or_writes_a_path_except_through_storage():
    """The guard of cloud paths: colorgan (every subpackage), data_prep and launch touch files only through
    colorgan.core.storage. The walk must see every module the package has, and the exempt modules must exist."""
    import pathlib

    from conftest import REPO_ROOT

    root = pathlib.Path(REPO_ROOT)
    package = sorted(root.glob("colorgan/**/*.py"))
    walked = {".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__") for path in package}
    walked.discard("colorgan")  # the package itself; pkgutil lists what is below it
    assert walked == _package_modules() and len(walked) >= 50, sorted(walked ^ _package_modules())
    offenders, seen = {}, set()
    for path in [*package, *sorted(root.glob("data_prep/*.py")), *sorted(root.glob("launch/*.py"))]:
        relative = path.relative_to(root).as_posix()
        seen.add(relative)
        calls = _direct_file_calls(path)
        if calls and relative not in _LOCAL_BY_DESIGN:
            offenders[relative] = calls
    assert set(_LOCAL_BY_DESIGN) <= seen, set(_LOCAL_BY_DESIGN) - seen
    assert not offenders, offenders


def test_the_guard_sees_direct_calls(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nos.makedirs(x)\nwith open(p) as f: pass\nopen('/proc/cpuinfo')\n"
                      "storage.makedirs(x)\n")
    assert _direct_file_calls(sample) == [(2, "os.makedirs"), (3, "open")]


# ------------------------------------------------------------------------------------- a whole run on ram://


def test_a_whole_run_lives_on_the_ram_filesystem(photo_dir, tmp_path, monkeypatch):
    """Data prep (local runner) -> train -> resume -> export -> colorize -> plot with every path on TensorFlow's
    in-memory ram:// filesystem: the tf.io.gfile code paths a gs:// run takes, without a network. ram:// lives in one
    process, so the chain runs in-process through the library, data prep with one worker. No local `ram:` folder
    appears (os.makedirs("ram://x") would silently make ./ram:/x)."""
    import dataclasses
    import io
    import uuid

    import numpy as np
    import run_dirs
    from PIL import Image

    from colorgan.data import records
    from colorgan.inference import colorize_job
    from colorgan.inference import export
    from colorgan.training import plots
    from colorgan.training import run_log
    from colorgan.training import train_config
    from colorgan.training import trainer

    monkeypatch.chdir(tmp_path)
    root = f"ram://colorgan-{uuid.uuid4().hex[:8]}"
    photos, data, run = f"{root}/photos", f"{root}/data", f"{root}/run"
    names = sorted(os.listdir(photo_dir))[:24]
    for name in names:
        with open(os.path.join(photo_dir, name), "rb") as f:
            storage.write_atomic(f"{photos}/{name}", f.read())

    run_dirs.write_records(photos, data, 32, min_shards=2, val_fraction=0.25)
    manifest = records.read_manifest(data)
    counts = {split: manifest["splits"][split]["num_examples"] for split in records.SPLITS}
    assert sum(counts.values()) == len(names) and min(counts.values()) > 0, counts

    config = train_config.TrainConfig(
        data_dir=data, model_dir=run, generator="unet", discriminator="patchgan", image_size=32, base_width=4,
        depth=3, norm="none", batch_size=4, log_every=1, eval_every=2, eval_batches=1, checkpoint_every=2,
        shuffle_buffer=16, strategy="one_device", seed=0, train_steps=2)
    assert not config.validate(num_replicas=1)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    assert trainer.Trainer(config, strategy, log=lambda _: None).train() == 2
    logs = []
    assert trainer.Trainer(dataclasses.replace(config, train_steps=4), strategy, log=logs.append).train() == 4
    assert f"train: restored {run}/ckpt-2 at step 2" in logs
    assert tf.train.latest_checkpoint(run) == f"{run}/ckpt-4"
    assert train_config.read_flagfile(f"{run}/{train_config.FLAGFILE_NAME}").train_steps == 4
    entries = run_log.read_metrics(f"{run}/{run_log.METRICS_FILENAME}")
    assert [e["step"] for e in entries if e["kind"] == "train"] == [1, 2, 3, 4]
    assert [e["step"] for e in entries if e["kind"] == "eval"] == [0, 2, 4]  # 0: the untrained baseline
    assert Image.open(io.BytesIO(storage.read_bytes(run_log.sample_sheet_path(run, 4)))).size[0] > 0

    description = export.export(run, f"{root}/export")
    assert description["step"] == 4
    summary = colorize_job.run(colorize_job.ColorizeConfig(model=f"{root}/export", inputs=(photos,),
                                                           output_dir=f"{root}/colorized"), log=lambda _: None)
    assert summary.colorized == len(names) and not summary.failed
    for name in names[:3]:
        original = Image.open(io.BytesIO(storage.read_bytes(f"{photos}/{name}")))
        colorized = Image.open(io.BytesIO(storage.read_bytes(f"{root}/colorized/{os.path.splitext(name)[0]}.jpg")))
        assert colorized.size == original.size
        assert np.ptp(np.asarray(colorized.convert("RGB"), np.int16), axis=-1).max() > 0  # it has chroma

    plots.plot_metrics(f"{run}/{run_log.METRICS_FILENAME}", f"{run}/{plots.LOSS_CURVES_FILENAME}")
    assert storage.read_bytes(f"{run}/{plots.LOSS_CURVES_FILENAME}").startswith(b"\x89PNG")
    assert not os.path.exists("ram:") and not os.path.exists(os.path.join(REPO_ROOT, "ram:"))
