"""Tests of colorgan.data.sources: folder walking, keys, ordering, fingerprints and the split hash."""

import os
import uuid

import pytest

from colorgan.core import storage
from colorgan.data import sources


def _touch(path, data=b"x"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def test_keys_are_relative_posix_paths_and_order_is_by_hash(tmp_path):
    for rel in ["b.jpg", "a/c.PNG", "a/d/e.webp", "notes.md"]:
        _touch(str(tmp_path / rel))
    listing = sources.FolderSource([str(tmp_path)]).list()
    keys = [c.key for c in listing.candidates]
    assert sorted(keys) == ["a/c.PNG", "a/d/e.webp", "b.jpg"]
    assert keys == sorted(keys, key=sources.key_fraction)
    assert [c.locator for c in listing.candidates] == [str(tmp_path / k) for k in keys]
    assert listing.skipped == [{"path": "notes.md", "reason": "not an image file name",
                                "detail": "extension not recognised"}]


def test_several_roots_prefix_keys_with_the_folder_name(tmp_path):
    _touch(str(tmp_path / "cats" / "x.jpg"))
    _touch(str(tmp_path / "dogs" / "x.jpg"))
    listing = sources.FolderSource([str(tmp_path / "cats"), str(tmp_path / "dogs")]).list()
    assert sorted(c.key for c in listing.candidates) == ["cats/x.jpg", "dogs/x.jpg"]
    with pytest.raises(ValueError, match="distinct names"):
        sources.FolderSource([str(tmp_path / "cats"), str(tmp_path / "cats" / ".." / "cats")])


def test_symlink_loop_is_listed_once_and_skipped(tmp_path):
    _touch(str(tmp_path / "a" / "x.jpg"))
    os.symlink("..", tmp_path / "a" / "up")
    listing = sources.FolderSource([str(tmp_path)]).list()
    assert [c.key for c in listing.candidates] == ["a/x.jpg"]
    assert [(s["path"], s["reason"]) for s in listing.skipped] == [("a/up", "symlink loop")]


def test_fingerprint_changes_with_content_but_not_with_order_of_listing(tmp_path):
    _touch(str(tmp_path / "a.jpg"))
    _touch(str(tmp_path / "b.jpg"))
    first = sources.FolderSource([str(tmp_path)]).list().fingerprint
    assert sources.FolderSource([str(tmp_path)]).list().fingerprint == first
    _touch(str(tmp_path / "b.jpg"), b"longer content")
    assert sources.FolderSource([str(tmp_path)]).list().fingerprint != first


def test_key_fraction_is_stable_and_uniform():
    assert sources.key_fraction("photos/0001.jpg") == sources.key_fraction("photos/0001.jpg")
    values = [sources.key_fraction(f"img{i}.jpg") for i in range(4000)]
    assert all(0 <= v < 1 for v in values)
    assert 0.08 < sum(v < 0.1 for v in values) / len(values) < 0.12


def test_folders_on_other_file_systems_are_listed_like_local_ones(tmp_path):
    """ram:// (TensorFlow's in-memory file system) stands for gs:// here: listed through colorgan.core.storage."""
    root = f"ram://test_sources_{uuid.uuid4().hex}/photos"
    for rel in ["b.jpg", "a/c.PNG", "a/d/e.webp", "notes.md"]:
        _touch(str(tmp_path / rel))
        storage.makedirs(os.path.dirname(f"{root}/{rel}"))  # ram:// lists only folders made as such
        storage.write_atomic(f"{root}/{rel}", b"x")
    local, remote = sources.FolderSource([str(tmp_path)]).list(), sources.FolderSource([root]).list()
    assert [c.key for c in remote.candidates] == [c.key for c in local.candidates] and len(local.candidates) == 3
    assert [c.locator for c in remote.candidates] == [f"{root}/{c.key}" for c in local.candidates]
    assert remote.skipped == local.skipped
    with pytest.raises(ValueError, match=f"--input_dir={root}/missing: not a directory"):
        sources.FolderSource([f"{root}/missing"])
