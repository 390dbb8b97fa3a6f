"""Tests of --runner=beam (colorgan.data.beam_conversion): the output of --runner=local byte for byte, bad files
included, under Beam's DirectRunner; a rerun after a failed pipeline reuses its finished shards."""

import filecmp
import importlib
import importlib.util
import os
import pathlib
import uuid

import image_corpus
import pytest
from conftest import BEAM_MULTI_PROCESSING as MULTI_PROCESSING
from conftest import skip_unless_ci

from colorgan.core import storage
from colorgan.data import conversion
from colorgan.data import conversion_config
from colorgan.data import records

# In this process: a test's monkeypatch reaches the workers.
IN_MEMORY = "runner=FnApiRunner,direct_running_mode=in_memory,direct_num_workers=1"
NUM_SHARDS = 3  # per split: 6 units of Beam work


@pytest.fixture
def beam_conversion():
    if importlib.util.find_spec("apache_beam") is None:
        skip_unless_ci("apache-beam is not installed (pip install -e '.[test]' installs it)")
    return importlib.import_module("colorgan.data.beam_conversion")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, photo_dir):
    """Real photos and the awkward-file corpus: every skip reason, nested folders, links."""
    corpus = tmp_path_factory.mktemp("beam") / "corpus"
    image_corpus.make_corpus(str(corpus))
    return (photo_dir, str(corpus))


def _config(inputs, output, **overrides):
    return conversion_config.ConversionConfig(**{
        **dict(input_dirs=tuple(inputs), output_dir=str(output), image_size=64, num_shards=NUM_SHARDS,
               val_fraction=0.3, num_workers=2, progress_interval_s=3600), **overrides})


def _run(config):
    messages = []
    return conversion.run(config, log=messages.append), messages


def _same_files(first, second):
    names = sorted(os.listdir(first))
    assert names == sorted(os.listdir(second))
    assert filecmp.cmpfiles(first, second, names, shallow=False)[0] == names
    return names


def test_beam_output_equals_local_output_byte_for_byte(beam_conversion, inputs, tmp_path):
    local, _ = _run(_config(inputs, tmp_path / "local"))
    beam, messages = _run(_config(inputs, tmp_path / "beam", runner="beam", beam_pipeline_options=MULTI_PROCESSING))
    assert f"beam: writing {2 * NUM_SHARDS} shards ({MULTI_PROCESSING})" in messages
    names = _same_files(tmp_path / "local", tmp_path / "beam")  # the manifest included
    assert len(names) == 2 * NUM_SHARDS + 1 and beam == local
    assert {entry["reason"] for entry in local["skipped"]} == {
        "empty file", "not an image", "corrupt", "unreadable", "too small", "too many pixels", "no colour",
        "not an image file name", "symlink loop"}


def test_a_rerun_after_a_failed_pipeline_reuses_its_finished_shards(beam_conversion, inputs, tmp_path, monkeypatch):
    _run(_config(inputs, tmp_path / "local"))
    output, calls = tmp_path / "beam", tmp_path / "calls"
    calls.mkdir()
    config = _config(inputs, output, runner="beam", beam_pipeline_options=IN_MEMORY)
    write_shard, calls_dir = beam_conversion.write_shard, str(calls)

    def fail_the_last_shard(task):  # counted in files: Beam runs a copy of this function
        pathlib.Path(calls_dir, uuid.uuid4().hex).touch()
        if len(os.listdir(calls_dir)) >= 2 * NUM_SHARDS:
            raise RuntimeError("worker lost")
        return write_shard(task)

    with monkeypatch.context() as patch:
        patch.setattr(beam_conversion, "write_shard", fail_the_last_shard)
        with pytest.raises(Exception, match="worker lost"):
            _run(config)
    assert not (output / records.MANIFEST_FILENAME).exists()
    finished = sorted(name for name in os.listdir(output) if records.is_shard_filename(name))
    assert len(finished) == 2 * NUM_SHARDS - 1
    stamps = {name: os.stat(output / name).st_mtime_ns for name in finished}

    _, messages = _run(config)
    assert f"resuming: reusing {len(finished)} finished shards" in messages
    assert f"beam: writing 1 shards ({IN_MEMORY})" in messages
    assert stamps == {name: os.stat(output / name).st_mtime_ns for name in finished}
    _same_files(tmp_path / "local", output)


def test_beam_refuses_what_its_workers_cannot_read_naming_the_flag(beam_conversion, tmp_path):
    root = f"ram://test_beam_{uuid.uuid4().hex}"
    storage.write_atomic(f"{root}/photos/a.jpg", b"x")
    config = conversion_config.ConversionConfig(output_dir=f"{root}/out", input_dirs=(f"{root}/photos",), runner="beam")
    assert config.validate() == [
        f"--output_dir={root}/out: ram:// lives in one process, which Beam's workers are not",
        f"--input_dir={root}/photos: ram:// lives in one process, which Beam's workers are not"]
    config = conversion_config.ConversionConfig(output_dir=str(tmp_path), tfds_name="tf_flowers", runner="beam")
    assert config.validate() == ["--runner=beam: converts --input_dir folders, not --tfds_name"]


def test_pipeline_options_are_read_as_tfds_build_reads_them(beam_conversion):
    options = beam_conversion.pipeline_options(MULTI_PROCESSING).get_all_options()
    assert (options["runner"], options["direct_running_mode"], options["direct_num_workers"]) == (
        "FnApiRunner", "multi_processing", 2)
