"""Tests of colorgan.distribute: chief and worker roles from TF_CONFIG, checkpoint directories, strategy choice."""

import json
import types

import pytest
import tensorflow as tf

from colorgan import distribute


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
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.cluster_description() == "single host"
    _strategy_for(monkeypatch, WORKERS, "worker", 1)
    assert distribute.cluster_description() == "task worker 1 of 3 workers"


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
