"""Tests of colorize --runner=beam (colorgan.inference.beam_colorize) against the local run, on a folder of good and
bad photos: byte for byte at a batch size of 1, within 1 level batched, the same files reported, and a rerun that
skips what is done. Beam runs on the FnApiRunner with 2 worker processes, as data prep's Beam test does."""

import importlib.util
import json

import image_corpus
import numpy as np
import pytest
import run_dirs
import tensorflow as tf
import tifffile
from conftest import BEAM_MULTI_PROCESSING as MULTI_PROCESSING
from conftest import skip_unless_ci
from PIL import Image

from colorgan.inference import colorize_job


@pytest.fixture(autouse=True)
def _needs_beam():
    if importlib.util.find_spec("apache_beam") is None:
        skip_unless_ci("apache-beam is not installed (pip install -e '.[test]' installs it)")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Photos of several sizes and kinds, in nested folders, with the bad files the local run reports."""
    root = tmp_path_factory.mktemp("beam_colorize") / "photos"
    (root / "sub").mkdir(parents=True)
    for index, (width, height) in enumerate([(120, 90), (64, 100), (200, 50), (77, 77), (96, 64)]):
        Image.fromarray(image_corpus.colourful(width, height, seed=index)).save(root / f"colour{index}.jpg", quality=95)
    Image.fromarray(image_corpus.colourful(80, 60, seed=9)).convert("L").save(root / "sub" / "gray.png")
    tifffile.imwrite(root / "sub" / "scan16.tif",
                     (np.linspace(0, 65535, 70 * 50).reshape(50, 70)).astype(np.uint16))
    (root / "notes.jpg").write_text("not a photo")
    good = (root / "colour0.jpg").read_bytes()
    (root / "sub" / "truncated.jpg").write_bytes(good[:len(good) // 2])
    (root / "empty.png").write_bytes(b"")
    Image.new("L", (400, 300)).save(root / "huge.png")
    return root


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory):
    return run_dirs.make_run(tmp_path_factory.mktemp("beam_lab_run"), "unet")[0]


def _run(model, photos, output_dir, **settings):
    config = colorize_job.ColorizeConfig(model=str(model), inputs=(str(photos),), output_dir=str(output_dir),
                                         format="png", max_pixels=100_000, **settings)
    messages = []
    return colorize_job.run(config, log=messages.append), messages


def _outputs(root):
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def _skipped(messages):
    return sorted(line for line in messages if line.startswith("colorize: skipped"))


def _max_level_difference(first, second):
    """The largest difference between two PNGs' pixels, in 8-bit levels (both read as 16 bits: v * 257 for 8-bit)."""
    first, second = (tf.io.decode_png(path.read_bytes(), dtype=tf.uint16).numpy().astype(np.int64)
                     for path in (first, second))
    return float(np.abs(first - second).max()) / 257.0


def test_beam_writes_the_local_runs_bytes_and_reports_the_same_files(lab_run, photos, tmp_path):
    local, local_messages = _run(lab_run, photos, tmp_path / "local")
    beam, beam_messages = _run(lab_run, photos, tmp_path / "beam", runner="beam",
                               beam_pipeline_options=MULTI_PROCESSING)
    assert (local.colorized, local.done_before, len(local.failed)) == (7, 0, 4)
    assert sorted(beam.failed) == sorted(local.failed)
    assert sorted(path.rsplit("/", 1)[-1] for path, _ in local.failed) == [
        "empty.png", "huge.png", "notes.jpg", "truncated.jpg"]
    assert _skipped(beam_messages) == _skipped(local_messages)
    outputs = _outputs(tmp_path / "local")
    assert len(outputs) == 7 and _outputs(tmp_path / "beam") == outputs  # byte for byte, and nothing else left
    assert beam_messages[-1] == local_messages[-1].replace("/local", "/beam")
    # A rerun skips what is done, as the local run's does, and rewrites nothing.
    before = {path: path.stat().st_mtime_ns for path in (tmp_path / "beam").rglob("*")}
    again, _ = _run(lab_run, photos, tmp_path / "beam", runner="beam", beam_pipeline_options=MULTI_PROCESSING)
    assert (again.colorized, again.done_before, len(again.failed)) == (0, 7, 4)
    assert {path: path.stat().st_mtime_ns for path in (tmp_path / "beam").rglob("*")} == before


def test_batched_runs_stay_within_one_level_of_single_calls(lab_run, photos, tmp_path):
    single, _ = _run(lab_run, photos, tmp_path / "single")
    for runner, options in (("local", ""), ("beam", MULTI_PROCESSING)):
        batched, _ = _run(lab_run, photos, tmp_path / runner, runner=runner, batch_size=4,
                          beam_pipeline_options=options)
        assert (batched.colorized, sorted(batched.failed)) == (single.colorized, sorted(single.failed))
        names = sorted(_outputs(tmp_path / "single"))
        assert sorted(_outputs(tmp_path / runner)) == names
        for name in names:
            assert _max_level_difference(tmp_path / "single" / name, tmp_path / runner / name) <= 1.0, name


def test_hints_sidecars_and_photos_without_hints_share_batches(photos, tmp_path):
    """A hints model: photos with a sidecar and photos without share a batch (one generator call for each kind);
    a bad sidecar reports only its photo."""
    hints_run = run_dirs.make_run(tmp_path / "hints_run", "unet", hints=True)[0]
    folder = tmp_path / "hinted"
    folder.mkdir()
    for index in range(5):
        Image.fromarray(image_corpus.colourful(90, 60, seed=index)).convert("L").save(folder / f"photo{index}.png")
    for index, colour in ((0, "#2a5caa"), (2, "#c83"), (3, "#00ff00")):
        (folder / f"photo{index}.hints.json").write_text(json.dumps({"points": [{"x": 10, "y": 12, "color": colour}]}))
    (folder / "photo4.hints.json").write_text('{"points": [')
    single, single_messages = _run(hints_run, folder, tmp_path / "single")
    assert (single.colorized, [path.rsplit("/", 1)[-1] for path, _ in single.failed]) == (4, ["photo4.png"])
    assert sum("(1 hints)" in line for line in single_messages) == 3
    for runner, options in (("local", ""), ("beam", MULTI_PROCESSING)):
        batched, messages = _run(hints_run, folder, tmp_path / runner, runner=runner, batch_size=4,
                                 beam_pipeline_options=options)
        assert sorted(batched.failed) == sorted(single.failed) and _skipped(messages) == _skipped(single_messages)
        for name in sorted(_outputs(tmp_path / "single")):
            assert _max_level_difference(tmp_path / "single" / name, tmp_path / runner / name) <= 1.0, name
