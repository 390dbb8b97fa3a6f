"""Runs N worker processes of one program on 127.0.0.1 as a multi-worker TensorFlow job.

Each worker gets its own TF_CONFIG (the same cluster of N local ports, its own task index), so
`tf.distribute.MultiWorkerMirroredStrategy` behaves as it would across hosts: a way to test multi-worker training on
one machine. Like a cluster scheduler, the job lives or dies as a whole: one failed worker stops the others (their
collectives could never finish), and the job is either restarted on fresh ports, resuming from its checkpoints,
or reported failed.

TensorFlow's gRPC servers listen on every interface whatever address TF_CONFIG names, and they run any op they are
sent, unauthenticated. So all workers of a job run in one private network namespace of their own whose only
interface is loopback (util-linux `unshare --net` holds it open, `nsenter` puts each worker in it; as root, or else
through an unprivileged user namespace): they reach each other on 127.0.0.1 and nothing else reaches them. Where no
namespace can be made the job runs in ours after a one-line warning that its ports are reachable from the network,
or not at all if isolation is required.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from colorgan.data import data_service

HOST = "127.0.0.1"
_POLL_S = 0.1  # How often the supervisor looks at its workers and at signals received.
SERVICE_READY_S = 120.0  # How long tf.data service workers get to load TensorFlow and register.


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


# Run by `unshare` inside the new network namespace: brings loopback up, picks the job's ports there, prints them,
# then holds the namespace open until the launcher closes our stdin (or dies). Standalone, as `python -I -c`.
_HOLDER = r'''
import fcntl, socket, struct, sys

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    flags = struct.unpack_from("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, struct.pack("16sH22x", b"lo", 0)))[1]
    fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | IFF_UP))
sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(int(sys.argv[1]))]
for sock in sockets:
    sock.bind(("127.0.0.1", 0))
print(*[sock.getsockname()[1] for sock in sockets], flush=True)
for sock in sockets:
    sock.close()
sys.stdin.read()
'''

# Ways to make the namespace, tried in order: as root (CAP_SYS_ADMIN); else inside an unprivileged user namespace,
# where workers keep our uid (util-linux >= 2.38; --keep-caps lets the holder, then not root, bring loopback up) or
# appear as its root (older util-linux).
_UNSHARE_OPTIONS = (("--net",), ("--net", "--map-current-user", "--keep-caps"), ("--net", "--map-root-user"))


class _Namespace:
    """A private network namespace whose only interface is loopback, up, held open by a small process; `ports` were
    free in it, `enter` is the command prefix that runs a program in it."""

    def __init__(self, holder, enter, ports):
        self.holder, self.enter, self.ports = holder, enter, ports

    def close(self):
        self.holder.stdin.close()
        self.holder.wait()
        self.holder.stdout.close()
        self.holder.stderr.close()


def private_namespace(num_ports):
    """(a _Namespace with num_ports free ports, None), or (None, why no namespace could be made here)."""
    if not sys.platform.startswith("linux"):
        return None, f"network namespaces need Linux, and this is {sys.platform}"
    unshare, nsenter = shutil.which("unshare"), shutil.which("nsenter")
    if not (unshare and nsenter):
        return None, "no unshare and nsenter (util-linux) on this host"
    why = ""
    for options in _UNSHARE_OPTIONS:
        # argv[0] "unshare", so that each of its complaints starts "unshare: " (getopt's would name the full path).
        holder = subprocess.Popen(["unshare", *options, "--", sys.executable, "-I", "-c", _HOLDER, str(num_ports)],
                                  executable=unshare, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, start_new_session=True)
        ports = holder.stdout.readline().split()
        if ports:
            user = ["--user", "--preserve-credentials"] if len(options) > 1 else []
            return _Namespace(holder, [nsenter, f"--target={holder.pid}", "--net", *user, "--"],
                              [int(port) for port in ports]), None
        holder.stdin.close()
        errors = holder.stderr.read().decode("utf-8", errors="replace").strip().splitlines()
        holder.wait()
        holder.stdout.close()
        holder.stderr.close()
        # unshare's own complaint ("unshare: unshare failed: Operation not permitted"), else the holder's last word.
        why = next((line for line in errors if line.startswith("unshare:")), errors[-1] if errors else
                   f"unshare {' '.join(options)} {_describe_exit(holder.returncode)}")
    return None, why


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

    def pump(self, pipe, prefix, ready_line=None, ready=None):
        """Copies a worker's merged stdout+stderr until every process holding the pipe has closed it; sets `ready`
        once a line starts with `ready_line`."""
        with pipe:
            for raw in iter(pipe.readline, b""):
                line = raw.decode("utf-8", errors="replace")
                if ready_line and line.startswith(ready_line):
                    ready.set()
                self.write_line(prefix + line)


def python_command(program):
    """The command that runs `program`: a Python file, or a module name (colorgan.tools.train) run with -m."""
    if program.endswith(".py") or os.sep in program:
        return [sys.executable, program]
    return [sys.executable, "-m", program]


class _Worker:
    """One process of the job (a worker, or a tf.data service process beside the workers), in its own session so
    that a Ctrl-C on the terminal reaches only the launcher (which forwards SIGTERM), and so that signals reach the
    process's own children too."""

    def __init__(self, name, program, program_args, output, enter=(), tf_config_json=None, ready_line=None):
        self.name = name
        self.ready = threading.Event()  # set once the process prints `ready_line`
        # Unbuffered: a worker's print()s reach our output as they happen, not in 8 KiB bursts.
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("TF_CONFIG", None)
        if tf_config_json:
            env["TF_CONFIG"] = tf_config_json
        # `enter` (nsenter) joins the namespace and execs the program: the worker is still our child, same PID.
        self.process = subprocess.Popen([*enter, *python_command(program), *program_args], env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.reader = threading.Thread(target=output.pump, args=(self.process.stdout, f"[{name}] ", ready_line,
                                                                 self.ready), name=f"{name}-output", daemon=True)
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


def run_local_cluster(num_workers, program, program_args=(), restarts=0, grace_s=10.0, out=None,
                      require_isolation=False, data_service_workers=0, data_service_program=None):
    """Runs `python program *program_args` (a file, or a module run with -m: python_command) as workers
    0..num_workers-1 of one TF job on 127.0.0.1, in a private network namespace (see the module's docstring); returns
    the exit status: 0 when every worker exits 0, the failed worker's status once no restarts are left, 128 + signal
    when the launcher is interrupted (the workers get SIGTERM first, and `grace_s` seconds to checkpoint, then
    SIGKILL), 2 when no namespace can be made and `require_isolation` is set (without it the job runs exposed, after a
    warning).

    With `data_service_workers`, the job also has a tf.data service beside its workers, as a cluster would run it on
    CPU machines: a dispatcher and that many service workers (`data_service_program`, colorgan.tools.data_service), and
    the workers get `--data_service=` its address. The service is stopped when the workers end; one of its processes
    ending first fails the job."""
    output = _Output(out or sys.stdout)
    signals = _Signals()
    warned = False
    with signals.installed():
        attempt = 0
        while True:
            # A fresh namespace each attempt, like fresh ports; one more port for the dispatcher.
            namespace, why = private_namespace(num_workers + bool(data_service_workers))
            if namespace is None and require_isolation:
                output.write_line(f"local_cluster: error: no private network namespace for the workers ({why}); "
                                  f"not starting them with ports reachable from the network")
                return 2
            if namespace is None and not warned:
                output.write_line(f"local_cluster: warning: no private network namespace for the workers ({why}); "
                                  f"their TensorFlow ports listen on every interface, reachable from the network")
                warned = True
            try:
                failure = _run_job(num_workers, program, program_args, grace_s, output, signals, namespace,
                                   (data_service_workers, data_service_program))
            finally:
                if namespace is not None:
                    namespace.close()
            if signals.received:
                return 128 + signals.received
            if failure is None:
                return 0
            what, returncode = failure
            if attempt == restarts:
                output.write_line(f"local_cluster: {what}; {'no restarts left, ' if restarts else ''}the job failed")
                return _exit_status(returncode)
            attempt += 1
            output.write_line(f"local_cluster: {what}; restarting the job ({attempt} of {restarts})")


def _run_job(num_workers, program, program_args, grace_s, output, signals, namespace=None,
             service_settings=(0, None)):
    """One attempt on fresh ports (in `namespace`, when there is one): (what failed, return code) for the first
    failed process, or None if all workers exited 0 or the launcher was signalled. Every process has ended when it
    returns."""
    service_workers, service_program = service_settings
    ports = namespace.ports if namespace is not None else free_ports(num_workers + bool(service_workers))
    enter = namespace.enter if namespace is not None else ()
    workers, service = [], []
    try:
        if service_workers:
            dispatcher = f"{HOST}:{ports[num_workers]}"
            service.append(_Worker("data_service dispatcher", service_program,
                                   ["--role=dispatcher", f"--port={ports[num_workers]}"], output, enter))
            service.extend(_Worker(f"data_service worker {index}", service_program,
                                   ["--role=worker", f"--dispatcher={dispatcher}", f"--worker_address={HOST}:%port%"],
                                   output, enter, ready_line=data_service.WORKER_READY)
                           for index in range(service_workers))
            program_args = [*program_args, f"--data_service={dispatcher}"]
            # A job the dispatcher makes gets a task on every worker registered by then: wait for them all, so
            # that none stays idle until its next heartbeat.
            failure = _wait_for_ready(service, signals, SERVICE_READY_S)
            if failure or signals.received:
                return failure
        for index in range(num_workers):
            workers.append(_Worker(f"worker {index}", program, program_args, output, enter,
                                   tf_config(ports[:num_workers], index)))
        return _wait_for_end(workers, service, output, signals)
    finally:
        _stop(workers, grace_s, output)
        _stop(service, grace_s, output)


def _wait_for_ready(service, signals, timeout_s):
    """Waits until every service worker has registered; (what failed, return code) for a service process that
    ended first or a worker that did not register in `timeout_s` (status 1), else None."""
    deadline = time.monotonic() + timeout_s
    while not (all(process.ready.is_set() for process in service[1:]) or signals.received):
        ended = _ended(service)
        if ended:
            return ended
        if time.monotonic() > deadline:
            late = next(process for process in service[1:] if not process.ready.is_set())
            return f"{late.name} did not register with the dispatcher in {timeout_s:g} s", 1
        time.sleep(_POLL_S)
    return None


def _ended(service):
    """(what, return code) for the first service process that has ended (the workers would wait for it), or None."""
    for process in service:
        returncode = process.process.poll()
        if returncode is not None:
            return f"{process.name} {_describe_exit(returncode)}", returncode or 1
    return None


def _wait_for_end(workers, service, output, signals):
    while True:
        if signals.received:
            output.write_line(f"local_cluster: got {signal.Signals(signals.received).name}; "
                              f"sending SIGTERM to the workers")
            return None
        returncodes = [worker.process.poll() for worker in workers]
        for worker, returncode in zip(workers, returncodes):
            if returncode not in (None, 0):
                return f"{worker.name} {_describe_exit(returncode)}", returncode
        if all(returncode == 0 for returncode in returncodes):
            return None
        ended = _ended(service)
        if ended:
            return ended
        time.sleep(_POLL_S)


def _stop(workers, grace_s, output):
    """SIGTERM to the processes still running, SIGKILL to whatever is left after `grace_s` (their children too)."""
    running = [worker for worker in workers if worker.process.poll() is None]
    for worker in running:
        worker.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for worker in running:
        try:
            worker.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            output.write_line(f"local_cluster: {worker.name} still running {grace_s:g} s after SIGTERM; "
                              f"sending SIGKILL")
    for worker in workers:
        worker.signal_group(signal.SIGKILL)
        worker.process.wait()
        worker.reader.join()
