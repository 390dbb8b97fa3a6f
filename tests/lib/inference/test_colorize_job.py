"""Tests of colorgan.inference.colorize_job in process: which photos a job finds and how it reports what it cannot
read (launch/colorize.py's own tests run the tool as a process: tests/launch/test_colorize.py)."""

import os

import image_corpus
import numpy as np
import pytest
import run_dirs
from PIL import Image

from colorgan.inference import colorize_job
from colorgan.inference import loading


def test_an_unreadable_subfolder_is_reported_not_skipped_silently(tmp_path, monkeypatch):
    """os.walk skips a folder it cannot list unless told; tests run as root, whom permissions do not stop, so the
    listing itself fails here."""
    (tmp_path / "ok").mkdir()
    (tmp_path / "locked").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "ok" / "a.png")
    scandir = os.scandir

    def failing_scandir(path):
        if os.path.basename(path) == "locked":
            raise PermissionError(13, "Permission denied", path)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", failing_scandir)
    reported = []
    sources = colorize_job.list_sources((str(tmp_path),), str(tmp_path / "out"),
                                        on_unreadable=lambda *failure: reported.append(failure))
    assert sources == [(str(tmp_path / "ok" / "a.png"), os.path.join("ok", "a"))]
    assert reported == [(str(tmp_path / "locked"), "unreadable folder: Permission denied")]


def test_bad_runner_settings_are_one_line_naming_the_flag_before_any_work(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    base = dict(model=str(tmp_path / "no_model"), inputs=(str(tmp_path / "a.png"),), output_dir=str(tmp_path / "out"))
    for settings, message in (
            (dict(batch_size=0), "--batch_size=0: must be at least 1"),
            (dict(runner="spark"), "--runner=spark: expected one of local, beam"),
            (dict(beam_pipeline_options="runner=FnApiRunner"),
             "--beam_pipeline_options=runner=FnApiRunner: only used with --runner=beam")):
        with pytest.raises(colorize_job.ColorizeError) as error:
            colorize_job.run(colorize_job.ColorizeConfig(**base, **settings), log=lambda line: None)
        assert str(error.value) == message
    assert not (tmp_path / "out").exists()


def test_a_batch_of_photos_of_any_sizes_is_one_generator_call_per_kind(tmp_path):
    """Photos of three sizes share one call of the model's chroma; each photo's chroma is its own (within float
    rounding of a call of its own)."""
    colorizer = loading.Colorizer.load(run_dirs.make_run(tmp_path / "run", "unet")[0])
    config = colorize_job.ColorizeConfig(model="", inputs=(), output_dir=str(tmp_path / "out"))
    prepared = []
    for index, size in enumerate([(50, 30), (40, 64), (33, 33)]):
        path = tmp_path / f"photo{index}.png"
        Image.fromarray(image_corpus.colourful(*size, seed=index)).save(path)
        task = colorize_job.PhotoTask(str(path), f"photo{index}", str(tmp_path / "out" / f"photo{index}.png"), "PNG")
        prepared.append(colorize_job.prepare(task, config, colorizer.stages, colorizer.takes_hints))
    calls = []
    chroma = colorizer.chroma
    colorizer.chroma = lambda canvas, canvas_hints=None: calls.append(canvas.shape) or chroma(canvas, canvas_hints)
    batched = colorize_job.chroma_for(colorizer, prepared)
    assert calls == [(3, 32, 32, 1)]
    for item, ab in zip(prepared, batched):
        assert ab.shape == (1, 32, 32, 2)
        np.testing.assert_allclose(ab, chroma(item.canvas), atol=0.05)  # CIE units: far below one level
