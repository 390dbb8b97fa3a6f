"""Tests of colorgan.inference.colorize_job in process: which photos a job finds and how it reports what it cannot
read (launch/colorize.py's own tests run the tool as a process: tests/launch/test_colorize.py)."""

import os

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
