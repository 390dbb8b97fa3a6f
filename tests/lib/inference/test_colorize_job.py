"""Tests of colorgan.inference.colorize_job in process: which photos a job finds and how it reports what it cannot
read (launch/colorize.py's own tests run the tool as a process: tests/launch/test_colorize.py)."""

import os

import pytest
from PIL import Image

from colorgan.inference import colorize_job


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

