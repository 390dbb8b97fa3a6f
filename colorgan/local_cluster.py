"""Runs N worker processes of one program on 127.0.0.1 as a multi-worker TensorFlow job.

Each worker gets its own TF_CONFIG (the same cluster of N local ports, its own task index), so
`tf.distribute.MultiWorkerMirroredStrategy` behaves as it would across hosts: a way to test multi-worker training on
one machine. Like a cluster scheduler, the job lives or dies as a whole: one failed worker stops the others (their
collectives could never finish), and the job is either restarted on fresh ports, resuming from its checkpoints,
or reported failed.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"
_POLL_S = 0.1  # How often the supervisor looks at its workers and at signals received.


def free_ports(n, host=HOST):
    """n distinct TCP ports that were free a moment ago (all held open together, so none repeats)."""
    sockets = []
    try:
        for _ in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(ports, index, host=HOST):
    """The TF_CONFIG (JSON) of worker `index` in a cluster of one worker per port."""
    return json.dumps({"cluster": {"worker": [f"{host}:{port}" for port in ports]},
                       "task": {"type": "worker", "index": index}})


def _describe_exit(returncode):
    """'exited with code 3' or 'was killed by signal 9 (SIGKILL)', from a Popen return code."""
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = f" ({signal.Signals(-returncode).name})"
    except ValueError:
        name = ""
    return f"was killed by signal {-returncode}{name}"


def _exit_status(returncode):
    """A shell-style exit status for a Popen return code: 128 + signal for a worker killed by a signal."""
    return returncode if returncode >= 0 else 128 - returncode


class _Output:
    """Our stdout shared by all workers: whole lines only, each under a prefix, flushed as they come."""

    def __init__(self, out):
        self._out = out
        self._lock = threading.Lock()

    def write_line(self, text):
        if not text.endswith("\n"):
            text += "\n"
        with self._lock:
            self._out.write(text)
            self._out.flush()

    def pump(self, pipe, prefix):
        """Copies a worker's merged stdout+stderr until every process holding the pipe has closed it."""
        with pipe:
            for raw in iter(pipe.readline, b""):
                self.write_line(prefix + raw.decode("utf-8", errors="replace"))


class _Worker:
    """One worker process, in its own session so that a Ctrl-C on the terminal reaches only the launcher (which
    forwards SIGTERM), and so that signals reach the worker's own children too."""

    def __init__(self, index, ports, program, program_args, output):
        self.index = index
        # Unbuffered: a worker's print()s reach our output as they happen, not in 8 KiB bursts.
        env = dict(os.environ, TF_CONFIG=tf_config(ports, index), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen([sys.executable, program, *program_args], env=env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        self.reader = threading.Thread(target=output.pump, args=(self.process.stdout, f"[worker {index}] "),
                                       name=f"worker-{index}-output", daemon=True)
        self.reader.start()

    def signal_group(self, signum):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)


class _Signals:
    """Records SIGINT/SIGTERM sent to the launcher while a job runs, instead of dying with workers left behind."""

    def __init__(self):
        self.received = None

    def _record(self, signum, _frame):
        self.received = signum

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self  # Python only lets the main thread handle signals; the caller's own handling stands.
            return
        previous = {signum: signal.signal(signum, self._record) for signum in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def run_local_cluster(num_workers, program, program_args=(), restarts=0, grace_s=10.0, out=None):
    """Runs `python program *program_args` as workers 0..num_workers-1 of one TF job on 127.0.0.1; returns the exit
    status: 0 when every worker exits 0, the failed worker's status once no restarts are left, 128 + signal when the
    launcher is interrupted (the workers get SIGTERM first, and `grace_s` seconds to checkpoint, then SIGKILL)."""
    output = _Output(out or sys.stdout)
    signals = _Signals()
    with signals.installed():
        attempt = 0
        while True:
            failure = _run_job(num_workers, program, program_args, grace_s, output, signals)
            if signals.received:
                return 128 + signals.received
            if failure is None:
                return 0
            index, returncode = failure
            if attempt == restarts:
                output.write_line(f"local_cluster: worker {index} {_describe_exit(returncode)}; "
                                  f"{'no restarts left, ' if restarts else ''}the job failed")
                return _exit_status(returncode)
            attempt += 1
            output.write_line(f"local_cluster: worker {index} {_describe_exit(returncode)}; "
                              f"restarting the job ({attempt} of {restarts})")


def _run_job(num_workers, program, program_args, grace_s, output, signals):
    """One attempt on fresh ports: (index, return code) of the first failed worker, or None if all exited 0 or the
    launcher was signalled. Every worker has ended when it returns."""
    ports = free_ports(num_workers)
    workers = []
    try:
        for index in range(num_workers):
            workers.append(_Worker(index, ports, program, program_args, output))
        return _wait_for_end(workers, output, signals)
    finally:
        _stop(workers, grace_s, output)


def _wait_for_end(workers, output, signals):
    while True:
        if signals.received:
            output.write_line(f"local_cluster: got {signal.Signals(signals.received).name}; "
                              f"sending SIGTERM to the workers")
            return None
        returncodes = [worker.process.poll() for worker in workers]
        for worker, returncode in zip(workers, returncodes):
            if returncode not in (None, 0):
                return worker.index, returncode
        if all(returncode == 0 for returncode in returncodes):
            return None
        time.sleep(_POLL_S)


def _stop(workers, grace_s, output):
    """SIGTERM to the workers still running, SIGKILL to whatever is left after `grace_s` (their children too)."""
    running = [worker for worker in workers if worker.process.poll() is None]
    for worker in running:
        worker.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for worker in running:
        try:
            worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            output.write_line(f"local_cluster: worker {worker.index} still running {grace_s:g} s after SIGTERM; "
                              f"sending SIGKILL")
    for worker in workers:
        worker.signal_group(signal.SIGKILL)
        worker.process.wait()
        worker.reader.join()
