"""Tests of colorgan/training/local_cluster.py and launch/local_cluster.py with real worker processes on 127.0.0.1."""

import io
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO_ROOT
from conftest import run_script
from conftest import skip_unless_ci

from colorgan.data import data_service
from colorgan.training import local_cluster

SCRIPT = "launch/local_cluster.py"

# A stand-in for the trainer, without TensorFlow: reports its TF_CONFIG and arguments, then runs its arguments as
# steps `action:target[:value]`, where target is a worker index or "all".
FAKE_WORKER = r'''
import json, os, signal, sys, time

config = json.loads(os.environ["TF_CONFIG"])
index = config["task"]["index"]
print(f"index={index} cluster={','.join(config['cluster']['worker'])} args={json.dumps(sys.argv[1:])}")
for step in sys.argv[1:]:
    action, target, value = (step.split(":", 2) + ["", ""])[:3]
    if target not in ("all", str(index)):
        continue
    if action == "lines":
        for k in range(int(value)):
            print(f"line {index} {k} " + "x" * 500)
    elif action == "exit":
        sys.exit(int(value))
    elif action == "kill_self":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif action == "exit_on_term":
        signal.signal(signal.SIGTERM, lambda *_: (print("got SIGTERM"), sys.exit(0)))
    elif action == "touch":
        open(value, "w").close()
    elif action == "wait_for":
        while not os.path.exists(value):
            time.sleep(0.01)
    elif action == "count_run":
        with open(os.path.join(value, f"runs-{index}"), "a") as f:
            f.write("run\n")
    elif action == "fail_first_run":
        with open(os.path.join(value, f"runs-{index}")) as f:
            if len(f.readlines()) == 1:
                sys.exit(3)
    elif action == "hang":
        print("hanging")
        time.sleep(60)
'''

# The one real TensorFlow check: two workers agree on a cluster and all-reduce across it, then report their PIDs and
# TF_CONFIG ports and keep their servers up until the file named by their argument exists.
TF_WORKER = r'''
import json, os, sys, time
import tensorflow as tf

strategy = tf.distribute.MultiWorkerMirroredStrategy()
total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.constant(1.0)), axis=None)
ports = [address.rsplit(":", 1)[1] for address in json.loads(os.environ["TF_CONFIG"])["cluster"]["worker"]]
print(f"sum={float(total)} pid={os.getpid()} ports={','.join(ports)}")
while not os.path.exists(sys.argv[1]):
    time.sleep(0.05)
'''

LINE = re.compile(r"\[worker (\d+)\] (.*)")
NO_NAMESPACE = "local_cluster: warning: no private network namespace for the workers ("


@pytest.fixture
def fake_worker(tmp_path):
    path = tmp_path / "fake_worker.py"
    path.write_text(FAKE_WORKER)
    return str(path)


def _run(fake_worker, num_workers, *steps, **kwargs):
    """Runs the fake worker in process; returns (exit status, output lines, seconds taken). The warning of a host
    where no network namespace can be made is left out (the tests of isolation look at it)."""
    out = io.StringIO()
    start = time.monotonic()
    code = local_cluster.run_local_cluster(num_workers, fake_worker, steps, out=out, **kwargs)
    lines = [line for line in out.getvalue().splitlines() if not line.startswith(NO_NAMESPACE)]
    return code, lines, time.monotonic() - start


def _reports(lines):
    """{worker index from the prefix: (index from TF_CONFIG, cluster, program arguments)} from the fake's first line."""
    reports = {}
    for line in lines:
        match = LINE.fullmatch(line)
        if match and match[2].startswith("index="):
            fields = dict(field.split("=", 1) for field in match[2].split(" ", 2))
            reports[int(match[1])] = (int(fields["index"]), fields["cluster"].split(","), json.loads(fields["args"]))
    return reports


def test_free_ports_are_distinct():
    ports = local_cluster.free_ports(8)
    assert len(set(ports)) == 8 and all(0 < port < 65536 for port in ports)


def test_tf_config_names_every_worker_and_this_task():
    assert json.loads(local_cluster.tf_config([1234, 5678], 1)) == {
        "cluster": {"worker": ["127.0.0.1:1234", "127.0.0.1:5678"]}, "task": {"type": "worker", "index": 1}}


def test_workers_share_one_cluster_and_each_line_is_prefixed(fake_worker):
    code, lines, _ = _run(fake_worker, 3, "lines:all:300")
    assert code == 0
    reports = _reports(lines)
    assert sorted(reports) == [0, 1, 2]
    assert all(index == prefix for prefix, (index, _, _) in reports.items())
    cluster = reports[0][1]
    assert all(report[1] == cluster for report in reports.values())
    assert len(set(cluster)) == 3 and all(re.fullmatch(r"127\.0\.0\.1:\d+", address) for address in cluster)
    # 3 x 300 long lines written at once: every line arrives whole, under its own worker's prefix.
    counts = {0: 0, 1: 0, 2: 0}
    for line in lines:
        prefix, text = LINE.fullmatch(line).groups()
        if text.startswith("line "):
            assert re.fullmatch(rf"line {prefix} \d+ x{{500}}", text)
            counts[int(prefix)] += 1
    assert counts == {0: 300, 1: 300, 2: 300}


def test_a_failed_worker_stops_the_job(fake_worker):
    code, lines, seconds = _run(fake_worker, 2, "hang:0", "exit:1:3")
    assert code == 3
    assert seconds < 15  # Worker 0 would hang for 60 s: it was terminated.
    assert lines[-1] == "local_cluster: worker 1 exited with code 3; the job failed"


def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace_period(fake_worker, tmp_path):
    ready = tmp_path / "ready"
    code, lines, seconds = _run(fake_worker, 2, "ignore_term:0", f"touch:0:{ready}", "hang:0",
                                f"wait_for:1:{ready}", "exit:1:3", grace_s=0.5)
    assert code == 3
    assert 0.5 <= seconds < 15
    assert "local_cluster: worker 0 still running 0.5 s after SIGTERM; sending SIGKILL" in lines


def test_a_worker_killed_by_a_signal_fails_the_job(fake_worker):
    code, lines, _ = _run(fake_worker, 2, "kill_self:1", "hang:0")
    assert code == 128 + signal.SIGKILL
    assert lines[-1] == "local_cluster: worker 1 was killed by signal 9 (SIGKILL); the job failed"


def test_restart_after_one_failure_succeeds(fake_worker, tmp_path):
    code, lines, _ = _run(fake_worker, 2, f"count_run:all:{tmp_path}", f"fail_first_run:1:{tmp_path}", restarts=1)
    assert code == 0
    assert (tmp_path / "runs-1").read_text().count("run") == 2
    assert [line for line in lines if line.startswith("local_cluster:")] == [
        "local_cluster: worker 1 exited with code 3; restarting the job (1 of 1)"]


def test_restarts_run_out(fake_worker, tmp_path):
    code, lines, _ = _run(fake_worker, 2, f"count_run:1:{tmp_path}", "exit:1:4", restarts=2)
    assert code == 4
    assert (tmp_path / "runs-1").read_text().count("run") == 3
    assert [line for line in lines if line.startswith("local_cluster:")] == [
        "local_cluster: worker 1 exited with code 4; restarting the job (1 of 2)",
        "local_cluster: worker 1 exited with code 4; restarting the job (2 of 2)",
        "local_cluster: worker 1 exited with code 4; no restarts left, the job failed"]


def test_without_a_namespace_the_job_runs_after_one_warning_or_not_at_all_if_required(fake_worker, monkeypatch):
    monkeypatch.setattr(local_cluster, "_UNSHARE_OPTIONS", (("--net", "--no-such-option"),))
    out = io.StringIO()
    assert local_cluster.run_local_cluster(2, fake_worker, ["exit:1:3"], restarts=1, out=out) == 3
    lines = out.getvalue().splitlines()
    assert [line for line in lines if line.startswith(NO_NAMESPACE)] == [  # once, not once per attempt
        f"{NO_NAMESPACE}unshare: unrecognized option '--no-such-option'); "
        f"their TensorFlow ports listen on every interface, reachable from the network"]
    assert sorted(_reports(lines)) == [0, 1]
    out = io.StringIO()
    assert local_cluster.run_local_cluster(2, fake_worker, [], out=out, require_isolation=True) == 2
    assert out.getvalue().splitlines() == [
        "local_cluster: error: no private network namespace for the workers (unshare: unrecognized option "
        "'--no-such-option'); not starting them with ports reachable from the network"]


def test_cli_forwards_everything_after_the_double_dash(fake_worker):
    result = run_script(SCRIPT, "--num_workers=2", f"--program={fake_worker}", "--", "--flagfile=x.cfg", "--",
                        "tail", timeout=60, check=True)
    reports = _reports(result.stdout.splitlines())
    assert {prefix: args for prefix, (_, _, args) in reports.items()} == {
        0: ["--flagfile=x.cfg", "--", "tail"], 1: ["--flagfile=x.cfg", "--", "tail"]}


@pytest.mark.parametrize("flag, error", [
    ("--num_workers=0", "local_cluster: error: --num_workers=0: must be >= 1"),
    ("--restarts=-1", "local_cluster: error: --restarts=-1: must be >= 0"),
    ("--program=/no/such.py", "local_cluster: error: --program=/no/such.py: no such file"),
    ("--program=no_such_package.train", "local_cluster: error: --program=no_such_package.train: no such module"),
])
def test_cli_bad_flag_is_one_line(flag, error):
    result = run_script(SCRIPT, flag, "--", "x", timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [error]
    assert result.stdout == ""


def test_cli_sigint_reaches_the_workers_as_sigterm(fake_worker):
    launcher = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, SCRIPT), "--num_workers=2",
                                 f"--program={fake_worker}", "--", "exit_on_term:all", "hang:all"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        hanging = 0
        while hanging < 2:  # Both workers have their SIGTERM handler once they say they hang.
            line = launcher.stdout.readline()
            assert line, "the launcher ended before its workers were ready"
            hanging += line.endswith("] hanging\n")
        launcher.send_signal(signal.SIGINT)
        rest = launcher.stdout.read().splitlines()
        assert launcher.wait(timeout=30) == 128 + signal.SIGINT
    finally:
        launcher.kill()
        launcher.wait()
    assert "local_cluster: got SIGINT; sending SIGTERM to the workers" in rest
    assert sorted(line for line in rest if line.endswith("got SIGTERM")) == [
        "[worker 0] got SIGTERM", "[worker 1] got SIGTERM"]


def _listeners(net_dir):
    """{port: [address, ...]} of the TCP sockets in LISTEN state in a network namespace's /proc/.../net tables."""
    listeners = {}
    for table in ("tcp", "tcp6"):
        with open(os.path.join(net_dir, table)) as f:
            for row in f.readlines()[1:]:
                local, state = row.split()[1], row.split()[3]
                if state != "0A":  # TCP_LISTEN
                    continue
                address, port = local.split(":")
                raw = bytes.fromhex(address)
                if sys.byteorder == "little":  # each 32-bit word of the address is printed in host byte order
                    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                ip = ipaddress.ip_address(raw)
                listeners.setdefault(int(port, 16), []).append(getattr(ip, "ipv4_mapped", None) or ip)
    return listeners


def _interfaces(pid):
    """The network interfaces of process pid's network namespace."""
    with open(f"/proc/{pid}/net/dev") as f:
        return sorted(row.split(":")[0].strip() for row in f.readlines()[2:])


def _why_no_namespace():
    """None when this host lets us make a network namespace (as the launcher would), else why not."""
    unshare = shutil.which("unshare")
    if not unshare:
        return "no unshare(1) on this host"
    for extra in ([], ["--map-root-user"]):
        result = subprocess.run([unshare, "--net", *extra, "true"], capture_output=True, text=True)
        if result.returncode == 0:
            return None
    return f"no network namespace can be made here: {result.stderr.strip()}"


def test_two_tensorflow_workers_all_reduce_in_a_namespace_that_is_only_loopback(tmp_path):
    """TF's gRPC servers listen on every interface whatever TF_CONFIG says: the job's sockets must be reachable only
    from 127.0.0.1, i.e. bound to loopback, or in a network namespace whose only interface is loopback (and not in
    ours). Read from each worker's own /proc/PID/net, while the workers are up; nothing connects anywhere."""
    program, release = tmp_path / "all_reduce.py", tmp_path / "release"
    program.write_text(TF_WORKER)
    no_namespace = _why_no_namespace()
    launcher = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, SCRIPT), "--num_workers=2",
                                 f"--program={program}", "--", str(release)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines, workers = [], {}
        while len(workers) < 2:
            lines.append(launcher.stdout.readline())
            assert lines[-1], "".join(lines)[-3000:]
            match = re.fullmatch(r"\[worker (\d)\] sum=2\.0 pid=(\d+) ports=([\d,]+)\n", lines[-1])
            if match:
                workers[int(match[1])] = int(match[2]), [int(port) for port in match[3].split(",")]
        ports = workers[0][1]
        assert workers[1][1] == ports and len(set(ports)) == 2
        if no_namespace is None:
            for index, (pid, _) in workers.items():
                listening = _listeners(f"/proc/{pid}/net")
                assert set(ports) <= set(listening), f"worker {index}: TF_CONFIG ports {ports} not listening"
                exposed = {port: listening[port] for port in ports if not all(ip.is_loopback for ip in listening[port])}
                assert not exposed or _interfaces(pid) == ["lo"], (
                    f"worker {index} listens on {exposed} in a namespace with interfaces {_interfaces(pid)}")
            ours = _listeners("/proc/self/net")
            assert not set(ports) & set(ours), f"{ports} listening in the launcher's namespace: {ours}"
            assert os.readlink(f"/proc/{workers[0][0]}/ns/net") == os.readlink(f"/proc/{workers[1][0]}/ns/net")
        release.touch()
        rest = launcher.stdout.read()
        assert launcher.wait(timeout=60) == 0, rest[-3000:]
    finally:
        release.touch()
        launcher.kill()
        launcher.wait()
    if no_namespace is not None:
        assert any("reachable from the network" in line for line in lines + rest.splitlines())
        skip_unless_ci(no_namespace)


def _split_val_unevenly(data_dir, sizes):
    """Rewrites the one-shard val split as shards of `sizes` examples (its first ones), so that the workers, each
    reading its own shards, hold different numbers of val batches."""
    import tensorflow as tf

    from colorgan.data import records

    manifest_path = os.path.join(data_dir, "manifest.json")
    with open(manifest_path, encoding="utf-8") as f:
        manifest = json.load(f)
    [shard] = manifest["splits"]["val"]["shards"]
    serialized = [record.numpy() for record in tf.data.TFRecordDataset(os.path.join(data_dir, shard["file"]))]
    assert len(serialized) >= sum(sizes)
    os.remove(os.path.join(data_dir, shard["file"]))
    shards, start = [], 0
    for index, size in enumerate(sizes):
        name = f"val-{index:05d}-of-{len(sizes):05d}.tfrecord"
        with tf.io.TFRecordWriter(os.path.join(data_dir, name)) as writer:
            for record in serialized[start:start + size]:
                writer.write(record)
        size_bytes, sha256 = records.file_digest(os.path.join(data_dir, name))
        shards.append({"bytes": size_bytes, "file": name, "num_examples": size, "sha256": sha256})
        start += size
    manifest["splits"]["val"] = {"num_examples": sum(sizes), "shards": shards}
    with open(manifest_path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)


def test_two_worker_training_equals_one_process_with_the_same_global_batch(photo_dir, tmp_path):
    """launch/local_cluster.py + launch/train.py --strategy=multi_worker: two real worker processes, one replica
    each, all-reducing over 127.0.0.1. One train shard, so both workers read the same seeded stream and each keeps
    every other example: every global batch holds the same examples as the single process's.

    Evaluation too: val is two shards of 6 and 4 examples, one per worker, so worker 0 holds 3 val batches of 2 and
    worker 1 holds 2; both evaluate 2 (the minimum: a third would wait forever in a collective), which are the 8
    examples the single process's 2 batches of 4 interleave from the same shards. So the eval lines agree."""
    import numpy as np
    import run_dirs
    import tensorflow as tf

    from colorgan.training import checkpoints

    data_dir = str(tmp_path / "data")
    run_dirs.write_records(photo_dir, data_dir, 40, num_shards=1, val_fraction=0.25)
    _split_val_unevenly(data_dir, (6, 4))
    train_flags = [f"--data_dir={data_dir}", "--generator=unet", "--discriminator=patchgan", "--image_size=32",
                   "--base_width=4", "--depth=3", "--norm=none", "--dropout=0", "--batch_size=4", "--train_steps=3",
                   "--log_every=1", "--eval_every=0", "--checkpoint_every=2", "--shuffle_buffer=64",
                   "--deterministic", "--seed=3"]
    cluster = run_script(SCRIPT, "--num_workers=2", "--", "--strategy=multi_worker",
                         f"--model_dir={tmp_path / 'cluster'}", *train_flags, timeout=300)
    assert cluster.returncode == 0, cluster.stdout[-3000:]
    assert "[worker 0] train: CollectiveAllReduceStrategy with 2 replica(s), task worker 0 of 2 workers" in (
        cluster.stdout)
    run_script("launch/train.py", "--strategy=one_device", f"--model_dir={tmp_path / 'single'}", *train_flags,
               check=True)

    def variables(model_dir):
        reader = tf.train.load_checkpoint(str(model_dir))
        return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(str(model_dir))
                if name not in ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/.ATTRIBUTES/VARIABLE_VALUE",
                                checkpoints.PRECISION_KEY)}

    cluster_vars, single_vars = variables(tmp_path / "cluster"), variables(tmp_path / "single")
    assert cluster_vars.keys() == single_vars.keys()
    assert int(cluster_vars["step/.ATTRIBUTES/VARIABLE_VALUE"]) == 3
    for name in cluster_vars:  # float32 sums in another order: the same tolerance as 1 vs 2 local replicas
        np.testing.assert_allclose(cluster_vars[name], single_vars[name], atol=2e-5, rtol=1e-5, err_msg=name)
    # Only the chief wrote the run's files; the other worker's temporary checkpoint directory is gone.
    assert not list((tmp_path / "cluster").glob("workers_tmp/*"))
    lines = [json.loads(line) for line in (tmp_path / "cluster" / "metrics.jsonl").read_text().splitlines()]
    assert [(line["kind"], line["step"]) for line in lines] == [("train", 1), ("train", 2), ("train", 3), ("eval", 3)]
    single_eval = json.loads((tmp_path / "single" / "metrics.jsonl").read_text().splitlines()[-1])
    assert single_eval["kind"] == "eval" and single_eval.keys() == lines[-1].keys()
    for name in single_eval.keys() - {"kind", "step"}:
        np.testing.assert_allclose(lines[-1][name], single_eval[name], rtol=1e-4, err_msg=name)


def _start_training_job(photo_dir, tmp_path, launcher_flags, *train_flags):
    """launch/local_cluster.py running two workers of a tiny U-Net training on two-shard records, its output piped;
    returns (the launcher's Popen, the model_dir)."""
    import run_dirs

    data_dir = str(tmp_path / "data")
    run_dirs.write_records(photo_dir, data_dir, 40, num_shards=2, val_fraction=0.25)
    model_dir = tmp_path / "model"
    launcher = subprocess.Popen(
        [sys.executable, os.path.join(REPO_ROOT, SCRIPT), "--num_workers=2", *launcher_flags, "--",
         "--strategy=multi_worker", f"--data_dir={data_dir}", f"--model_dir={model_dir}", "--generator=unet",
         "--discriminator=patchgan", "--image_size=32", "--base_width=4", "--depth=3", "--norm=none",
         "--batch_size=4", "--eval_every=0", "--shuffle_buffer=64", *train_flags],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return launcher, model_dir


def test_sigterm_to_one_training_worker_stops_both_at_the_same_step(photo_dir, tmp_path):
    """One host preempted: only worker 1 gets SIGTERM. The workers agree through an all-reduce, so both checkpoint
    at the same step (their saves are collective) and exit 143, resumable; the launcher passes 143 on."""
    import psutil

    launcher, model_dir = _start_training_job(photo_dir, tmp_path, ["--grace_s=60"], "--train_steps=100000",
                                              "--checkpoint_every=100000", "--log_every=2")
    try:
        metrics = model_dir / "metrics.jsonl"
        deadline = time.monotonic() + 300
        while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2) and time.monotonic() < deadline:
            assert launcher.poll() is None, launcher.stdout.read()[-3000:]
            time.sleep(0.05)
        victim = next(child for child in psutil.Process(launcher.pid).children()
                      if '"index": 1' in child.environ().get("TF_CONFIG", ""))
        victim.send_signal(signal.SIGTERM)
        output, _ = launcher.communicate(timeout=300)
    finally:
        launcher.kill()
    assert launcher.returncode == 143, output[-3000:]
    stops = {worker: (reason, int(step)) for worker, reason, step in re.findall(
        r"\[worker (\d)\] train: stop requested \((SIGTERM|by another worker)\); checkpointing at step (\d+)", output)}
    assert stops.keys() == {"0", "1"}, output[-3000:]
    assert stops["1"][0] == "SIGTERM" and stops["0"][0] == "by another worker"
    stopped_at = stops["0"][1]
    assert stops["1"][1] == stopped_at >= 4
    assert "Traceback" not in output
    assert _checkpoint_step(model_dir) == stopped_at


@pytest.mark.slow
def test_a_killed_training_worker_restarts_the_job_from_its_checkpoint(photo_dir, tmp_path):
    """SIGKILL one of two real training workers after the first checkpoint: the launcher stops the other (stuck in
    a collective), starts the job again on fresh ports, and both resume from the chief's checkpoint to the end."""
    import psutil

    launcher, model_dir = _start_training_job(photo_dir, tmp_path, ["--restarts=1", "--grace_s=2"],
                                              "--train_steps=400", "--checkpoint_every=4", "--log_every=4")
    try:
        deadline = time.monotonic() + 300
        while not list(model_dir.glob("ckpt-4.index")) and time.monotonic() < deadline:
            assert launcher.poll() is None, launcher.stdout.read()[-3000:]
            time.sleep(0.2)
        victim = next(child for child in psutil.Process(launcher.pid).children()
                      if '"index": 1' in child.environ().get("TF_CONFIG", ""))
        victim.kill()
        output, _ = launcher.communicate(timeout=600)
    finally:
        launcher.kill()
    assert launcher.returncode == 0, output[-3000:]
    assert "local_cluster: worker 1 was killed by signal 9 (SIGKILL); restarting the job (1 of 1)" in output
    assert re.search(r"\[worker 0\] train: restored .*ckpt-\d+ at step \d+", output)
    assert "[worker 0] train: done at step 400" in output
    assert _checkpoint_step(model_dir) == 400


def _checkpoint_step(model_dir):
    import tensorflow as tf

    return int(tf.train.load_checkpoint(str(model_dir)).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))


# A stand-in for launch/data_service.py, without TensorFlow: FAKE_SERVICE=ready registers (prints the line the
# launcher waits for) and serves until stopped, exit makes the workers fail, silent makes them never register.
FAKE_SERVICE = r'''
import os, sys, time

if "--role=worker" in sys.argv:
    mode = os.environ["FAKE_SERVICE"]
    if mode == "exit":
        sys.exit(3)
    if mode == "ready":
        print("data_service: worker at 127.0.0.1:1 serving for the dispatcher", flush=True)
time.sleep(60)
'''


@pytest.mark.parametrize("mode", ["ready", "exit", "silent"])
def test_the_data_service_starts_before_the_workers_and_its_failures_fail_the_job(fake_worker, tmp_path,
                                                                                   monkeypatch, mode):
    """The workers start once every service worker has registered, and get the dispatcher's address; a service
    process that ends, or a worker that never registers, fails the job in one line instead of leaving it waiting."""
    service = tmp_path / "fake_service.py"
    service.write_text(FAKE_SERVICE)
    monkeypatch.setenv("FAKE_SERVICE", mode)
    monkeypatch.setattr(local_cluster, "SERVICE_READY_S", 2.0)
    code, lines, seconds = _run(fake_worker, 2, "exit:all:0", data_service_workers=2,
                                data_service_program=str(service))
    assert seconds < 30  # the service's 60 s sleeps were cut short
    if mode == "ready":
        assert code == 0
        reports = _reports(lines)
        assert sorted(reports) == [0, 1]
        dispatcher = [re.fullmatch(r"--data_service=127\.0\.0\.1:(\d+)", args[-1]) for _, _, args in reports.values()]
        assert all(dispatcher) and dispatcher[0][1] == dispatcher[1][1] and args_port_free(dispatcher[0][1], reports)
    elif mode == "exit":
        assert code == 3 and not _reports(lines)
        assert re.fullmatch(r"local_cluster: data_service worker \d exited with code 3; the job failed", lines[-1])
    else:
        assert code == 1 and not _reports(lines)
        assert lines[-1] == ("local_cluster: data_service worker 0 did not register with the dispatcher in 2 s; "
                             "the job failed")


def args_port_free(port, reports):
    """The dispatcher's port is not one of the workers' TF_CONFIG ports."""
    return all(not address.endswith(f":{port}") for _, cluster, _ in reports.values() for address in cluster)


def _service_cpu_seconds(output):
    """{'dispatcher' or 'worker i': CPU-s it spent serving} from the service processes' last lines."""
    return {label.removeprefix("data_service "): seconds
            for label, _, seconds in data_service.serving_cpu_seconds(output)}


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_training_through_a_data_service_of_two_workers_and_resuming(photo_dir, tmp_path, workers):
    """A dispatcher and two service workers as real processes in the job's private namespace, the trainer (one
    process, or two all-reducing) reading only from them: both service workers run the pipeline (their CPU time
    serving, against the dispatcher's), every trainer worker names the same job, and a resume starts a new job at
    the checkpointed data position."""
    import run_dirs

    data_dir = str(tmp_path / "data")
    run_dirs.write_records(photo_dir, data_dir, 40, num_shards=4, val_fraction=0.25)
    model_dir = tmp_path / "model"
    train_flags = ["--strategy=" + ("multi_worker" if workers == 2 else "one_device"), f"--data_dir={data_dir}",
                   f"--model_dir={model_dir}", f"--flagfile={os.path.join(REPO_ROOT, 'launch/configs/smoke.cfg')}",
                   "--image_size=32", "--base_width=4", "--depth=3", "--batch_size=4", "--eval_every=0",
                   "--log_every=2", "--checkpoint_every=4", "--shuffle_buffer=64"]
    runs = []
    for steps in (6, 10):
        runs.append(run_script(SCRIPT, f"--num_workers={workers}", "--data_service_workers=2", "--",
                               *train_flags, f"--train_steps={steps}", timeout=300))
        assert runs[-1].returncode == 0, runs[-1].stdout[-3000:]
    for run, (start, end) in zip(runs, [(0, 6), (6, 10)]):
        output = run.stdout
        jobs = re.findall(r"\[worker (\d)\] train: training input from the tf\.data service at 127\.0\.0\.1:\d+, "
                          r"job (colorgan-[0-9a-f]{16}-(\d+)) ", output)
        assert sorted(worker for worker, _, _ in jobs) == [str(index) for index in range(workers)], output[-3000:]
        assert {job for _, job, _ in jobs} == {jobs[0][1]} and int(jobs[0][2]) == start
        assert f"[worker 0] train: done at step {end}" in output
        cpu = _service_cpu_seconds(output)
        assert cpu.keys() == {"dispatcher", "worker 0", "worker 1"}, output[-3000:]
        assert min(cpu["worker 0"], cpu["worker 1"]) > max(0.2, cpu["dispatcher"]), cpu
    assert re.search(r"\[worker 0\] train: restored .* at step 6\b", runs[1].stdout)
    assert _checkpoint_step(model_dir) == 10


def test_without_linux_the_missing_namespace_says_why_in_one_line(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert local_cluster.private_namespace(2) == (None, "network namespaces need Linux, and this is darwin")
