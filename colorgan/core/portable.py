"""The few calls whose availability differs between Linux, macOS and Windows, each with its fallback, so that data
prep, colorize, evaluate and serve run on all three. What needs Linux says so where it is used (local_cluster's
network namespaces, the Slurm launchers).
"""

import contextlib
import os
import signal


def usable_cpus():
    """The CPUs this process may run on: its affinity where the OS keeps one (Linux: a container's or taskset's
    limit), else every CPU of the machine."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@contextlib.contextmanager
def signals_blocked(signals):
    """Holds `signals` back for the block (delivered when it ends) where the OS has signal masks (POSIX); Windows has
    none, and its Ctrl-C arrives as KeyboardInterrupt in the main thread as usual."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def unblock_signals(signals):
    """Lets `signals` through again (a process started while its parent held them back inherits the mask)."""
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
