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
