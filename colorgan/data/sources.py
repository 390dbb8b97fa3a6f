"""Where conversion reads images from: folders of image files, or an already-prepared TFDS dataset.

A source lists candidates cheaply (no pixel is decoded), fingerprints them so a finished output can be recognised as
up to date, and later streams each candidate's payload (a path, or encoded bytes) to the workers in order.
"""

import dataclasses
import hashlib
import os

from colorgan.core import image_files
from colorgan.core import storage


@dataclasses.dataclass(frozen=True)
class Candidate:
    key: str  # stable identity: path relative to its input root, or "tfds_name/split/index"
    locator: object  # what `payloads` needs to fetch it: an absolute path or a TFDS index


@dataclasses.dataclass
class Listing:
    candidates: list  # in writing order
    skipped: list  # [{"path", "reason", "detail"}] found while listing
    fingerprint: str  # changes whenever any candidate's content may have changed


def key_fraction(key):
    """A stable pseudo-random number in [0, 1) per key: it decides the split and the writing order."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


class FolderSource:
    """Image files under one or more root folders (local or any colorgan.core.storage scheme), nested folders and
    symlinks included.

    Candidates are ordered by key hash, so shards mix all classes even when folders are sorted by class.
    """

    def __init__(self, roots):
        if not roots:
            raise ValueError("--input_dir: no input folder given")
        problems = folder_problems(roots)
        if problems:
            raise ValueError("; ".join(problems))
        self.roots = list(roots)
        self._prefixes = [_name(root) for root in roots] if len(roots) > 1 else [""]

    def describe(self):
        return {"input_dir": self.roots}

    def list(self):
        found = []
        skipped = []
        for root, prefix in zip(self.roots, self._prefixes):
            self._walk(root, prefix, found, skipped)
        found.sort(key=lambda item: item[0].key)
        fingerprint = hashlib.sha256()
        for candidate, size, mtime_ns in found:
            fingerprint.update(f"{candidate.key}\0{size}\0{mtime_ns}\n".encode("utf-8", "surrogateescape"))
        candidates = sorted((c for c, _, _ in found), key=lambda c: (key_fraction(c.key), c.key))
        return Listing(candidates, sorted(skipped, key=lambda s: s["path"]), fingerprint.hexdigest())

    @staticmethod
    def _walk(root, prefix, found, skipped):
        """Depth-first walk following symlinks, remembering visited folders (by real path) so a symlink loop ends.
        Object stores have no links: there a folder's path is its identity."""
        top = storage.absolute(root)
        visited = set()
        stack = [(top, ".")]
        while stack:
            directory, rel_dir = stack.pop()
            identity = storage.resolved(directory)
            if identity in visited:
                skipped.append(_skip(prefix, rel_dir, "symlink loop", "directory already visited"))
                continue
            visited.add(identity)
            try:
                names = storage.listdir(directory)
            except OSError as e:
                skipped.append(_skip(prefix, rel_dir, "unreadable", e.strerror or str(e)))
                continue
            for name in names:
                path = os.path.join(directory, name)
                rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                try:
                    info = storage.stat(path)
                except FileNotFoundError:  # listed, so a link to nothing
                    skipped.append(_skip(prefix, rel, "unreadable", "broken link or special file"))
                    continue
                except OSError as e:
                    skipped.append(_skip(prefix, rel, "unreadable", e.strerror or str(e)))
                    continue
                if info.is_dir:
                    stack.append((path, rel))
                elif not info.is_file:
                    skipped.append(_skip(prefix, rel, "unreadable", "broken link or special file"))
                elif os.path.splitext(name)[1].lower() not in image_files.IMAGE_EXTENSIONS:
                    skipped.append(_skip(prefix, rel, "not an image file name", "extension not recognised"))
                else:
                    found.append((Candidate(_key(prefix, rel), path), info.size, info.mtime_ns))

    def payloads(self, candidates):
        """Workers read the files themselves: the payload is the path. ram:// files exist only in this process:
        those are converted here (`ConversionConfig.workers` is 1 then)."""
        for candidate in candidates:
            yield candidate.locator


def folder_problems(roots):
    """Why --input_dir folders cannot be read as one source, one line each; empty when they can."""
    problems = []
    for root in roots:
        try:
            if not storage.isdir(root):
                problems.append(f"--input_dir={root}: not a directory")
        except OSError as e:
            problems.append(f"--input_dir={root}: cannot be read ({e.strerror or e})")
    names = [_name(root) for root in roots]
    if len(roots) > 1 and len(set(names)) != len(names):
        problems.append(f"--input_dir: folders must have distinct names to keep keys unique, got {list(roots)}")
    return problems


def _name(root):
    return os.path.basename(os.path.normpath(root))


def _key(prefix, rel):
    return f"{prefix}/{rel}" if prefix else rel


def _skip(prefix, rel, reason, detail):
    return {"path": _key(prefix, rel), "reason": reason, "detail": detail}


class TfdsSource:
    """One split of a TFDS dataset already prepared in `data_dir` (nothing is downloaded).

    Images are read still encoded (`SkipDecoding`) and decoded by the workers like files. Keys are
    "name/split/index": TFDS datasets are shuffled when prepared, so index order is already a good writing order.
    """

    def __init__(self, name, split, data_dir=None, image_key="image"):
        import tensorflow_datasets as tfds  # noqa: PLC0415 - only this source needs TFDS; folder conversions skip it

        self._tfds = tfds
        self.name, self.split, self.data_dir, self.image_key = name, split, data_dir, image_key
        try:
            self._builder = tfds.builder(name, data_dir=data_dir)
        except Exception as e:  # noqa: BLE001 - TFDS raises many types for unknown or broken names.
            raise ValueError(f"--tfds_name={name}: {type(e).__name__}: {e}".splitlines()[0]) from None
        features = self._builder.info.features
        if image_key not in features:
            raise ValueError(f"--tfds_image_key={image_key}: dataset {name} has features {sorted(features)}")

    def describe(self):
        return {
            "tfds_name": self.name,
            "tfds_split": self.split,
            "tfds_data_dir": self.data_dir,
            "tfds_image_key": self.image_key,
        }

    def _dataset(self):
        try:
            return self._builder.as_dataset(
                split=self.split,
                shuffle_files=False,
                decoders={self.image_key: self._tfds.decode.SkipDecoding()},
            )
        except Exception as e:  # noqa: BLE001 - unprepared data, bad split names...: one clear line instead.
            raise ValueError(f"--tfds_name={self.name} --tfds_split={self.split}: {e}".splitlines()[0]) from None

    def _num_examples(self):
        try:
            return self._builder.info.splits[self.split].num_examples
        except (KeyError, ValueError):
            # Datasets prepared without split statistics: count by reading, once.
            return sum(1 for _ in self._dataset())

    def list(self):
        count = self._num_examples()
        key_prefix = f"{self.name}/{self.split}"
        candidates = [Candidate(f"{key_prefix}/{index}", index) for index in range(count)]
        fingerprint = hashlib.sha256(
            f"{self._builder.info.full_name}\0{self.split}\0{count}".encode("utf-8")
        ).hexdigest()
        return Listing(candidates, [], fingerprint)

    def payloads(self, candidates):
        """Encoded image bytes for candidates given in increasing index order, in one pass over the split."""
        wanted = iter(candidates)
        target = next(wanted, None)
        for index, example in enumerate(self._dataset().as_numpy_iterator()):
            if target is None:
                return
            if index == target.locator:
                yield example[self.image_key]
                target = next(wanted, None)
        if target is not None:
            raise ValueError(f"--tfds_name={self.name}: split {self.split} ended before example {target.locator}")
