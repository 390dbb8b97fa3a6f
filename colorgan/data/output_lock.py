"""An exclusive lock on an output folder, so two runs never write into one folder at once.

The lock is a small JSON file created with O_CREAT|O_EXCL (the one atomic "create if absent" of POSIX file systems,
NFS v3+ included) holding who took it: host, pid, the pid's start time (so a reused pid is not mistaken for the
holder) and a random token (so a release never removes another run's lock). A lock whose holder is gone can only be
judged on its own host: there, a lock of a dead process is taken over; a lock from another host is left alone
unless the user breaks it. Removing a lock file (release, take-over, break) is "if it still holds what I read, remove
it", which no file system does in one step: a second, short-lived guard file (also O_EXCL) makes every removal one
at a time, so of runs taking over one stale lock together exactly one gets it. Object stores (gs://, s3://) have no
exclusive create: one writer per output is then the user's to ensure.
"""

import contextlib
import json
import os
import secrets
import signal
import socket
import threading
import time

from colorgan.core import portable
from colorgan.core import storage

# While a lock file is being created its creator has not written it yet: readers wait this long for its content.
EMPTY_LOCK_WAIT_S = 2.0
# A guard file unchanged this long was left by a process killed within the milliseconds it holds one: removed.
GUARD_STALE_S = 10.0


class OutputLockedError(ValueError):
    """Another run holds the lock (or the lock cannot be taken); the message is one line naming the lock file."""


def this_host():
    return socket.gethostname()


def process_start(pid):
    """The start time of a process in clock ticks since boot (Linux), or None when unknown (elsewhere: then a reused
    pid counts as the holder, and the lock waits for --break_lock)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def process_alive(pid, start=None):
    """Whether `pid` is a running process (not a zombie) and, when `start` is given, the same one that had it.
    Always true on Windows, where os.kill would terminate the process: a lock is then left to --break_lock."""
    if os.name == "nt":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    except (OverflowError, ValueError):
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                return False
    except (OSError, IndexError):
        pass
    return start is None or process_start(pid) in (None, start)


@contextlib.contextmanager
def _signals_deferred():
    """SIGTERM / SIGINT wait while a lock file is created or removed, so neither is left half done (Python handlers
    run once the signals are unblocked)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with portable.signals_blocked((signal.SIGTERM, signal.SIGINT)):
        yield


class OutputLock:
    """`with OutputLock(path, subject="--output_dir=X", log=print):` holds the lock file at `path` for the block.

    Refuses (OutputLockedError) while a live process holds it; takes over, with one line to `log`, a lock of a dead
    process on this host, and any lock when `break_lock`.
    """

    def __init__(self, path, *, subject, log, break_lock=False):
        self.path, self.subject, self.log, self.break_lock = path, subject, log, break_lock
        self._content = None

    def __enter__(self):
        try:
            self.acquire()
        except BaseException:
            self.release()  # e.g. a Stopped raised just after the lock was written
            raise
        return self

    def __exit__(self, *exc):
        self.release()

    def acquire(self):
        empty_since = None
        for _ in range(100):  # each turn either takes the lock or removes a stale one; others may race us
            if self._try_create():
                return
            raw = self._read()
            if raw is None:
                continue  # released meanwhile
            holder = _parse(raw)
            if holder is None:
                empty_since = empty_since or time.monotonic()
                if time.monotonic() - empty_since < EMPTY_LOCK_WAIT_S:
                    time.sleep(0.05)
                    continue
                if not self.break_lock:
                    raise OutputLockedError(
                        f"{self.subject}: the lock file {self.path} is unreadable (its writer died while creating it, "
                        "or another tool wrote it); pass --break_lock if no run is writing there")
                why = f"breaking the unreadable lock {self.path} (--break_lock)"
            elif not self._holder_alive(holder):
                why = (f"taking over the lock {self.path} of pid {holder['pid']} on host {holder['host']}: that "
                       "process is no longer running")
            elif self.break_lock:
                why = f"breaking the lock {self.path} of pid {holder['pid']} on host {holder['host']} (--break_lock)"
            else:
                raise OutputLockedError(
                    f"{self.subject} is locked by pid {holder['pid']} on host {holder['host']} ({self.path}); wait "
                    "for that run to finish, or pass --break_lock if no run is writing there")
            if self._remove_if_unchanged(raw):  # else another run removed it first: look again
                self.log(why)
            empty_since = None
        raise OutputLockedError(f"{self.subject}: could not take the lock {self.path}: other runs keep taking it")

    def release(self):
        """Removes the lock file if it is still ours (a --break_lock run may have replaced it)."""
        if self._content is None:
            return
        try:
            removed = self._under_guard(lambda: self._remove_if(self._content))
        except OSError:  # no guard to be had (a full disk may refuse even an empty file): remove it unguarded
            removed = self._remove_if(self._content)
        if not removed:
            self.log(f"the lock {self.path} is no longer ours (broken by another run?): left in place")
        self._content = None

    def _try_create(self):
        pid = os.getpid()
        content = (json.dumps({"host": this_host(), "pid": pid, "start": process_start(pid),
                               "token": secrets.token_hex(8)}, sort_keys=True) + "\n").encode("utf-8")
        with _signals_deferred():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                return False
            except OSError as e:
                raise OutputLockedError(f"{self.subject}: cannot create the lock file {self.path} "
                                        f"({e.strerror or e})") from None
            try:
                try:
                    os.write(fd, content)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as e:
                os.unlink(self.path)
                if storage.is_disk_full(e):  # the caller reports a full disk its own way
                    raise OSError(e.errno, e.strerror, self.path) from None
                raise OutputLockedError(f"{self.subject}: cannot write the lock file {self.path} "
                                        f"({e.strerror or e})") from None
            self._content = content
        return True

    def _read(self):
        try:
            with open(self.path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise OutputLockedError(f"{self.subject}: cannot read the lock file {self.path} ({e.strerror or e})") \
                from None

    def _holder_alive(self, holder):
        if holder["host"] != this_host():
            return True  # cannot be told from here
        if holder["pid"] == os.getpid():
            # Our own pid: another thread of this process (same start), or an earlier process, e.g. a restarted
            # container's, that had the same pid.
            return holder.get("start") is None or holder.get("start") == process_start(os.getpid())
        return process_alive(holder["pid"], holder.get("start"))

    def _remove_if_unchanged(self, raw):
        """Removes the lock file if it still holds `raw` (what this run judged stale or broke)."""
        try:
            return self._under_guard(lambda: self._remove_if(raw))
        except OSError as e:
            raise OutputLockedError(f"{self.subject}: cannot create {self.path}{_GUARD_SUFFIX} to take over the lock "
                                    f"({e.strerror or e})") from None

    def _remove_if(self, raw):
        if self._read() != raw:
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        return True

    def _under_guard(self, action):
        """Runs `action` while holding the guard file; every removal of the lock file goes through here, so what
        a run read in the lock file stays there until that run's removal. Raises OSError if no guard can be made."""
        guard = self.path + _GUARD_SUFFIX
        seen = None  # (identity of the guard file we wait for, since when)
        while True:
            with _signals_deferred():
                try:
                    fd = os.open(guard, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    pass
                else:
                    os.close(fd)
                    try:
                        return action()
                    finally:
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(guard)
            try:
                stat = os.stat(guard)
            except FileNotFoundError:
                continue
            identity = (stat.st_ino, stat.st_mtime_ns)
            if seen is None or seen[0] != identity:
                seen = (identity, time.monotonic())  # timed on our clock: no trust in another host's mtime
            elif time.monotonic() - seen[1] > GUARD_STALE_S:
                self.log(f"removing {guard}, left by a run that died while holding it")
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(guard)
                seen = None
            time.sleep(0.002)


_GUARD_SUFFIX = ".guard"


def _parse(raw):
    """The holder recorded in a lock file, or None when it is not (yet) a complete one."""
    try:
        holder = json.loads(raw.decode("utf-8"))
    except ValueError:
        return None
    if not isinstance(holder, dict) or not isinstance(holder.get("host"), str):
        return None
    if not isinstance(holder.get("pid"), int) or isinstance(holder.get("pid"), bool) or holder["pid"] <= 0:
        return None
    return holder
