"""Tests of colorgan.training.distribute: chief and worker roles from TF_CONFIG, checkpoint directories, strategy
choice, the cluster of a Slurm job step from its SLURM_* variables."""

import json
import os
import subprocess
import sys
import types

import pytest
import tensorflow as tf
from conftest import REPO_ROOT

from colorgan.training import distribute


def _strategy_for(monkeypatch, cluster, task_type, index):
    """A stand-in holding what the helpers read from a multi-worker strategy: its TF_CONFIG cluster resolver."""
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}}))
    return types.SimpleNamespace(cluster_resolver=tf.distribute.cluster_resolver.TFConfigClusterResolver())


WORKERS = {"worker": ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]}
WITH_CHIEF = {"chief": ["127.0.0.1:9"], "worker": ["127.0.0.1:1", "127.0.0.1:2"]}


@pytest.mark.parametrize("cluster, task_type, index, chief", [
    (WORKERS, "worker", 0, True),  # no chief task: worker 0 is the chief
    (WORKERS, "worker", 2, False),
    (WITH_CHIEF, "chief", 0, True),
    (WITH_CHIEF, "worker", 0, False),
])
def test_chief_is_the_chief_task_or_worker_zero(monkeypatch, cluster, task_type, index, chief):
    assert distribute.is_chief(_strategy_for(monkeypatch, cluster, task_type, index)) is chief


def test_only_the_chief_checkpoints_into_model_dir(monkeypatch):
    assert distribute.worker_checkpoint_dir("/m", _strategy_for(monkeypatch, WORKERS, "worker", 0)) == "/m"
    assert distribute.worker_checkpoint_dir("/m", _strategy_for(monkeypatch, WORKERS, "worker", 2)) == (
        "/m/workers_tmp/worker_2")


def test_cluster_description(monkeypatch):
    assert distribute.cluster_description(tf.distribute.OneDeviceStrategy("/cpu:0")) == "single host"
    assert distribute.cluster_description(_strategy_for(monkeypatch, WORKERS, "worker", 1)) == (
        "task worker 1 of 3 workers")
    slurm = types.SimpleNamespace(cluster_resolver=_resolve(_slurm_step()))
    assert distribute.cluster_description(slurm) == "task worker 1 of 2 workers"


def test_single_process_strategies():
    one = distribute.make_strategy("one_device")
    assert isinstance(one, tf.distribute.OneDeviceStrategy) and one.num_replicas_in_sync == 1
    assert distribute.is_chief(one) and distribute.num_workers(one) == 1
    assert distribute.worker_checkpoint_dir("/m", one) == "/m"
    # Without GPUs and without a CPU split, auto means one device.
    assert isinstance(distribute.make_strategy("auto"), tf.distribute.OneDeviceStrategy)


@pytest.mark.parametrize("cpu_flags, gpu_capabilities, native", [
    ({"avx512f", "avx512_bf16"}, [], True),
    ({"amx_bf16"}, [], True),
    ({"avx2", "avx512f"}, [], False),
    (set(), [(8, 0)], True),  # A100
    (set(), [(9, 0), (9, 0)], True),  # H100s
    ({"avx512_bf16"}, [(7, 5)], False),  # a T4: the GPU computes, not the CPU
    (set(), [(8, 6), (7, 0)], False),  # mixed GPUs: bf16 only if every one has it
])
def test_native_bf16_reads_the_gpus_else_the_cpu_flags(cpu_flags, gpu_capabilities, native):
    assert distribute.native_bf16(cpu_flags, gpu_capabilities) is native


def test_native_bf16_of_this_host_follows_its_cpu_flags():
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
        flags = next(line for line in f if line.startswith("flags")).split(":", 1)[1].split()
    assert distribute.native_bf16() is bool({"avx512_bf16", "amx_bf16"} & set(flags))


def _slurm_step(**variables):
    """The SLURM_* environment srun gives task 1 of a 2-task step on one node without GPUs, changed by `variables`
    (None removes one)."""
    environ = {"SLURM_STEP_NODELIST": "colorgan-test", "SLURM_STEP_TASKS_PER_NODE": "2",
               "SLURM_STEP_NUM_TASKS": "2", "SLURMD_NODENAME": "colorgan-test", "SLURM_PROCID": "1",
               "SLURM_LOCALID": "1"}
    environ.update(variables)
    return {name: value for name, value in environ.items() if value is not None}


def _resolve(environ, addresses=None):
    """slurm_cluster_resolver on `environ`, node names mapped through `addresses` (default: to 127.0.0.1)."""
    return distribute.slurm_cluster_resolver(
        environ, node_addresses=lambda nodes: {node: (addresses or {}).get(node, "127.0.0.1") for node in nodes})


def test_slurm_step_without_gpus_runs_each_task_on_the_cpu_at_its_own_port():
    environ = _slurm_step()
    resolver = _resolve(environ)
    assert resolver.cluster_spec().as_dict() == {"worker": ["127.0.0.1:8888", "127.0.0.1:8889"]}
    assert (resolver.task_type, resolver.task_id) == ("worker", 1)
    assert resolver.num_accelerators() == {"GPU": 0}
    assert resolver.rpc_layer == "grpc"
    assert environ["CUDA_VISIBLE_DEVICES"] == ""  # GPUs the job did not ask for stay hidden


def test_slurm_nodes_of_8_gpus_two_tasks_each_from_a_compressed_nodelist():
    """Worker order is Slurm's task order: the nodes in nodelist order, each node's tasks by SLURM_LOCALID. Each of
    a node's 2 tasks takes half of its 8 GPUs."""
    environ = _slurm_step(SLURM_STEP_NODELIST="gpu[07-08]", SLURM_STEP_TASKS_PER_NODE="2(x2)",
                          SLURM_STEP_NUM_TASKS="4", SLURMD_NODENAME="gpu08", SLURM_PROCID="3", SLURM_LOCALID="1",
                          SLURM_GPUS_ON_NODE="8", CUDA_VISIBLE_DEVICES="0,1,2,3,4,5,6,7", COLORGAN_PORT_BASE="9000")
    resolver = _resolve(environ, {"gpu07": "10.1.0.7", "gpu08": "fd00::8"})
    assert resolver.cluster_spec().as_dict() == {
        "worker": ["10.1.0.7:9000", "10.1.0.7:9001", "[fd00::8]:9000", "[fd00::8]:9001"]}
    assert resolver.task_id == 3 and resolver.num_accelerators() == {"GPU": 4}
    assert environ["CUDA_VISIBLE_DEVICES"] == "4,5,6,7"


@pytest.mark.parametrize("gpu_variables, tasks_on_node, local_id, gpus", [
    ({"SLURM_GPUS_ON_NODE": "8", "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}, 1, 0, list("01234567")),
    ({"SLURM_GPUS_ON_NODE": "8", "SLURM_STEP_GPUS": "8,9,10,11,12,13,14,15"}, 2, 0, ["8", "9", "10", "11"]),
    ({"SLURM_GPUS_ON_NODE": "4"}, 2, 1, ["2", "3"]),
    ({"SLURM_GPUS_ON_NODE": "2", "CUDA_VISIBLE_DEVICES": "1"}, 2, 1, ["1"]),  # --gpus-per-task=1: bound by Slurm
    ({"CUDA_VISIBLE_DEVICES": "GPU-a,GPU-b"}, 2, 0, ["GPU-a"]),  # exported by hand, without Slurm's GPU plugin
    ({}, 1, 0, []),
])
def test_task_gpus_come_from_slurms_variables(gpu_variables, tasks_on_node, local_id, gpus):
    assert distribute.task_gpus(gpu_variables, tasks_on_node, local_id) == gpus


def test_slurm_nodelist_expands_ranges_in_order():
    environ = _slurm_step(SLURM_STEP_NODELIST="node[01-03,07]", SLURM_STEP_TASKS_PER_NODE="1(x4)",
                          SLURM_STEP_NUM_TASKS="4", SLURMD_NODENAME="node07", SLURM_PROCID="3", SLURM_LOCALID="0")
    assert _resolve(environ, {"node07": "n7"}).cluster_spec().as_dict() == {
        "worker": ["127.0.0.1:8888", "127.0.0.1:8888", "127.0.0.1:8888", "n7:8888"]}


@pytest.mark.parametrize("variables, message", [
    ({"SLURM_STEP_NODELIST": None}, "SLURM_STEP_NODELIST is not set: the Slurm cluster exists only in a job step"),
    ({"SLURM_STEP_NODELIST": "node[01-"}, "SLURM_STEP_NODELIST=node[01-: Invalid hostlist format"),
    ({"SLURM_STEP_TASKS_PER_NODE": "2(x"}, "SLURM_STEP_TASKS_PER_NODE=2(x: Invalid tasks-per-node list format"),
    ({"SLURM_STEP_TASKS_PER_NODE": "1,1"}, "SLURM_STEP_TASKS_PER_NODE=1,1 counts the tasks of 2 nodes, "
                                           "SLURM_STEP_NODELIST=colorgan-test names 1"),
    ({"SLURM_STEP_NUM_TASKS": "3"}, "SLURM_STEP_NUM_TASKS=3, but SLURM_STEP_TASKS_PER_NODE=2 adds up to 2 tasks"),
    ({"SLURM_PROCID": "x"}, "SLURM_PROCID=x: invalid literal for int()"),
    ({"SLURMD_NODENAME": "other"}, "SLURMD_NODENAME=other is not in SLURM_STEP_NODELIST=colorgan-test"),
    ({"SLURM_PROCID": "0"}, "SLURM_PROCID=0 is not task SLURM_LOCALID=1 of node colorgan-test in block order"),
    ({"COLORGAN_PORT_BASE": "65535"}, "COLORGAN_PORT_BASE=65535: ports 65535 to 65536 are not all valid TCP ports"),
    ({"SLURM_GPUS_ON_NODE": "3"}, "SLURM_GPUS_ON_NODE=3: the GPUs do not divide among the 2 tasks of the node"),
    ({"SLURM_GPUS_ON_NODE": "8", "CUDA_VISIBLE_DEVICES": "0,1,2"},
     "CUDA_VISIBLE_DEVICES=0,1,2 lists 3 GPUs, SLURM_GPUS_ON_NODE=8"),
])
def test_bad_slurm_variables_are_one_line_naming_the_variable(variables, message):
    with pytest.raises(ValueError) as error:
        _resolve(_slurm_step(**variables))
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_a_bad_slurm_environment_stops_the_trainer_in_one_line(tmp_path):
    """The trainer itself: exit status 2 and one line naming the variable, no traceback."""
    (tmp_path / "manifest.json").write_text("{}")
    env = dict(_slurm_step(SLURM_STEP_NODELIST="node[01-"), PATH=os.environ["PATH"], TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "launch/train.py"), "--strategy=multi_worker",
                             "--cluster=slurm", f"--data_dir={tmp_path}", f"--model_dir={tmp_path / 'model'}"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("train:")] == [
        'train: error: --strategy=multi_worker: SLURM_STEP_NODELIST=node[01-: Invalid hostlist format "node[01-": '
        'Invalid part: node[01-'], result.stderr
