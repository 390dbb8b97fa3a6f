"""Tests of colorgan.data.output_lock: who holds an output, stale locks, breaking one, and runs racing for it."""

import json
import os
import subprocess
import threading
import time

import pytest
from conftest import dead_pid

from colorgan.data import output_lock


def _lock(path, messages=None, **kwargs):
    return output_lock.OutputLock(str(path), subject="--output_dir=OUT", log=(messages if messages is not None else
                                                                               []).append, **kwargs)


def _write(path, **holder):
    path.write_text(json.dumps(holder))


def test_the_lock_file_names_its_holder_and_is_removed_on_release(tmp_path):
    path = tmp_path / "lock"
    with _lock(path):
        holder = json.loads(path.read_text())
        assert (holder["host"], holder["pid"]) == (output_lock.this_host(), os.getpid())
        assert holder["start"] == output_lock.process_start(os.getpid()) is not None
    assert not path.exists()


def test_the_lock_is_released_when_the_block_raises(tmp_path):
    path = tmp_path / "lock"
    with pytest.raises(KeyError):
        with _lock(path):
            raise KeyError("x")
    assert not path.exists()


def test_a_live_holder_is_refused_in_one_line(tmp_path, live_pid):
    path = tmp_path / "lock"
    _write(path, host=output_lock.this_host(), pid=live_pid)
    with pytest.raises(output_lock.OutputLockedError) as info:
        _lock(path).acquire()
    assert str(info.value) == (f"--output_dir=OUT is locked by pid {live_pid} on host {output_lock.this_host()} "
                               f"({path}); wait for that run to finish, or pass --break_lock if no run is writing "
                               "there")
    assert json.loads(path.read_text()) == {"host": output_lock.this_host(), "pid": live_pid}  # left alone


def test_a_second_lock_in_the_same_process_is_refused(tmp_path):
    """Another thread of this very process: same pid, same start."""
    path = tmp_path / "lock"
    with _lock(path):
        held = path.read_bytes()
        with pytest.raises(output_lock.OutputLockedError, match=f"is locked by pid {os.getpid()} "):
            _lock(path).acquire()
        assert path.read_bytes() == held
    assert not path.exists()


@pytest.mark.parametrize("holder", ["dead", "reused pid", "own pid, earlier process", "zombie"])
def test_a_lock_whose_process_is_gone_is_taken_over(tmp_path, live_pid, holder):
    path = tmp_path / "lock"
    zombie = None
    if holder == "dead":
        pid, start = dead_pid(), None
    elif holder == "reused pid":  # the pid is alive, but a later process than the one that took the lock
        pid, start = live_pid, output_lock.process_start(live_pid) - 1
    elif holder == "own pid, earlier process":  # a restarted container often gets the pid of the one it replaces
        pid, start = os.getpid(), output_lock.process_start(os.getpid()) - 1
    else:
        zombie = subprocess.Popen(["true"])
        pid, start = zombie.pid, None
        deadline = time.monotonic() + 10
        while output_lock.process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
    _write(path, host=output_lock.this_host(), pid=pid, start=start)
    messages = []
    try:
        with _lock(path, messages):
            assert json.loads(path.read_text())["pid"] == os.getpid()
    finally:
        if zombie is not None:
            zombie.wait()
    assert messages == [f"taking over the lock {path} of pid {pid} on host {output_lock.this_host()}: that process "
                        "is no longer running"]
    assert not path.exists() and os.listdir(tmp_path) == []


def test_another_hosts_lock_is_refused_unless_broken(tmp_path):
    path = tmp_path / "lock"
    _write(path, host="elsewhere", pid=os.getpid())
    with pytest.raises(output_lock.OutputLockedError, match=r"pid \d+ on host elsewhere .*--break_lock"):
        _lock(path).acquire()
    messages = []
    with _lock(path, messages, break_lock=True):
        assert json.loads(path.read_text())["host"] == output_lock.this_host()
    assert messages == [f"breaking the lock {path} of pid {os.getpid()} on host elsewhere (--break_lock)"]


def test_an_unreadable_lock_is_refused_after_a_wait_and_broken_on_request(tmp_path, monkeypatch):
    monkeypatch.setattr(output_lock, "EMPTY_LOCK_WAIT_S", 0.2)
    path = tmp_path / "lock"
    path.write_text("")  # a creator killed before it wrote the holder, or another tool's file
    start = time.monotonic()
    with pytest.raises(output_lock.OutputLockedError, match=r"the lock file .* is unreadable .*--break_lock"):
        _lock(path).acquire()
    assert time.monotonic() - start >= 0.2
    with _lock(path, break_lock=True):
        pass
    assert not path.exists()


def test_release_keeps_a_lock_that_another_run_broke(tmp_path):
    path = tmp_path / "lock"
    messages = []
    with _lock(path, messages):
        _write(path, host="elsewhere", pid=7)  # what a --break_lock run would have done
    assert json.loads(path.read_text())["host"] == "elsewhere"
    assert messages == [f"the lock {path} is no longer ours (broken by another run?): left in place"]


def test_a_lock_that_cannot_be_created_is_one_line(tmp_path):
    with pytest.raises(output_lock.OutputLockedError, match=r"^--output_dir=OUT: cannot create the lock file .*"
                                                             r"\(No such file or directory\)$"):
        _lock(tmp_path / "missing" / "lock").acquire()


def test_of_runs_racing_to_take_over_a_stale_lock_exactly_one_wins(tmp_path):
    """Each thread is its own OutputLock (same pid and start: to each other, live holders)."""
    path = tmp_path / "lock"
    for _ in range(20):
        _write(path, host=output_lock.this_host(), pid=dead_pid())
        barrier = threading.Barrier(6)
        outcomes = []

        def take(barrier=barrier, outcomes=outcomes):  # this turn's, bound now
            lock = _lock(path)
            barrier.wait()
            try:
                lock.acquire()
                outcomes.append(lock)
            except output_lock.OutputLockedError:
                outcomes.append(None)

        threads = [threading.Thread(target=take) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [lock for lock in outcomes if lock is not None]
        assert len(outcomes) == 6 and len(winners) == 1
        winners[0].release()
        assert os.listdir(tmp_path) == []
