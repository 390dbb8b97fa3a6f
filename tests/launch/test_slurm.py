"""launch/slurm/train.sbatch as shipped, under a real single-node Slurm started for the test session.

Debian's slurmctld, slurmd and munge are installed with apt-get when missing; the daemons run as children of the
test, with their config, keys, sockets, state and logs in a temporary folder and their ports on 127.0.0.1. The node
is named colorgan-test and has NodeAddr=127.0.0.1, so every worker address the job resolves is loopback. Slurm
needs root (slurmd starts jobs as their user): elsewhere the test skips with a one-line reason, and fails under
CI=true.

COLORGAN_SLURM_TEST_TASKS overrides the number of tasks (workers) on the node (2).
"""

import ipaddress
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import REPO_ROOT
from conftest import skip_unless_ci

from colorgan.data import data_service

NODE = "colorgan-test"
TASKS = int(os.environ.get("COLORGAN_SLURM_TEST_TASKS", "2"))
JOB_NAME = "colorgan-unet256"  # train.sbatch's --job-name, which names its log
COMMANDS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scancel", "scontrol", "sinfo", "squeue")
PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client")
ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
         "TIMEOUT"}


def _install_slurm():
    """Installs Slurm and munge with apt-get where they are missing, or skips (fails under CI) saying why not."""
    if all(shutil.which(command) for command in COMMANDS):
        return
    if os.geteuid() != 0:
        skip_unless_ci("Slurm is not installed, and installing and running it needs root")
    if not shutil.which("apt-get"):
        skip_unless_ci("Slurm is not installed, and there is no apt-get to install it")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    for command in (["apt-get", *lock, "update", "-qq"],
                    ["apt-get", *lock, "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            skip_unless_ci(f"{' '.join(command)} failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}")


def _used_ports():
    """Local TCP ports in any state, read from /proc/net/tcp{,6} (so nothing is connected to find them)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as f:
            ports.update(int(line.split()[1].rsplit(":", 1)[1], 16) for line in f.readlines()[1:])
    return ports


def _consecutive_free_ports(count):
    """`count` consecutive ports that no socket uses, below the kernel's ephemeral range (where other tests' port-0
    binds land)."""
    used = _used_ports()
    for _ in range(1000):
        first = random.randrange(20000, 32000 - count)
        if not used & set(range(first, first + count)):
            return list(range(first, first + count))
    raise AssertionError("no free ports between 20000 and 32000")


def _connections():
    """(local address, local port, remote address, remote port) of every established TCP connection here."""
    def address(hex_address):
        raw = bytes.fromhex(hex_address)  # the kernel's 32-bit words, each in host (little-endian) order
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
        parsed = ipaddress.ip_address(raw)
        return getattr(parsed, "ipv4_mapped", None) or parsed

    connections = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table, encoding="ascii") as f:
            for line in f.readlines()[1:]:
                local, remote, state = line.split()[1:4]
                if state == "01":  # ESTABLISHED
                    (local_ip, local_port), (remote_ip, remote_port) = (part.split(":") for part in (local, remote))
                    connections.append((address(local_ip), int(local_port, 16), address(remote_ip),
                                        int(remote_port, 16)))
    return connections


class Slurm:
    """A running single-node Slurm: `env` is ours plus SLURM_CONF; `port_base` is free for the job's workers,
    `service_port` for a tf.data service's dispatcher."""

    def __init__(self, directory, env, port_base, service_port):
        self.directory, self.env, self.port_base, self.service_port = directory, env, port_base, service_port

    def run(self, *command, env=None, timeout=120, check=True, **kwargs):
        """Runs a Slurm command against this cluster; a failure shows the daemons' logs."""
        result = subprocess.run(command, env=env or self.env, capture_output=True, text=True, timeout=timeout,
                                **kwargs)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()}\n"
                                 f"{_daemon_logs(self.directory)}")
        return result

    def job_fields(self, job_id):
        """scontrol's fields of a job (JobState, ExitCode, ...)."""
        line = self.run("scontrol", "--oneliner", "show", "job", job_id).stdout
        return dict(re.findall(r"(\w+)=(\S*)", line))

    def wait_for_end(self, job_id, timeout):
        deadline = time.monotonic() + timeout
        while (fields := self.job_fields(job_id))["JobState"] not in ENDED:
            assert time.monotonic() < deadline, (f"job {job_id} still {fields['JobState']} ({fields.get('Reason')}) "
                                                 f"after {timeout} s")
            time.sleep(0.5)
        return fields


def _slurm_conf(directory, munge_socket, ctld_port, slurmd_port):
    hostname = socket.gethostname().split(".")[0]
    return f"""\
ClusterName=colorgan
SlurmctldHost={hostname}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={directory}/state
SlurmdSpoolDir={directory}/spool
SlurmctldPidFile={directory}/slurmctld.pid
SlurmdPidFile={directory}/slurmd.pid
SlurmctldLogFile={directory}/slurmctld.log
SlurmdLogFile={directory}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
MinJobAge=600
# slurmd answers slowly while the trainers keep both cores busy.
MessageTimeout=60
PropagateResourceLimits=NONE
# More CPUs than the host has (config_overrides keeps the node up), so that a data service job and a training job
# of one CPU per task fit on the one node side by side.
SlurmdParameters=config_overrides
NodeName={NODE} NodeAddr=127.0.0.1 NodeHostname={hostname} CPUs={max(8, os.cpu_count())} State=UNKNOWN
PartitionName=test Nodes={NODE} Default=YES MaxTime=INFINITE State=UP
"""


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """munged, slurmctld and slurmd for the session, on 127.0.0.1; stopped (their jobs cancelled) at its end."""
    if os.geteuid() != 0:
        skip_unless_ci("a test Slurm runs as root (slurmd starts jobs as their user)")
    _install_slurm()
    directory = tmp_path_factory.mktemp("slurm")
    for name in ("state", "spool"):
        (directory / name).mkdir()
    key = directory / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    munge_socket = directory / "munge.socket"
    ctld_port, slurmd_port, service_port, *worker_ports = _consecutive_free_ports(3 + TASKS)
    conf = directory / "slurm.conf"
    conf.write_text(_slurm_conf(directory, munge_socket, ctld_port, slurmd_port))
    env = dict(os.environ, SLURM_CONF=str(conf))
    daemons = []

    def start(*command):
        with open(directory / f"{command[0]}.out", "ab") as out:
            daemons.append(subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True))

    cluster = Slurm(directory, env, worker_ports[0], service_port)
    try:
        start("munged", "--foreground", "--force", f"--key-file={key}", f"--socket={munge_socket}",
              f"--pid-file={directory}/munged.pid", f"--log-file={directory}/munged.log",
              f"--seed-file={directory}/munged.seed")
        _wait_for(lambda: munge_socket.exists(), 30, "munged's socket", directory)
        start("slurmctld", "-D", "-f", str(conf))
        start("slurmd", "-D", "-N", NODE, "-f", str(conf))
        _wait_for(lambda: cluster.run("sinfo", "--noheader", "--nodes", NODE, "--format=%t", check=False)
                  .stdout.strip() == "idle", 60, f"node {NODE} idle", directory)
        yield cluster
    finally:
        jobs = cluster.run("squeue", "--noheader", "--format=%i", check=False).stdout.split() if daemons else []
        if jobs:
            cluster.run("scancel", *jobs, check=False)
            _wait_for(lambda: not cluster.run("squeue", "--noheader", check=False).stdout.strip(), 60,
                      "cancelled jobs to end", directory)
        for daemon in reversed(daemons):
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()


def _wait_for(condition, timeout, what, directory):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout} s\n{_daemon_logs(directory)}")
        time.sleep(0.2)


def _daemon_logs(directory):
    """The end of each daemon's log and output."""
    return "\n".join(f"--- {path.name}:\n{path.read_text(errors='replace')[-2000:]}"
                     for path in sorted(directory.glob("*.log")) + sorted(directory.glob("*.out")))


def _tiny_run(photo_dir, tmp_path):
    """Records and a flagfile for a tiny U-Net + PatchGAN that never finishes by itself."""
    import run_dirs

    data_dir = tmp_path / "data"
    run_dirs.write_records(photo_dir, str(data_dir), 40, num_shards=2, val_fraction=0.25)
    flagfile = tmp_path / "tiny.cfg"
    flagfile.write_text("\n".join([
        "--generator=unet", "--discriminator=patchgan", "--image_size=32", "--base_width=4", "--depth=3",
        "--norm=none", f"--batch_size={2 * TASKS}", "--train_steps=100000", "--checkpoint_every=100000",
        "--log_every=2", "--eval_every=0", "--shuffle_buffer=64"]) + "\n")
    return data_dir, flagfile


def _checkpoint_step(model_dir):
    import tensorflow as tf

    return int(tf.train.load_checkpoint(str(model_dir)).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))


def test_train_sbatch_trains_stops_on_scancel_term_and_resumes_on_loopback(slurm, photo_dir, tmp_path):
    """The shipped script on one node without GPUs (and without nvidia-smi), TASKS workers: it trains, talking only
    to 127.0.0.1; `scancel --signal=TERM` makes every worker checkpoint at the same step, and the job exit 143;
    submitted again it resumes from that checkpoint and finishes. One log file per job holds all its workers."""
    data_dir, flagfile = _tiny_run(photo_dir, tmp_path)
    model_dir, logs = tmp_path / "model", tmp_path / "logs"
    logs.mkdir()
    env = dict(slurm.env, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{slurm.env['PATH']}",
               FLAGFILE=str(flagfile), DATA_DIR=str(data_dir), MODEL_DIR=str(model_dir),
               COLORGAN_PORT_BASE=str(slurm.port_base))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    # The #SBATCH lines ask for 2 nodes of 8 GPUs; the command line sizes the job to this node.
    size = ["--nodes=1", f"--ntasks-per-node={TASKS}", "--gpus-per-node=0", "--cpus-per-task=1",
            f"--output={logs}/%x-%j.out"]

    def submit():
        """The job id."""
        result = slurm.run("sbatch", "--parsable", *size, "launch/slurm/train.sbatch", env=env, cwd=REPO_ROOT)
        return result.stdout.strip().split(";")[0]

    def log(job_id):
        return (logs / f"{JOB_NAME}-{job_id}.out").read_text(errors="replace")

    worker_ports = set(range(slurm.port_base, slurm.port_base + TASKS))
    first = submit()
    try:
        metrics = model_dir / "metrics.jsonl"
        deadline = time.monotonic() + 300
        while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
            state = slurm.job_fields(first)["JobState"]
            assert state not in ENDED and time.monotonic() < deadline, (
                f"job {first} {state} before training:\n{log(first)[-4000:]}")
            time.sleep(0.5)
        between_workers = [connection for connection in _connections() if {connection[1], connection[3]} & worker_ports]
        assert between_workers, "the workers hold no connection on their ports"
        assert all(local.is_loopback and remote.is_loopback for local, _, remote, _ in between_workers), (
            between_workers)
        slurm.run("scancel", "--signal=TERM", first)
        fields = slurm.wait_for_end(first, timeout=300)
    finally:
        slurm.run("scancel", first, check=False)
    output = log(first)
    assert fields["ExitCode"] == "143:0", (fields, output[-4000:])
    stops = re.findall(r"train: stop requested \((?:SIGTERM|by another worker)\); checkpointing at step (\d+)", output)
    assert len(stops) == TASKS and len(set(stops)) == 1, output[-4000:]
    stopped_at = int(stops[0])
    assert "Traceback" not in output, output[-4000:]
    assert _checkpoint_step(model_dir) == stopped_at

    # Submitted again, with a flagfile that ends the run 4 steps later: it resumes where the first job stopped.
    finish = tmp_path / "finish.cfg"
    finish.write_text(f"--flagfile={flagfile}\n--train_steps={stopped_at + 4}\n")
    env["FLAGFILE"] = str(finish)
    second = submit()
    fields = slurm.wait_for_end(second, timeout=300)
    output = log(second)
    assert (fields["JobState"], fields["ExitCode"]) == ("COMPLETED", "0:0"), (fields, output[-4000:])
    assert len(re.findall(rf"train: restored \S+ at step {stopped_at}\n", output)) == TASKS, output[-4000:]
    assert f"train: done at step {stopped_at + 4};" in output, output[-4000:]
    assert _checkpoint_step(model_dir) == stopped_at + 4
    assert sorted(path.name for path in logs.iterdir()) == sorted(f"{JOB_NAME}-{job}.out" for job in (first, second))

    # What each task of such a step resolves: every worker at 127.0.0.1, its own port, no GPU.
    probe = ("import json, os; from colorgan.training import distribute; r = distribute.slurm_cluster_resolver(); "
             "print(json.dumps([r.task_id, r.cluster_spec().as_dict(), r.num_accelerators(), "
             "os.environ['CUDA_VISIBLE_DEVICES']]))")
    result = slurm.run("srun", "--nodes=1", f"--ntasks={TASKS}", "--cpus-per-task=1", sys.executable, "-c", probe,
                       env=env, cwd=REPO_ROOT, timeout=180)
    workers = [f"127.0.0.1:{port}" for port in sorted(worker_ports)]
    assert sorted(json.loads(line) for line in result.stdout.splitlines()) == [
        [task, {"worker": workers}, {"GPU": 0}, ""] for task in range(TASKS)]


def test_train_sbatch_trains_through_the_data_service_job_beside_it(slurm, photo_dir, tmp_path):
    """launch/slurm/data_service.sbatch as shipped (three tasks: a dispatcher and two workers, at the node's
    address, 127.0.0.1) and train.sbatch naming it (DATA_SERVICE=slurm:JOB_ID:PORT, --dependency=after): the TASKS
    trainers read from the service, finish, and both service workers did pipeline work."""
    data_dir, flagfile = _tiny_run(photo_dir, tmp_path)
    short = tmp_path / "short.cfg"
    short.write_text(f"--flagfile={flagfile}\n--train_steps=6\n")
    model_dir, logs = tmp_path / "model", tmp_path / "logs"
    logs.mkdir()
    env = dict(slurm.env, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{slurm.env['PATH']}",
               FLAGFILE=str(short), DATA_DIR=str(data_dir), MODEL_DIR=str(model_dir),
               COLORGAN_PORT_BASE=str(slurm.port_base), COLORGAN_SERVICE_PORT=str(slurm.service_port))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    service = slurm.run("sbatch", "--parsable", "--nodes=1", "--ntasks-per-node=3", "--cpus-per-task=1",
                        f"--output={logs}/%x-%j.out", "launch/slurm/data_service.sbatch", env=env,
                        cwd=REPO_ROOT).stdout.strip().split(";")[0]
    try:
        # The trainers' --exclusive would keep them off the service's node: exclusive of other users' jobs instead.
        training = slurm.run(
            "sbatch", "--parsable", f"--dependency=after:{service}", "--nodes=1", f"--ntasks-per-node={TASKS}",
            "--gpus-per-node=0", "--cpus-per-task=1", "--exclusive=user", f"--output={logs}/%x-%j.out",
            "launch/slurm/train.sbatch", env=dict(env, DATA_SERVICE=f"slurm:{service}:{slurm.service_port}"),
            cwd=REPO_ROOT).stdout.strip().split(";")[0]
        fields = slurm.wait_for_end(training, timeout=300)
        slurm.run("scancel", "--signal=TERM", service)
        slurm.wait_for_end(service, timeout=120)
    finally:
        slurm.run("scancel", service, check=False)
    trained = (logs / f"{JOB_NAME}-{training}.out").read_text(errors="replace")
    served = (logs / f"colorgan-data-service-{service}.out").read_text(errors="replace")
    assert (fields["JobState"], fields["ExitCode"]) == ("COMPLETED", "0:0"), (fields, trained[-4000:], served[-3000:])
    dispatcher = f"127.0.0.1:{slurm.service_port}"
    assert trained.count(f"train: training input from the tf.data service at {dispatcher}, job ") == TASKS, (
        trained[-4000:])
    assert trained.count("train: done at step 6;") == TASKS, trained[-4000:]
    assert served.count(f"serving for the dispatcher at {dispatcher}") == 2, served[-4000:]
    cpu = [seconds for _, role, seconds in data_service.serving_cpu_seconds(served) if role == "worker"]
    assert len(cpu) == 2 and min(cpu) > 0.2, served[-4000:]
    assert "data_service: dispatcher stopping (SIGTERM)" in served and "Traceback" not in trained + served
    assert _checkpoint_step(model_dir) == 6
