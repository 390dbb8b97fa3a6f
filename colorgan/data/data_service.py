"""tf.data service: the training input pipeline run by other processes (CPU-only machines), so that few host cores
can feed many accelerators.

A dispatcher hands out the work; workers run the pipeline and serve its batches; the trainer (`--data_service=`)
reads from them. Work is split dynamically by shard file of an epoch (`input_pipeline.make_dataset`'s service
source): each (epoch, file) goes to one worker, which reads it, shuffles within its buffer, decodes and batches. So
every example of an epoch is delivered at most once, in no fixed order (a worker that dies loses the files it
held), and a restarted trainer starts a new job at the epoch it stopped in.

The dispatcher and workers listen on all interfaces and run whatever pipeline they are sent, without
authentication: keep them on a private network (BUILD.md, "tf.data service").
"""

import dataclasses
import re
import signal
import socket
import threading
import time

from colorgan.core import flag_config
from colorgan.core import slurm_nodes

ROLES = ("dispatcher", "worker")
# What the trainer and workers accept as a dispatcher address: [grpc://]host:port; the trainer also takes
# slurm:JOB_ID:PORT, the dispatcher of a running launch/slurm/data_service.sbatch job.
_SLURM_JOB = re.compile(r"^slurm:(?P<job>[0-9]+):(?P<port>[0-9]{1,5})$")
_ADDRESS = re.compile(r"^(grpc://)?(?P<host>\[[0-9a-fA-F:.]+\]|[^:/\s]+):(?P<port>[0-9]{1,5})$")
WAIT_FOR_DISPATCHER_S = 30.0
# A worker learns of new jobs at its heartbeat: TensorFlow's default, 30 s, leaves a worker that registered after a
# trainer started idle for that long.
HEARTBEAT_MS = 2000
# The start of the line a worker prints once registered with its dispatcher (launchers wait for it).
WORKER_READY = "data_service: worker at "
# The line each process prints when stopped (`serve`): the CPU time it spent serving, which shows who did the work.
# Launchers may prefix a process's lines with "[label] ".
_STOPPED = re.compile(r"(?:\[(?P<label>[^\]]+)\] )?data_service: (?P<role>dispatcher|worker) stopping \(\w+\) after "
                      r"(?P<seconds>[\d.]+) CPU-s serving")

_field = flag_config.field


@dataclasses.dataclass(frozen=True)
class ServiceConfig:
    role: str = _field("", "dispatcher (hands out the work, one per training run) or worker (runs the input "
                           "pipeline).")
    port: int = _field(0, "Port to listen on, on every interface (0: any free port, printed at start-up).")
    dispatcher: str = _field("", "Worker: the dispatcher's address, host:port.")
    worker_address: str = _field("", "Worker: the host:port trainers reach this worker at; %port% stands for the "
                                     "port it listens on (default: this host's name:%port%).")
    work_dir: str = _field("", "Dispatcher: a directory where it journals its state, so that a restarted "
                               "dispatcher resumes its jobs (fault-tolerant mode).")
    cluster: str = _field("", "slurm: every task of a Slurm job step takes its role: task 0 the dispatcher on "
                              "--port, the others workers at their node's address (launch/slurm/data_service.sbatch).")

    def validate(self):
        """Every problem as one line naming its flag."""
        problems = []
        if not 0 <= self.port < 65536:
            problems.append(f"--port={self.port}: must be in [0, 65535]")
        if self.cluster:
            if self.cluster != "slurm":
                problems.append(f"--cluster={self.cluster}: expected slurm, or nothing")
            if self.role or self.dispatcher or self.worker_address:
                problems.append("--role, --dispatcher and --worker_address come from Slurm with --cluster=slurm")
            if not self.port:
                problems.append("--cluster=slurm needs --port: the dispatcher's, which trainers are given")
            return problems
        if self.role not in ROLES:
            problems.append(f"--role={self.role}: expected one of {', '.join(ROLES)}")
        if self.role == "worker" and not parse_address(self.dispatcher):
            problems.append(f"--dispatcher={self.dispatcher!r}: a worker needs the dispatcher's host:port")
        if self.role != "worker" and (self.dispatcher or self.worker_address):
            problems.append("--dispatcher and --worker_address are for --role=worker")
        if self.worker_address and not parse_address(self.worker_address.replace("%port%", "1")):
            problems.append(f"--worker_address={self.worker_address!r}: expected host:port")
        if self.role != "dispatcher" and self.work_dir:
            problems.append("--work_dir is for --role=dispatcher")
        return problems


def serving_cpu_seconds(output):
    """[(label or "", role, CPU-s spent serving)] for each stopped service process whose last line is in `output`."""
    return [(match["label"] or "", match["role"], float(match["seconds"])) for match in _STOPPED.finditer(output)]


def parse_address(address):
    """(host, port) of '[grpc://]host:port', or None."""
    match = _ADDRESS.match(address or "")
    if not match or not 0 < int(match["port"]) < 65536:
        return None
    return match["host"].strip("[]"), int(match["port"])


def is_address(address):
    """Whether `address` is a dispatcher's [grpc://]host:port or slurm:JOB_ID:PORT."""
    return bool(parse_address(address) or _SLURM_JOB.match(address or ""))


def resolve_address(address):
    """host:port of a dispatcher `address`: itself, or for slurm:JOB_ID:PORT the first node of the running Slurm
    job JOB_ID (launch/slurm/data_service.sbatch, whose first task dispatches) at PORT; RuntimeError naming the job
    otherwise."""
    match = _SLURM_JOB.match(address)
    if not match:
        return address
    node = slurm_nodes.job_first_node(match["job"])
    return f"{slurm_nodes.host_part(slurm_nodes.node_addresses([node])[node])}:{match['port']}"


def slurm_task(config, environ):
    """This task's config with --cluster=slurm: task 0 (SLURM_PROCID) the dispatcher; the others workers on a free
    port at their node's (SLURMD_NODENAME) address, for the dispatcher on the step's first node. ValueError naming a
    missing variable."""
    missing = [name for name in ("SLURM_PROCID", "SLURMD_NODENAME", "SLURM_STEP_NODELIST") if name not in environ]
    if missing:
        raise ValueError(f"{missing[0]} is not set: --cluster=slurm runs in a job step started by srun")
    if environ["SLURM_PROCID"] == "0":
        return dataclasses.replace(config, cluster="", role="dispatcher")
    first, node = slurm_nodes.expand_nodelist(environ["SLURM_STEP_NODELIST"])[0], environ["SLURMD_NODENAME"]
    addresses = {name: slurm_nodes.host_part(address)
                 for name, address in slurm_nodes.node_addresses([first, node]).items()}
    return dataclasses.replace(config, cluster="", role="worker", port=0,
                               dispatcher=f"{addresses[first]}:{config.port}",
                               worker_address=f"{addresses[node]}:%port%")


def unreachable(address, wait_s=WAIT_FOR_DISPATCHER_S):
    """Why nothing answers at the dispatcher `address` after trying for `wait_s` seconds (a dispatcher started
    beside the trainer may still be loading), or None once a TCP connection opens: TensorFlow's client would
    instead retry silently for an hour."""
    host, port = parse_address(address)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=max(1.0, deadline - time.monotonic())):
                return None
        except OSError as e:
            if time.monotonic() >= deadline:
                return f"no dispatcher answered there in {wait_s:g} s ({e.strerror or e})"
        time.sleep(1.0)


def serve(config, log=print):
    """Runs a dispatcher or a worker until SIGTERM or SIGINT; returns the exit status (128 + the signal), after a
    line with the CPU time it spent serving (a worker's is its share of the pipeline work)."""
    import tensorflow as tf  # noqa: PLC0415 - flags are checked before TensorFlow loads.

    service = tf.data.experimental.service
    if config.role == "dispatcher":
        server = service.DispatchServer(service.DispatcherConfig(
            port=config.port, work_dir=config.work_dir or None, fault_tolerant_mode=bool(config.work_dir)))
        log(f"data_service: dispatcher listening on port {server.target.rsplit(':', 1)[1]}")
    else:
        host, port = parse_address(config.dispatcher)
        worker_address = config.worker_address or f"{socket.gethostname()}:%port%"
        server = service.WorkerServer(service.WorkerConfig(
            dispatcher_address=f"{host}:{port}", worker_address=worker_address, port=config.port,
            heartbeat_interval_ms=HEARTBEAT_MS))
        bound_port = server._address.rsplit(":", 1)[1]  # WorkerServer has no public accessor
        log(f"{WORKER_READY}{worker_address.replace('%port%', bound_port)} serving for the dispatcher at "
            f"{host}:{port}")
    serving_since = time.process_time()
    signum = _wait_for_stop_signal()
    log(f"data_service: {config.role} stopping ({signal.Signals(signum).name}) after "
        f"{time.process_time() - serving_since:.2f} CPU-s serving")
    return 128 + signum


def _wait_for_stop_signal():
    """Blocks until SIGTERM or SIGINT (the servers run on their own threads); returns which."""
    received = []
    stopped = threading.Event()

    def record(signum, _frame):
        received.append(signum)
        stopped.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, record)
    while not stopped.wait(0.5):
        pass
    return received[0]


def distributed(dataset, address, job_name):
    """`dataset` run by the service at `address`, split dynamically (by the splits of its source: its service
    source yields one (epoch, shard file) per split) and shared by every trainer that names the same job.

    Uncompressed: decoded pixels hardly compress, and TensorFlow's default (snappy) cost the trainer's process as
    much CPU per batch as running the pipeline itself (bench_data_service.py; BUILD.md, "tf.data service")."""
    import tensorflow as tf  # noqa: PLC0415

    host, port = parse_address(address)
    return dataset.apply(tf.data.experimental.service.distribute(
        processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC, service=f"grpc://{host}:{port}",
        job_name=job_name, compression=None))
