"""End-to-end tests of data_prep/make_tfrecords.py as users run it: a real process, killed and resumed."""

import filecmp
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO_ROOT
from conftest import run_script

from colorgan.data import existing_output
from colorgan.data import records
from colorgan.demo import sample_photos

SCRIPT = "data_prep/make_tfrecords.py"
LOCK = ".make_tfrecords.lock"  # spelled out: a renamed lock file is a user-visible change


@pytest.fixture(scope="module")
def big_photo_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("big_photos"))
    sample_photos.write_photo_folder(directory, num_crops=300, crop_size=256, include_originals=False)
    return directory


def _flags(input_dir, output_dir):
    return [f"--input_dir={input_dir}", f"--output_dir={output_dir}", "--image_size=96", "--num_shards=12",
            "--num_workers=1"]


def test_killed_run_resumes_to_byte_identical_output(big_photo_dir, tmp_path):
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    run_script(SCRIPT, *_flags(big_photo_dir, reference), check=True)

    process = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, SCRIPT), *_flags(big_photo_dir, resumed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state_dir = resumed / existing_output.STATE_DIRNAME
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if state_dir.is_dir() and len([n for n in os.listdir(state_dir) if n.endswith(".tfrecord.json")]) >= 2:
            break
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (resumed / records.MANIFEST_FILENAME).exists(), "the run finished before it could be killed"
    finished_before = sorted(n for n in os.listdir(resumed) if records.is_shard_filename(n))
    assert 2 <= len(finished_before) < 24
    stamps = {name: os.stat(resumed / name).st_mtime_ns for name in finished_before}

    assert (resumed / LOCK).exists()  # a SIGKILLed run cannot remove its lock: the rerun takes it over
    result = run_script(SCRIPT, *_flags(big_photo_dir, resumed), check=True)
    assert f"make_tfrecords: taking over the lock {resumed / LOCK} of pid {process.pid} on host " in result.stderr
    assert f"resuming: reusing {len(finished_before)} finished shards" in result.stderr
    assert stamps == {name: os.stat(resumed / name).st_mtime_ns for name in finished_before}
    names = sorted(os.listdir(reference))
    assert names == sorted(os.listdir(resumed))
    assert filecmp.cmpfiles(reference, resumed, names, shallow=False)[0] == names

    again = run_script(SCRIPT, *_flags(big_photo_dir, resumed), check=True)
    assert "up to date" in again.stderr


def test_existing_output_with_other_flags_exits_non_zero_with_one_line(photo_dir, tmp_path):
    run_script(SCRIPT, f"--input_dir={photo_dir}", f"--output_dir={tmp_path}", "--image_size=32", check=True)
    manifest = (tmp_path / records.MANIFEST_FILENAME).read_bytes()
    result = run_script(SCRIPT, f"--input_dir={photo_dir}", f"--output_dir={tmp_path}", "--image_size=40")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("make_tfrecords: error")]
    assert errors == [f"make_tfrecords: error: --output_dir={tmp_path} holds a dataset made with other flags or "
                      "inputs (differs in: image_size, min_size); pass --overwrite to replace it"]
    assert (tmp_path / records.MANIFEST_FILENAME).read_bytes() == manifest


@pytest.mark.parametrize("args, message", [
    (["--image_size=2"], "make_tfrecords: error: --image_size=2: must be >= 8"),
    (["--input_dir=/does/not/exist"], "make_tfrecords: error: --input_dir=/does/not/exist: not a directory"),
    (["--resize=zoom"], "flag --resize=zoom: value should be one of <crop|stretch|pad>"),
    (["--shard_size_mb=inf"], "make_tfrecords: error: --shard_size_mb=inf: must be a number in (0, 65536]"),
    (["--image_size=100000"], "make_tfrecords: error: --image_size=100000: must be <= 4096"),
])
def test_bad_flags_exit_non_zero_with_one_line(photo_dir, tmp_path, args, message):
    result = run_script(SCRIPT, f"--input_dir={photo_dir}", f"--output_dir={tmp_path}", *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / records.MANIFEST_FILENAME).exists()


def test_every_bad_flag_is_reported_on_its_own_line(photo_dir, tmp_path):
    result = run_script(SCRIPT, f"--input_dir={photo_dir}", f"--output_dir={tmp_path}", "--image_size=2",
                        "--jpeg_quality=101", "--val_fraction=1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert _error_lines(result.stderr) == ["make_tfrecords: error: --image_size=2: must be >= 8",
                                           "make_tfrecords: error: --jpeg_quality=101: must be in 1..100",
                                           "make_tfrecords: error: --val_fraction=1.0: must be in [0, 1)"]
    assert os.listdir(tmp_path) == []


def test_an_output_inside_an_input_or_nested_inputs_are_refused(photo_dir, tmp_path):
    """The output's own files (a preview sheet, shards) would become training examples; nested roots would store the
    same photo twice under two keys, possibly in both splits."""
    import shutil

    photos = tmp_path / "photos"
    shutil.copytree(photo_dir, photos / "inner")
    result = run_script(SCRIPT, f"--input_dir={photos}", f"--output_dir={photos / 'data'}", "--image_size=32")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"make_tfrecords: error: --output_dir={photos / 'data'}: is inside --input_dir={photos}" in result.stderr
    result = run_script(SCRIPT, f"--input_dir={photos}", f"--input_dir={photos / 'inner'}",
                        f"--output_dir={tmp_path / 'out'}", "--image_size=32")
    assert result.returncode == 2
    assert f"make_tfrecords: error: --input_dir={photos / 'inner'}: is inside --input_dir={photos}" in result.stderr
    assert not (tmp_path / "out").exists() and not (photos / "data").exists()


def test_a_conversion_that_writes_no_example_is_an_error(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "notes.jpg").write_text("not a photo")
    for _ in range(2):  # and the rerun, which finds its manifest, says so again
        result = run_script(SCRIPT, f"--input_dir={photos}", f"--output_dir={tmp_path / 'out'}", "--image_size=32")
        assert result.returncode == 1 and "Traceback" not in result.stderr  # nothing could be done: 2 before
        assert (f"make_tfrecords: error: {tmp_path / 'out'}: no example written, every file was skipped (not an "
                "image: 1)") in result.stderr
        assert not (tmp_path / "out" / LOCK).exists()


def _wait_for_a_finished_shard(process, output, timeout=120):
    """Returns once a run into `output` has recorded a finished shard in its state folder (or has ended)."""
    state_dir = output / existing_output.STATE_DIRNAME
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if state_dir.is_dir() and any(n.endswith(".tfrecord.json") for n in os.listdir(state_dir)):
            return
        time.sleep(0.005)


def _start_two_workers_and_wait_for_a_shard(photos, output):
    """A make_tfrecords run with 2 worker processes, in its own session (so a signal can go to its whole process
    group, as a terminal's Ctrl-C does), once it has finished a shard; returns (process, its child pids)."""
    import psutil

    flags_ = [f"--input_dir={photos}", f"--output_dir={output}", "--image_size=96", "--num_shards=12",
              "--num_workers=2"]
    process = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, SCRIPT), *flags_], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for_a_finished_shard(process, output)
    children = [child.pid for child in psutil.Process(process.pid).children(recursive=True)]
    assert len(children) >= 2  # the workers (and the resource tracker)
    return process, flags_, children


def _gone(pids, timeout=20):
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_killing_the_parent_ends_its_workers(big_photo_dir, tmp_path):
    """SIGKILL (the OOM killer, `kill -9`) to the parent: its worker processes must not live on forever."""
    process, _, children = _start_two_workers_and_wait_for_a_shard(big_photo_dir, tmp_path / "out")
    process.kill()
    process.communicate()
    assert _gone(children), "worker processes outlived their parent"


@pytest.mark.parametrize("signum, exit_code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_ctrl_c_stop_cleanly_and_the_rerun_resumes(big_photo_dir, tmp_path, signum, exit_code):
    output = tmp_path / "out"
    process, flags_, children = _start_two_workers_and_wait_for_a_shard(big_photo_dir, output)
    os.killpg(process.pid, signum)  # the whole process group, as `timeout`, Slurm and a terminal's Ctrl-C do
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == exit_code, stderr[-2000:]
    assert "Traceback" not in stderr
    assert f"make_tfrecords: stopped by {signal.Signals(signum).name}; finished shards are kept: run the same " \
           "command to resume" in stderr
    assert _gone(children)
    assert not (output / LOCK).exists()  # released on the way out
    result = run_script(SCRIPT, *flags_, check=True)
    assert "resuming: reusing" in result.stderr and (output / records.MANIFEST_FILENAME).exists()



def _error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("make_tfrecords: error")]


def _shards_match_manifest(output):
    manifest = records.read_manifest(str(output))
    shards = [shard for split in manifest["splits"].values() for shard in split["shards"]]
    return bool(shards) and all(
        records.file_digest(output / shard["file"]) == (shard["bytes"], shard["sha256"]) for shard in shards)


def test_a_second_run_into_the_same_output_is_refused_while_the_first_runs(big_photo_dir, tmp_path):
    """Two runs into one folder: without a lock one died with a FileNotFoundError traceback and the other could
    exit 0 with a manifest whose sha256 did not match a shard. The first run is paused (SIGSTOP) after its first
    shard so it surely holds the output while the second one starts."""
    import socket

    output = tmp_path / "out"
    first = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, SCRIPT), *_flags(big_photo_dir, output)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_a_finished_shard(first, output)
    first.send_signal(signal.SIGSTOP)
    try:
        assert not (output / records.MANIFEST_FILENAME).exists(), "the first run finished too soon"
        second = run_script(SCRIPT, *_flags(big_photo_dir, output))
    finally:
        first.send_signal(signal.SIGCONT)
    _, first_stderr = first.communicate(timeout=300)
    assert (second.returncode, first.returncode) == (2, 0), (second.stderr[-2000:], first_stderr[-2000:])
    assert _error_lines(second.stderr) == [
        f"make_tfrecords: error: --output_dir={output} is locked by pid {first.pid} on host {socket.gethostname()} "
        f"({output / LOCK}); wait for that run to finish, or pass --break_lock if no run is writing there"]
    assert "Traceback" not in second.stderr + first_stderr
    assert _shards_match_manifest(output)
    assert not (output / LOCK).exists() and not (output / existing_output.STATE_DIRNAME).exists()


def test_a_lock_from_another_host_is_refused_unless_break_lock(photo_dir, tmp_path):
    (tmp_path / LOCK).write_text('{"host": "build-7", "pid": 4242}\n')
    flags_ = [f"--input_dir={photo_dir}", f"--output_dir={tmp_path}", "--image_size=32", "--num_workers=1"]
    refused = run_script(SCRIPT, *flags_)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert _error_lines(refused.stderr) == [
        f"make_tfrecords: error: --output_dir={tmp_path} is locked by pid 4242 on host build-7 ({tmp_path / LOCK}); "
        "wait for that run to finish, or pass --break_lock if no run is writing there"]
    assert os.listdir(tmp_path) == [LOCK]
    broken = run_script(SCRIPT, *flags_, "--break_lock", check=True)
    assert f"make_tfrecords: breaking the lock {tmp_path / LOCK} of pid 4242 on host build-7 (--break_lock)" in \
        broken.stderr
    assert _shards_match_manifest(tmp_path) and not (tmp_path / LOCK).exists()


def test_a_manifest_that_is_not_a_json_object_is_one_line_even_with_overwrite(photo_dir, tmp_path):
    manifest = tmp_path / records.MANIFEST_FILENAME
    manifest.write_text("[]\n")
    result = run_script(SCRIPT, f"--input_dir={photo_dir}", f"--output_dir={tmp_path}", "--image_size=32",
                        "--overwrite")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert _error_lines(result.stderr) == [
        f"make_tfrecords: error: --output_dir={tmp_path} holds {manifest}, which this tool did not write (a JSON "
        "array); move it away or choose another --output_dir: --overwrite never replaces it"]
    assert manifest.read_text() == "[]\n" and sorted(os.listdir(tmp_path)) == [records.MANIFEST_FILENAME]


def test_a_non_utf8_output_dir_is_one_line_naming_the_flag(photo_dir, tmp_path):
    output = os.fsencode(tmp_path) + b"/out\xff"
    result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, SCRIPT), f"--input_dir={photo_dir}",
                             b"--output_dir=" + output], capture_output=True, timeout=300)
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2 and "Traceback" not in stderr
    assert _error_lines(stderr) == [f"make_tfrecords: error: --output_dir={tmp_path}/out\\xff: not valid UTF-8 "
                                    "(TensorFlow opens files by UTF-8 names); rename it"]
    assert os.listdir(tmp_path) == []


def test_disk_full_is_one_line_and_keeps_finished_shards_for_the_rerun(small_disk, tmp_path):
    import numpy as np
    from PIL import Image

    photos = tmp_path / "noise"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):  # incompressible: about 65 KB per example as 128 px PNGs, 2.6 MB in all
        Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(photos / f"{i:02d}.png")
    disk = small_disk(2 * 1024)
    output = disk / "out"
    flags_ = [f"--input_dir={photos}", f"--output_dir={output}", "--image_size=128", "--encoding=png",
              "--num_shards=4", "--val_fraction=0", "--num_workers=1"]
    full = run_script(SCRIPT, *flags_)
    assert full.returncode == 1 and "Traceback" not in full.stderr, full.stderr[-3000:]  # 2 before: not usage
    [error] = _error_lines(full.stderr)
    assert error.startswith(f"make_tfrecords: error: {output}: no space left on device while writing train-0000")
    assert "MiB more are needed for" in error and error.endswith(
        "finished shards are kept: free space and run the same command to resume")
    state_dir = output / existing_output.STATE_DIRNAME
    kept = sorted(n for n in os.listdir(output) if records.is_shard_filename(n))
    assert 1 <= len(kept) < 4 and not (output / LOCK).exists()
    assert sorted(os.listdir(state_dir)) == sorted([existing_output.PLAN_FILENAME] + [f"{n}.json" for n in kept])

    subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
    resumed = run_script(SCRIPT, *flags_, check=True)
    assert f"resuming: reusing {len(kept)} finished shards" in resumed.stderr
    assert _shards_match_manifest(output) and not state_dir.exists()
