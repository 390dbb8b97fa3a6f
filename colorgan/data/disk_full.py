"""A conversion that fills its disk: what it had written is tracked as it goes (`Written`), so that the error can
keep every finished shard, remove what a rerun could not reuse, and say in one line how much space is still needed."""

import contextlib
import dataclasses
import os

from colorgan.core import storage
from colorgan.data import conversion_config
from colorgan.data import records
from colorgan.data.existing_output import STATE_DIRNAME


class DiskFullError(conversion_config.ConversionFailed):
    """The output's file system filled up; what cannot be resumed was removed, finished shards are kept."""


@dataclasses.dataclass
class Written:
    """How far a conversion of `candidates` images got: its planned shards (none until planned), each finished
    shard's record by file name, what it was writing, and the (bytes, images) of a shard an error interrupted."""

    candidates: int
    shards: list = dataclasses.field(default_factory=list)
    finished: dict = dataclasses.field(default_factory=dict)
    writing: str = STATE_DIRNAME
    abandoned: tuple | None = None

    def abandon(self, filename, size, images):
        self.writing, self.abandoned = filename, (size, images)


def disk_full_error(output_dir, state_dir, image_size, written):
    """Removes what a rerun could not reuse (partial and temporary files, shards without their record), keeps the
    finished shards, and returns the one-line error with the space still needed."""
    _remove_unreusable(output_dir, state_dir, written)
    unfinished = [shard for shard in written.shards if written.finished.get(shard.filename) is None]
    free = storage.free_bytes(output_dir) / 2**20
    remaining = sum(len(shard.candidates) for shard in unfinished) if written.shards else written.candidates
    if remaining == 0:
        return DiskFullError(f"{output_dir}: no space left on device while writing {written.writing} ({free:.1f} MiB "
                             "free); every shard is finished and kept: free some space and run the same command to "
                             "finish")
    left = (f"{len(unfinished)} unfinished shard{'s' * (len(unfinished) != 1)}" if written.shards
            else f"{remaining} images")
    return DiskFullError(f"{output_dir}: no space left on device while writing {written.writing}; "
                         f"{_space_needed(written, remaining, image_size)} for {left} ({free:.1f} MiB free); finished "
                         "shards are kept: free space and run the same command to resume")


def _remove_unreusable(output_dir, state_dir, written):
    for directory, leftover in ((state_dir, lambda n: n.endswith(storage.PARTIAL_SUFFIX)),
                                (output_dir, lambda n: n.startswith(f".{records.MANIFEST_FILENAME}.")
                                 and n.endswith(storage.PARTIAL_SUFFIX))):
        with contextlib.suppress(FileNotFoundError):
            for name in storage.listdir(directory):
                if leftover(name):
                    storage.remove(os.path.join(directory, name))
    for shard in written.shards:
        if written.finished.get(shard.filename) is None:
            storage.remove(os.path.join(output_dir, shard.filename))


def _space_needed(written, remaining, image_size):
    """Bytes per image so far: finished shards, else the shard that was interrupted, else raw pixels (an upper
    bound for either codec)."""
    done = [record for record in written.finished.values() if record is not None]
    size = sum(record["bytes"] for record in done)
    images = sum(record["num_examples"] + len(record["skipped"]) for record in done)
    if written.abandoned is not None:
        size, images = size + written.abandoned[0], images + written.abandoned[1]
    if size and images:
        return f"about {size / images * remaining / 2**20:.1f} MiB more are needed"
    return f"up to {(4 * image_size**2 + 1024) * remaining / 2**20:.1f} MiB more are needed"
