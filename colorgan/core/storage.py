"""Every data and run path, read and written the same way by every tool (data prep, training, export, inference).

Local paths go through the os module; any other path (gs://, TensorFlow's own scheme, or its in-memory ram://
filesystem, which tests use) through tf.io.gfile, imported only then, so tools that touch local files alone (and
data prep's worker processes) start without TensorFlow. s3:// and hdfs:// need the tensorflow-io package.
Object stores have no rename (a "rename" is a copy and a delete) and no append: what must appear whole is written
once under its final name, and the file that marks a set of files complete (a manifest, an export's metadata) last.
"""

import collections
import contextlib
import errno
import glob as local_glob
import io
import os
import shutil
import stat as stat_module
import sys
import uuid

_DISK_FULL_MESSAGES = ("No space left on device", "Disk quota exceeded")
# Schemes tf.io.gfile reads and writes in a default TensorFlow install; others (s3://, hdfs://) need tensorflow-io.
BUILTIN_SCHEMES = ("", "file", "gs", "ram")
# A local file being written is named ".<name>.<random>.partial" until it is complete (tools sweep leftovers).
PARTIAL_SUFFIX = ".partial"


def _gfile():
    import tensorflow as tf  # noqa: PLC0415 - only for non-local paths, see the module docstring

    return tf.io.gfile


def is_disk_full(error):
    """Whether `error` means the file system is full: ENOSPC or EDQUOT from Python, or TensorFlow's report of them
    (ResourceExhaustedError or UnknownError carrying the OS message; an out-of-memory ResourceExhaustedError is not
    a full disk)."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    tf = sys.modules.get("tensorflow")  # a TensorFlow error implies TensorFlow is loaded
    if tf is not None and isinstance(error, tf.errors.OpError):
        return any(message in str(error) for message in _DISK_FULL_MESSAGES)
    return False


def scheme(path):
    """'gs' for gs://bucket/x, 'file' for file:///x, '' for a plain local path."""
    head, separator, _ = os.fspath(path).partition("://")
    return head if separator else ""


def is_local(path):
    """Whether `path` is on a local (POSIX) file system, where a rename is atomic and processes share files."""
    return scheme(path) in ("", "file")


def parent(path):
    """The folder holding `path`: '' for a bare local name, gs://bucket for gs://bucket/x."""
    return os.path.dirname(os.fspath(path).rstrip("/"))


def absolute(path):
    """`path` made absolute on a local disk; elsewhere as given, without a trailing '/'."""
    return os.path.abspath(_local(path)) if is_local(path) else os.fspath(path).rstrip("/")


def resolved(path):
    """A path's identity, to compare folders: its real path on a local disk (links resolved), else the path
    itself."""
    return os.path.realpath(_local(path)) if is_local(path) else os.fspath(path).rstrip("/")


def is_within(path, root):
    """Whether `path` is `root` or below it; both as `resolved` gives them (no trailing '/', links resolved)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def _local(path):
    return os.fspath(path).removeprefix("file://")


def _not_local_error(error):
    """A tf.errors.OpError as the OSError callers of this module handle."""
    code = errno.ENOENT if type(error).__name__ == "NotFoundError" else errno.EIO
    return OSError(code, getattr(error, "message", str(error)))


@contextlib.contextmanager
def _os_errors():
    """tf.io.gfile's errors raised as OSError, so callers handle one kind of error whatever the path."""
    try:
        yield
    except OSError:
        raise
    except Exception as e:
        tf = sys.modules.get("tensorflow")
        if tf is not None and isinstance(e, tf.errors.OpError):
            raise _not_local_error(e) from None
        raise


def exists(path):
    if is_local(path):
        return os.path.exists(_local(path))
    with _os_errors():
        return _gfile().exists(os.fspath(path))


def isdir(path):
    if is_local(path):
        return os.path.isdir(_local(path))
    with _os_errors():
        return _gfile().isdir(os.fspath(path))


def isfile(path):
    if is_local(path):
        return os.path.isfile(_local(path))
    return exists(path) and not isdir(path)


def size(path):
    if is_local(path):
        return os.path.getsize(_local(path))
    with _os_errors():
        return _gfile().stat(os.fspath(path)).length


Stat = collections.namedtuple("Stat", "size mtime_ns is_dir is_file")


def stat(path):
    """Size, modification time (ns; 0 on ram://) and kind of `path`, links followed; OSError (FileNotFoundError for
    a dangling link) when it cannot be read."""
    if is_local(path):
        result = os.stat(_local(path))
        return Stat(result.st_size, result.st_mtime_ns, stat_module.S_ISDIR(result.st_mode),
                    stat_module.S_ISREG(result.st_mode))
    with _os_errors():
        result = _gfile().stat(os.fspath(path))
    return Stat(result.length, result.mtime_nsec, result.is_directory, not result.is_directory)


def free_bytes(path):
    """Free space of the local file system holding `path` (object stores do not fill up that way)."""
    return shutil.disk_usage(_local(path)).free


def listdir(path):
    """Names in a folder, sorted (gfile lists object-store folders with a trailing '/', dropped here)."""
    if is_local(path):
        return sorted(os.listdir(_local(path)))
    with _os_errors():
        return sorted(name.rstrip("/") for name in _gfile().listdir(os.fspath(path)))


def walk(root, on_error=None):
    """os.walk's (folder, subfolders, files), top-down, for any path; subfolders may be pruned in place. A local
    folder that cannot be listed is passed to `on_error(path, OSError)` (os.walk would skip it silently)."""
    if is_local(root):
        yield from os.walk(_local(root), onerror=on_error and (lambda error: on_error(error.filename, error)))
        return
    with _os_errors():
        yield from _gfile().walk(os.fspath(root))


def glob(pattern):
    """Paths matching `pattern`, sorted; '**' matches across folders on local disks."""
    if is_local(pattern):
        return sorted(local_glob.glob(_local(pattern), recursive=True))
    with _os_errors():
        return sorted(_gfile().glob(os.fspath(pattern)))


def makedirs(path):
    if not os.fspath(path):
        return
    if is_local(path):
        os.makedirs(_local(path), exist_ok=True)
        return
    with _os_errors():
        _gfile().makedirs(os.fspath(path))


def remove(path):
    """Removes a file; a file already gone is not an error."""
    with contextlib.suppress(FileNotFoundError):
        if is_local(path):
            os.remove(_local(path))
            return
        with _os_errors():
            _gfile().remove(os.fspath(path))


def rmtree(path):
    """Removes a folder and everything in it; a folder already gone is not an error."""
    if is_local(path):
        shutil.rmtree(_local(path), ignore_errors=True)
        return
    with contextlib.suppress(FileNotFoundError), _os_errors():
        _gfile().rmtree(os.fspath(path))


def rename(source, target):
    """Moves a local file or folder over `target`, atomically. Only local disks rename: on object stores a rename
    is a copy and a delete, so writers there put each file under its final name and write the marker last."""
    if not (is_local(source) and is_local(target)):
        raise ValueError(f"{source} -> {target}: only local paths are renamed (object stores have no rename)")
    os.replace(_local(source), _local(target))


def directory_problem(path):
    """Why `path` cannot be (made into) a writable folder, or None: checked on local disks, where permissions are
    known up front; other paths (gs://, ram://) are left to the first write."""
    if not is_local(path):
        return None
    path = _local(path)
    if os.path.exists(path):
        if not os.path.isdir(path):
            return "is a file, not a directory"
        return None if os.access(path, os.W_OK | os.X_OK) else "is not writable"
    existing = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{existing} is a file, not a directory"
    return None if os.access(existing, os.W_OK | os.X_OK) else f"cannot be created: {existing} is not writable"


def read_bytes(path):
    if is_local(path):
        with open(_local(path), "rb") as f:
            return f.read()
    with _os_errors(), _gfile().GFile(os.fspath(path), "rb") as f:
        return f.read()


def read_text(path):
    return read_bytes(path).decode("utf-8")


def open_for_reading(path):
    """A binary file object of `path`: the file itself on a local disk (seekable, no copy), else its bytes read
    into memory (object stores serve whole objects best). OSError when it cannot be read."""
    if is_local(path):
        return open(_local(path), "rb")
    return io.BytesIO(read_bytes(path))


def checkpoint_reader(prefix):
    """A reader of the checkpoint at `prefix` (e.g. MODEL_DIR/ckpt-4): get_tensor(name),
    get_variable_to_shape_map(). Not tf.train.load_checkpoint, which takes a prefix for a folder where the file system
    says a prefix of files is one (ram:// does). tf.errors.OpError when it cannot be read."""
    import tensorflow as tf  # noqa: PLC0415 - checkpoints mean TensorFlow is loaded already

    return tf.compat.v1.train.NewCheckpointReader(os.fspath(prefix))


def flush_to_disk(file):
    """Flushes an open local file and fsyncs it, before a rename publishes it: after a crash the name never stands
    for bytes that were still in memory."""
    file.flush()
    os.fsync(file.fileno())


def write_atomic(path, data):
    """Makes `data` (bytes or str) the whole content of `path`, so that a reader, or a run started after a killed
    writer, sees the old content or the new and never part of it.

    Local disks: a temporary file beside it, flushed to the disk (fsync), renamed over the name. Other file systems
    (object stores, ram://): the final name written once; an object appears whole when its upload completes."""
    data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if not is_local(path):
        if scheme(path) == "ram":
            remove(path)  # TensorFlow's ram:// opens an existing file for writing without truncating it
        with _os_errors(), _gfile().GFile(os.fspath(path), "wb") as f:
            f.write(data)
        return
    local = _local(path)
    tmp = os.path.join(os.path.dirname(os.path.abspath(local)),
                       f".{os.path.basename(local)}.{uuid.uuid4().hex[:12]}{PARTIAL_SUFFIX}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            flush_to_disk(f)
        os.replace(tmp, local)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def append_text(path, text):
    """Appends `text` to `path` (created if missing). Local disks append in place; object stores cannot append, so
    there the file is rewritten whole with the text added (fine for small logs such as metrics.jsonl)."""
    if is_local(path):
        with open(_local(path), "a", encoding="utf-8") as f:
            f.write(text)
        return
    write_atomic(path, (read_text(path) if exists(path) else "") + text)
