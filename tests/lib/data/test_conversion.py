"""Tests of colorgan.data.conversion: whole conversions, in process, over real photos and the awkward-file corpus."""

import filecmp
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import uuid

import image_corpus
import numpy as np
import pytest
import tensorflow_datasets as tfds
from absl import flags
from conftest import REPO_ROOT
from conftest import dead_pid
from conftest import run_script
from PIL import Image
from PIL import ImageOps

from colorgan.core import flag_config
from colorgan.core import storage
from colorgan.data import conversion
from colorgan.data import conversion_config
from colorgan.data import example_prep
from colorgan.data import existing_output
from colorgan.data import records
from colorgan.data import worker_pool


def _config(input_dir, output_dir, **overrides):
    defaults = dict(input_dirs=(input_dir,), output_dir=output_dir, image_size=64, num_workers=1,
                    progress_interval_s=3600)
    return conversion_config.ConversionConfig(**{**defaults, **overrides})


def _run(config):
    messages = []
    manifest = conversion.run(config, log=messages.append)
    return manifest, messages


def _keys_by_split(data_dir):
    manifest = records.read_manifest(data_dir)
    return {split: [key for path in records.shard_paths(data_dir, manifest, split)
                    for key, _, _ in records.read_examples(path)] for split in records.SPLITS}


def _tree_files(directory):
    return sorted(os.listdir(directory))


def test_records_equal_the_reference_resize_of_each_photo(photo_dir, tmp_path):
    manifest, _ = _run(_config(photo_dir, str(tmp_path), encoding="png"))
    seen = 0
    for split in records.SPLITS:
        for path in records.shard_paths(str(tmp_path), manifest, split):
            for key, gray, rgb in records.read_examples(path):
                with Image.open(os.path.join(photo_dir, key)) as source:
                    source.draft("RGB", (86, 64))  # what the converter asks of a 160x120 JPEG for 64 px crops
                    expected = np.asarray(ImageOps.fit(source.convert("RGB"), (64, 64), Image.Resampling.LANCZOS))
                np.testing.assert_array_equal(rgb, expected)
                np.testing.assert_array_equal(gray, np.asarray(Image.fromarray(rgb).convert("L"))[..., None])
                seen += 1
    assert seen == 40 == manifest["splits"]["train"]["num_examples"] + manifest["splits"]["val"]["num_examples"]


def test_manifest_describes_the_output(photo_dir, tmp_path):
    manifest, messages = _run(_config(photo_dir, str(tmp_path), val_fraction=0.25, min_shards=3))
    assert manifest == json.loads((tmp_path / records.MANIFEST_FILENAME).read_text())
    assert (manifest["format_version"], manifest["image_size"], manifest["resize"], manifest["encoding"]) == (
        records.FORMAT_VERSION, 64, "crop", "jpeg")
    assert manifest["flags"]["val_fraction"] == 0.25 and manifest["flags"]["input_dir"] == [photo_dir]
    for split in records.SPLITS:
        shards = manifest["splits"][split]["shards"]
        assert [s["file"] for s in shards] == [records.shard_filename(split, i, 3) for i in range(3)]
        for shard in shards:
            assert records.file_digest(tmp_path / shard["file"]) == (shard["bytes"], shard["sha256"])
            assert sum(1 for _ in records.read_examples(str(tmp_path / shard["file"]))) == shard["num_examples"]
    assert 3 <= manifest["splits"]["val"]["num_examples"] <= 17  # 25% of 40, by hash
    assert _tree_files(tmp_path) == sorted([records.MANIFEST_FILENAME] + [
        records.shard_filename(split, i, 3) for split in records.SPLITS for i in range(3)])  # no state left behind
    assert messages[-1].startswith("wrote train ")


def test_split_of_an_example_never_changes_when_files_are_added(photo_dir, tmp_path):
    grown = tmp_path / "grown"
    shutil.copytree(photo_dir, grown)
    for i in range(30):
        Image.fromarray(image_corpus.colourful(120, 100, seed=100 + i)).save(grown / f"new{i:02d}.png")
    before = _keys_by_split(_run(_config(photo_dir, str(tmp_path / "a"), val_fraction=0.3))[0] and
                            str(tmp_path / "a"))
    after = _keys_by_split(_run(_config(str(grown), str(tmp_path / "b"), val_fraction=0.3))[0] and
                           str(tmp_path / "b"))
    for split in records.SPLITS:
        assert set(before[split]) <= set(after[split])
    assert len(before["train"]) + len(before["val"]) == 40
    assert len(after["train"]) + len(after["val"]) == 70
    assert before["val"] and after["train"]


def test_output_is_byte_identical_for_one_and_two_workers(photo_dir, tmp_path):
    _run(_config(photo_dir, str(tmp_path / "one"), num_workers=1, min_shards=4))
    _run(_config(photo_dir, str(tmp_path / "two"), num_workers=2, min_shards=4))
    names = _tree_files(tmp_path / "one")
    assert names == _tree_files(tmp_path / "two") and len(names) == 9
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "one", tmp_path / "two", names, shallow=False)
    assert mismatch == [] and errors == [] and len(match) == 9


def test_bad_files_are_skipped_with_reasons_and_the_rest_written(tmp_path):
    corpus = tmp_path / "corpus"
    expected = image_corpus.make_corpus(str(corpus))
    manifest, messages = _run(_config(str(corpus), str(tmp_path / "out"), num_workers=2, val_fraction=0.0))
    skipped = {entry["path"]: entry["reason"] for entry in manifest["skipped"]}
    assert skipped == {key: reason for key, reason in expected.items() if reason is not image_corpus.OK}
    written = set(_keys_by_split(str(tmp_path / "out"))["train"])
    assert written == {key for key, reason in expected.items() if reason is image_corpus.OK}
    assert "ünïcödé 名前.png" in written and "nested/deeper/inner.webp" in written
    assert "skipped 11:" in messages[-1] and "3 no colour" in messages[-1]


def test_rerun_reports_up_to_date_without_rewriting(photo_dir, tmp_path):
    _run(_config(photo_dir, str(tmp_path)))
    stamps = {name: os.stat(tmp_path / name).st_mtime_ns for name in _tree_files(tmp_path)}
    _, messages = _run(_config(photo_dir, str(tmp_path), num_workers=2))  # worker count does not matter
    assert messages[-1].startswith("up to date")
    assert stamps == {name: os.stat(tmp_path / name).st_mtime_ns for name in _tree_files(tmp_path)}


def test_other_flags_are_refused_without_overwrite_and_nothing_is_touched(photo_dir, tmp_path):
    _run(_config(photo_dir, str(tmp_path), min_shards=2))
    before = {name: (tmp_path / name).read_bytes() for name in _tree_files(tmp_path)}
    with pytest.raises(existing_output.OutputExistsError, match=r"differs in: image_size.*--overwrite"):
        _run(_config(photo_dir, str(tmp_path), min_shards=2, image_size=72))
    assert before == {name: (tmp_path / name).read_bytes() for name in _tree_files(tmp_path)}

    manifest, _ = _run(_config(photo_dir, str(tmp_path), image_size=72, min_shards=3, overwrite=True))
    assert manifest["image_size"] == 72
    assert len([n for n in _tree_files(tmp_path) if records.is_shard_filename(n)]) == 6  # old 2+2 shards gone
    (tmp_path / "unrelated.txt").write_text("user data")
    _run(_config(photo_dir, str(tmp_path), image_size=64, overwrite=True))
    assert (tmp_path / "unrelated.txt").read_text() == "user data"


def test_changed_input_files_are_refused_naming_what_differs(photo_dir, tmp_path):
    """Same flags, but one photo's content changed since the output was made: the output no longer shows the
    inputs, so the rerun is refused (not reported up to date) and names the inputs as what differs."""
    photos, output = tmp_path / "photos", tmp_path / "out"
    shutil.copytree(photo_dir, photos)
    _run(_config(str(photos), str(output), min_shards=2))
    before = {name: (output / name).read_bytes() for name in _tree_files(output)}
    victim = photos / sorted(os.listdir(photos))[0]
    mtime_ns = victim.stat().st_mtime_ns
    Image.fromarray(image_corpus.colourful(160, 120, seed=9)).save(victim, format="JPEG", quality=90)
    os.utime(victim, ns=(mtime_ns + 10**9, mtime_ns + 10**9))  # a new time even where the clock is coarse
    with pytest.raises(existing_output.OutputExistsError) as info:
        _run(_config(str(photos), str(output), min_shards=2))
    assert str(info.value) == (f"--output_dir={output} holds a dataset made with other flags or inputs (differs "
                               "in: input files); pass --overwrite to replace it")
    assert before == {name: (output / name).read_bytes() for name in _tree_files(output)}


def _stop_after(monkeypatch, images):
    """Makes the (inline, one-worker) conversion stop as SIGTERM would once `images` images are prepared."""
    prepare = example_prep.prepare_task
    calls = []

    def prepare_then_stop(task):
        calls.append(task)
        if len(calls) > images:
            raise worker_pool.Stopped(signal.SIGTERM)
        return prepare(task)

    monkeypatch.setattr(example_prep, "prepare_task", prepare_then_stop)


def test_resume_rewrites_a_finished_shard_whose_bytes_changed(photo_dir, tmp_path, monkeypatch):
    """An interrupted run leaves finished shards with their records in the state folder; the rerun reuses only those
    whose bytes still match their record, so a shard changed since (a bad disk, a stray edit) is written again and
    the output is byte-identical to an uninterrupted run."""
    config = dict(num_shards=4, val_fraction=0.0, min_shards=1)
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    _run(_config(photo_dir, str(reference), **config))

    with monkeypatch.context() as patch:
        _stop_after(patch, 25)  # 4 shards of 10: two finished, the third interrupted
        with pytest.raises(worker_pool.Stopped):
            _run(_config(photo_dir, str(resumed), **config))
    finished = sorted(n for n in _tree_files(resumed) if records.is_shard_filename(n))
    assert finished == [records.shard_filename("train", i, 4) for i in range(2)]
    state = sorted(os.listdir(resumed / existing_output.STATE_DIRNAME))
    assert state == sorted([existing_output.PLAN_FILENAME] + [f"{n}.json" for n in finished])
    tampered = resumed / finished[0]
    data = bytearray(tampered.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size: only the checksum can tell
    tampered.write_bytes(bytes(data))
    untouched_stamp = os.stat(resumed / finished[1]).st_mtime_ns

    _, messages = _run(_config(photo_dir, str(resumed), **config))
    assert "resuming: reusing 1 finished shards" in messages
    assert os.stat(resumed / finished[1]).st_mtime_ns == untouched_stamp  # the intact one was kept as it was
    names = _tree_files(reference)
    assert names == _tree_files(resumed)
    assert filecmp.cmpfiles(reference, resumed, names, shallow=False)[0] == names


def _mean_error(data_dir, reference_dir):
    """Mean absolute difference of a dataset's colour images from those of a lossless one of the same photos."""
    def images(directory):
        manifest = records.read_manifest(directory)
        paths = [path for split in records.SPLITS for path in records.shard_paths(directory, manifest, split)]
        return {key: rgb.astype(int) for path in paths for key, _, rgb in records.read_examples(path)}

    got, lossless = images(data_dir), images(reference_dir)
    assert sorted(got) == sorted(lossless)
    return np.mean([np.abs(got[key] - lossless[key]).mean() for key in got])


def test_jpeg_quality_trades_size_for_fidelity(photo_dir, tmp_path):
    def dataset(name, **overrides):
        manifest, _ = _run(_config(photo_dir, str(tmp_path / name), min_shards=1, **overrides))
        return sum(shard["bytes"] for split in manifest["splits"].values() for shard in split["shards"]), manifest

    dataset("png", encoding="png")
    low_bytes, low = dataset("q30", jpeg_quality=30)
    high_bytes, high = dataset("q95", jpeg_quality=95)
    assert (low["flags"]["jpeg_quality"], high["flags"]["jpeg_quality"]) == (30, 95)
    assert low_bytes < 0.6 * high_bytes, (low_bytes, high_bytes)
    low_error, high_error = (_mean_error(str(tmp_path / name), str(tmp_path / "png")) for name in ("q30", "q95"))
    assert low_error > 1.5 * high_error, (low_error, high_error)


def _help_sections(text):
    """{section: {flag name: its help block}} of absl's --helpfull output."""
    sections, section, flag = {}, None, None
    for line in text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            section, flag = line[:-1], None
            sections[section] = {}
        elif section is not None and (match := re.match(r"^  --(?:\[no\])?(\w+):", line)):
            flag = match.group(1)
            sections[section][flag] = line
        elif section is not None and flag is not None and line.startswith("    "):
            sections[section][flag] += "\n" + line
    return sections


def test_make_tfrecords_help_lists_every_flag_of_the_config_with_its_default():
    """The script's flags are ConversionConfig's flag fields, with the dataclass's defaults (--help: the script's
    own flags, named by its path)."""
    result = run_script("data_prep/make_tfrecords.py", "--help", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    [flags_] = [flags_ for section, flags_ in _help_sections(result.stdout).items()
                if section.endswith("make_tfrecords.py")]
    fields = flag_config.flag_fields(conversion_config.ConversionConfig)
    assert set(flags_) == {flag_config.flag_name(field) for field in fields.values()} >= {
        "input_dir", "output_dir", "runner", "beam_pipeline_options"}
    assert "progress_interval_s" not in flags_
    defaults = conversion_config.ConversionConfig()
    for name, field in fields.items():
        default = getattr(defaults, name)
        shown = str(default).lower() if isinstance(default, bool) else str(default).replace("()", "[]")
        assert f"(default: '{shown}')" in flags_[flag_config.flag_name(field)], flags_[flag_config.flag_name(field)]


def test_worker_processes_load_the_script_without_tensorflow():
    """A spawned worker runs the script again as __mp_main__ (multiprocessing's spawn) and unpickles the pool's
    initializer and its task function, importing their modules: none of it may import TensorFlow (each worker's
    memory and start-up time; with the initializer in colorgan.conversion each worker held about 580 MB)."""
    script = os.path.join(REPO_ROOT, "data_prep", "make_tfrecords.py")
    unpickled = {worker_pool.WorkerPool(2).initializer.__module__, example_prep.prepare_task.__module__}
    code = ("import importlib, runpy, sys; runpy.run_path(sys.argv[1], run_name='__mp_main__'); "
            "[importlib.import_module(name) for name in sys.argv[2:]]; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))")
    result = subprocess.run([sys.executable, "-c", code, script, *sorted(unpickled)], capture_output=True,
                            text=True, timeout=120, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_validation_lists_every_bad_flag_one_line_each(tmp_path):
    config = conversion_config.ConversionConfig(
        output_dir=str(tmp_path / "out"), input_dirs=("/no/such/dir",), image_size=4, resize="zoom", encoding="gif",
        jpeg_quality=0, val_fraction=1.0, num_workers=-1, beam_pipeline_options="runner=DirectRunner")
    problems = [
        "--image_size=4: must be >= 8",
        "--resize=zoom: expected one of crop, stretch, pad",
        "--encoding=gif: expected one of png, jpeg",
        "--jpeg_quality=0: must be in 1..100",
        "--val_fraction=1.0: must be in [0, 1)",
        "--num_workers=-1: must be >= 0",
        "--input_dir=/no/such/dir: not a directory",
        "--beam_pipeline_options=runner=DirectRunner: only used with --runner=beam",
    ]
    assert config.validate() == problems
    with pytest.raises(conversion_config.ConfigError) as info:
        conversion.run(config)
    assert info.value.problems == problems and "\n" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_flags_give_the_config_with_comma_lists_of_input_folders(tmp_path):
    """An --input_dir value is a folder, or else a comma list of folders; a folder named with a comma stays one."""
    for name in ("a", "c", "d,e"):
        (tmp_path / name).mkdir()
    values = flags.FlagValues()
    flag_config.define_flags(conversion_config.ConversionConfig, values)
    values(["prog", f"--input_dir={tmp_path / 'a'},{tmp_path / 'c'}", f"--input_dir={tmp_path / 'd,e'}",
            "--output_dir=out", "--image_size=64", "--runner=beam", "--nooverwrite"])
    assert conversion_config.config_from_flags(values) == conversion_config.ConversionConfig(
        output_dir="out", input_dirs=(str(tmp_path / "a"), str(tmp_path / "c"), str(tmp_path / "d,e")),
        image_size=64, runner="beam")


def _copy_to_storage(local_dir, target_dir):
    """A flat folder of files copied to a folder of any colorgan.core.storage scheme."""
    storage.makedirs(target_dir)
    for name in os.listdir(local_dir):
        storage.write_atomic(f"{target_dir}/{name}", pathlib.Path(local_dir, name).read_bytes())


def test_a_conversion_on_ram_paths_writes_the_bytes_of_a_local_one(photo_dir, tmp_path, monkeypatch):
    """Every path through colorgan.core.storage: an output on ram:// (TensorFlow's in-memory file system, which stands
    for gs:// here) holds the shards and manifest a local output holds, byte for byte, from local or ram:// photos;
    and nothing lands in a local folder named "ram:" (what os.makedirs("ram://x") would make)."""
    monkeypatch.chdir(tmp_path)
    root = f"ram://test_conversion_{uuid.uuid4().hex}"
    _copy_to_storage(photo_dir, f"{root}/photos")
    local, _ = _run(_config(photo_dir, str(tmp_path / "local"), min_shards=2, num_workers=2))
    names = sorted(os.listdir(tmp_path / "local"))
    from_local, messages = _run(_config(photo_dir, f"{root}/from_local", min_shards=2, num_workers=2))
    assert f"--output_dir={root}/from_local is not locked (object stores have no exclusive create): no other run " \
           "may write there meanwhile" in messages
    from_ram, _ = _run(_config(f"{root}/photos", f"{root}/from_ram", min_shards=2, num_workers=2))
    assert from_local == local
    assert from_ram == {**local, "flags": {**local["flags"], "input_dir": [f"{root}/photos"]},
                        "source": {**local["source"], "fingerprint": from_ram["source"]["fingerprint"]}}
    for output in ("from_local", "from_ram"):
        assert storage.listdir(f"{root}/{output}") == names  # shards and manifest, no state folder, no lock
        for name in names:
            if name != records.MANIFEST_FILENAME:
                assert storage.read_bytes(f"{root}/{output}/{name}") == (tmp_path / "local" / name).read_bytes()
    assert storage.read_bytes(f"{root}/from_local/{records.MANIFEST_FILENAME}") == (
        tmp_path / "local" / records.MANIFEST_FILENAME).read_bytes()
    _, messages = _run(_config(f"{root}/photos", f"{root}/from_ram", min_shards=2))
    assert messages[-1].startswith("up to date")
    assert sorted(os.listdir(tmp_path)) == ["local"]


def test_shard_size_target_sets_the_shard_count(photo_dir, tmp_path):
    manifest, _ = _run(_config(photo_dir, str(tmp_path), val_fraction=0.0, min_shards=1, shard_size_mb=0.05))
    shards = manifest["splits"]["train"]["shards"]
    total = sum(s["bytes"] for s in shards)
    assert 2 <= len(shards) <= 40
    assert abs(len(shards) - total / (0.05 * 2**20)) <= max(2, 0.3 * len(shards))  # sampled estimate


def test_tfds_source_through_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=24):
        manifest, _ = _run(conversion_config.ConversionConfig(
            output_dir=str(tmp_path), tfds_name="tf_flowers", tfds_split="train", image_size=16, min_size=1,
            num_workers=2, min_shards=2, val_fraction=0.25, progress_interval_s=3600))
    assert manifest["source"]["kind"] == "tfds" and manifest["flags"]["tfds_name"] == "tf_flowers"
    total = manifest["splits"]["train"]["num_examples"] + manifest["splits"]["val"]["num_examples"]
    assert total + len(manifest["skipped"]) == 24 and total >= 20
    keys = _keys_by_split(str(tmp_path))
    assert all(key.startswith("tf_flowers/train/") for split in keys.values() for key in split)
    assert sorted(int(k.rsplit("/", 1)[1]) for split in keys.values() for k in split) == sorted(
        set(range(24)) - {int(s["path"].rsplit("/", 1)[1]) for s in manifest["skipped"]})


@pytest.mark.parametrize("overrides, message", [
    (dict(image_size=4), "--image_size=4"),
    (dict(val_fraction=1.0), "--val_fraction=1.0"),
    (dict(encoding="gif"), "--encoding=gif"),
    (dict(input_dirs=("/no/such/dir",)), "--input_dir=/no/such/dir: not a directory"),
    (dict(tfds_name="tf_flowers"), "exactly one of --input_dir or --tfds_name"),
])
def test_bad_config_is_one_clear_line(photo_dir, tmp_path, overrides, message):
    with pytest.raises(ValueError) as info:
        conversion.run(_config(photo_dir, str(tmp_path), **overrides))
    assert message in str(info.value) and "\n" not in str(info.value)


LOCK = ".make_tfrecords.lock"  # spelled out, not conversion.LOCK_FILENAME: a renamed lock file is a format change


def _write_lock(output_dir, pid, host):
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, LOCK), "w", encoding="utf-8") as f:
        json.dump({"pid": pid, "host": host}, f)


def test_a_live_holders_lock_is_refused_and_a_dead_ones_is_taken_over(photo_dir, tmp_path, live_pid):
    import socket

    host = socket.gethostname()
    _write_lock(tmp_path, live_pid, host)
    with pytest.raises(ValueError) as info:
        _run(_config(photo_dir, str(tmp_path)))
    message = str(info.value)
    assert f"pid {live_pid} on host {host}" in message and str(tmp_path / LOCK) in message and "\n" not in message
    assert _tree_files(tmp_path) == [LOCK]  # nothing else written, the holder's lock left alone

    dead = dead_pid()
    _write_lock(tmp_path, dead, host)
    manifest, messages = _run(_config(photo_dir, str(tmp_path)))
    assert any(f"taking over the lock {tmp_path / LOCK} of pid {dead} on host {host}" in m for m in messages)
    assert LOCK not in _tree_files(tmp_path)  # released, and never part of the dataset
    assert sorted(s["file"] for split in manifest["splits"].values() for s in split["shards"]) == [
        n for n in _tree_files(tmp_path) if n != records.MANIFEST_FILENAME]


def test_another_hosts_lock_is_refused_unless_break_lock(photo_dir, tmp_path):
    _write_lock(tmp_path, 1, "some-other-host")
    with pytest.raises(ValueError, match=r"pid 1 on host some-other-host.*--break_lock"):
        _run(_config(photo_dir, str(tmp_path)))
    assert _tree_files(tmp_path) == [LOCK]
    _, messages = _run(_config(photo_dir, str(tmp_path), break_lock=True))
    assert any(f"breaking the lock {tmp_path / LOCK} of pid 1 on host some-other-host" in m for m in messages)
    assert LOCK not in _tree_files(tmp_path)


def test_the_lock_is_released_when_a_run_fails(photo_dir, tmp_path):
    _run(_config(photo_dir, str(tmp_path), min_shards=2))
    with pytest.raises(existing_output.OutputExistsError):
        _run(_config(photo_dir, str(tmp_path), min_shards=3))
    assert LOCK not in _tree_files(tmp_path)


WEB_APP_MANIFEST = '{"name": "My app", "icons": [{"src": "icon.png"}], "start_url": "/"}\n'


@pytest.mark.parametrize("content, reason", [
    (WEB_APP_MANIFEST, "a JSON object without format_version"),
    ("[1, 2, 3]\n", "a JSON array"),
    ("42\n", "a JSON number"),
    ('{"name": "My app", "icons": [', "not valid JSON"),
    (b"\xff\xfe\x00binary", "not valid JSON"),
    (None, "a directory"),
])
def test_overwrite_never_replaces_a_manifest_this_tool_did_not_write(photo_dir, tmp_path, content, reason):
    path = tmp_path / records.MANIFEST_FILENAME
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    for overwrite in (False, True):
        with pytest.raises(existing_output.OutputExistsError) as info:
            _run(_config(photo_dir, str(tmp_path), overwrite=overwrite))
        message = str(info.value)
        assert f"holds {path}, which this tool did not write ({reason}" in message and "\n" not in message
        assert "--overwrite never replaces it" in message
    assert path.is_dir() if content is None else path.read_bytes() == (
        content if isinstance(content, bytes) else content.encode())
    assert _tree_files(tmp_path) == [records.MANIFEST_FILENAME]


def _damage(path, how):
    text = path.read_text()
    manifest = json.loads(text)
    if how == "truncated":
        path.write_text(text[:len(text) // 2])
    elif how == "array":
        path.write_text("[]")
    elif how == "splits":
        manifest["splits"] = 3
        path.write_text(json.dumps(manifest))
    elif how == "shard entry":
        del manifest["splits"]["train"]["shards"][0]["bytes"]
        path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("how", ["truncated", "array", "splits", "shard entry"])
def test_a_damaged_manifest_of_ours_is_named_and_replaced_only_with_overwrite(photo_dir, tmp_path, how):
    """Ours: the marker (format_version) is there, or the file cannot be identified (not JSON, not an object) in a
    folder that holds our shards or state folder."""
    reference, _ = _run(_config(photo_dir, str(tmp_path), min_shards=2))
    path = tmp_path / records.MANIFEST_FILENAME
    _damage(path, how)
    damaged = path.read_bytes()
    with pytest.raises(existing_output.OutputExistsError) as info:
        _run(_config(photo_dir, str(tmp_path), min_shards=2))
    message = str(info.value)
    assert f"holds a damaged dataset manifest {path} (" in message and "pass --overwrite" in message
    assert "\n" not in message and path.read_bytes() == damaged
    manifest, _ = _run(_config(photo_dir, str(tmp_path), min_shards=2, overwrite=True))
    assert manifest == reference == records.read_manifest(str(tmp_path))


def test_a_non_utf8_output_dir_is_refused_naming_the_flag(photo_dir, tmp_path):
    output_dir = os.fsdecode(os.fsencode(str(tmp_path)) + b"/out\xff")
    with pytest.raises(ValueError) as info:
        _run(_config(photo_dir, output_dir))
    assert str(info.value).startswith(f"--output_dir={tmp_path}/out\\xff: not valid UTF-8")
    assert os.listdir(tmp_path) == []
