"""Parallel, ordered work for data prep on worker processes that never import TensorFlow: this module (what a
spawned worker unpickles to start) imports nothing heavy, and the mapped functions live in TensorFlow-free modules
(`example_prep`). Plus the stop handling those workers need: SIGTERM and Ctrl-C stop the parent, never a worker.
"""

import collections
import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
import threading
import time

from colorgan.core import portable

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(Exception):
    """SIGTERM or Ctrl-C ended the conversion; finished shards are kept for the rerun."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def stop_on_signals():
    """Turns SIGTERM and SIGINT into Stopped in the main thread, so the pool shuts down and the process exits
    without a traceback (elsewhere, e.g. a library caller's thread, signals are left alone)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, _):
        raise Stopped(signum)

    previous = {signum: signal.signal(signum, stop) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _worker_init(parent_pid):
    """Workers leave stopping to the parent (a terminal's Ctrl-C and `kill` of the process group reach them too),
    and exit on their own when it dies without telling them (SIGKILL, the OOM killer): nothing else would end them."""
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    portable.unblock_signals(_STOP_SIGNALS)  # blocked by the parent while starting us

    def exit_when_orphaned():
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=exit_when_orphaned, daemon=True).start()


class WorkerPool:
    """An ordered, bounded-memory parallel map over worker processes (inline when there is one worker)."""

    # What a spawned worker unpickles to start, so its module is what every worker imports.
    initializer = staticmethod(_worker_init)

    def __init__(self, num_workers):
        self.num_workers = num_workers
        self._executor = None

    def __enter__(self):
        if self.num_workers > 1:
            # spawn, not fork: this process has TensorFlow loaded, whose threads do not survive a fork.
            self._executor = concurrent.futures.ProcessPoolExecutor(
                self.num_workers, mp_context=multiprocessing.get_context("spawn"), initializer=self.initializer,
                initargs=(os.getpid(),))
        return self

    def __exit__(self, *exc):
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def _submit(self, fn, item):
        """Workers start inside submit(). With the stop signals blocked then, they inherit the mask, so a Ctrl-C
        cannot kill one with a traceback before _worker_init has set it to ignore them; a signal for this process
        waits the few microseconds until the mask is restored."""
        with portable.signals_blocked(_STOP_SIGNALS):
            return self._executor.submit(fn, item)

    def map(self, fn, items):
        """Yields fn(item) in input order; at most a few tasks per worker are in flight at any time."""
        if self._executor is None:
            yield from map(fn, items)
            return
        in_flight = collections.deque()
        for item in items:
            in_flight.append(self._submit(fn, item))
            if len(in_flight) >= 8 * self.num_workers:
                yield in_flight.popleft().result()
        while in_flight:
            yield in_flight.popleft().result()
