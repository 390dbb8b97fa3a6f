"""Tests of colorgan.data.data_service and launch/data_service.py without a running service: addresses, settings,
an absent dispatcher, and the stream the service splits. Training through a real dispatcher and workers (in a
private network namespace) is tested in tests/lib/training/test_local_cluster.py."""

import collections
import socket

import pytest
import run_dirs
import tensorflow as tf
from conftest import run_script

from colorgan.data import data_service
from colorgan.data import input_pipeline
from colorgan.data import records


@pytest.mark.parametrize("address, parsed", [
    ("grpc://10.0.0.2:5050", ("10.0.0.2", 5050)), ("dispatcher.cluster:5050", ("dispatcher.cluster", 5050)),
    ("[::1]:5050", ("::1", 5050)), ("host", None), ("host:0", None), ("host:99999", None), ("http://h:1", None),
    ("", None)])
def test_dispatcher_addresses_are_host_and_port(address, parsed):
    assert data_service.parse_address(address) == parsed


@pytest.mark.parametrize("args, problems", [
    ({}, ["--role=: expected one of dispatcher, worker"]),
    ({"role": "worker"}, ["--dispatcher='': a worker needs the dispatcher's host:port"]),
    ({"role": "dispatcher", "dispatcher": "h:1", "port": 70000},
     ["--port=70000: must be in [0, 65535]", "--dispatcher and --worker_address are for --role=worker"]),
    ({"role": "worker", "dispatcher": "h:1", "worker_address": "h", "work_dir": "/tmp/x"},
     ["--worker_address='h': expected host:port", "--work_dir is for --role=dispatcher"]),
    ({"role": "worker", "dispatcher": "h:1", "worker_address": "10.0.0.3:%port%"}, []),
    ({"cluster": "slurm", "role": "worker"},
     ["--role, --dispatcher and --worker_address come from Slurm with --cluster=slurm",
      "--cluster=slurm needs --port: the dispatcher's, which trainers are given"]),
    ({"cluster": "pbs", "port": 5050}, ["--cluster=pbs: expected slurm, or nothing"]),
    ({"cluster": "slurm", "port": 5050}, []),
])
def test_service_settings_name_each_bad_flag(args, problems):
    assert data_service.ServiceConfig(**args).validate() == problems


def test_each_task_of_a_slurm_step_takes_its_role(monkeypatch, tmp_path):
    """Task 0 dispatches on --port; the others are workers on free ports at their node's address, for the
    dispatcher on the step's first node (node names are their addresses without Slurm's client tools)."""
    monkeypatch.setenv("PATH", str(tmp_path))
    config = data_service.ServiceConfig(cluster="slurm", port=5050)
    step = {"SLURM_STEP_NODELIST": "cpu[3-4]", "SLURMD_NODENAME": "cpu4"}
    assert data_service.slurm_task(config, {**step, "SLURM_PROCID": "0"}) == data_service.ServiceConfig(
        role="dispatcher", port=5050)
    worker = data_service.slurm_task(config, {**step, "SLURM_PROCID": "5"})
    assert worker == data_service.ServiceConfig(role="worker", port=0, dispatcher="cpu3:5050",
                                                worker_address="cpu4:%port%")
    assert worker.validate() == []
    with pytest.raises(ValueError, match="^SLURM_PROCID is not set: --cluster=slurm runs in a job step started by"):
        data_service.slurm_task(config, step)


@pytest.mark.parametrize("address, resolved", [("10.0.0.2:5050", "10.0.0.2:5050"), ("slurm:77:5050", None)])
def test_a_slurm_job_address_is_its_first_node_or_says_why_not(monkeypatch, tmp_path, address, resolved):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert data_service.is_address(address) and not data_service.is_address("slurm:77:5050:1")
    if resolved:
        assert data_service.resolve_address(address) == resolved
    else:
        with pytest.raises(RuntimeError, match=r"^no squeue here"):
            data_service.resolve_address(address)


def test_the_launcher_reports_bad_flags_in_one_line_each_and_exits_2():
    result = run_script("launch/data_service.py", "--role=worker", "--port=-1", timeout=60)
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["data_service: error: --port=-1: must be in [0, 65535]",
                                          "data_service: error: --dispatcher='': a worker needs the dispatcher's "
                                          "host:port"]


def test_an_absent_dispatcher_is_named_instead_of_waited_for_silently():
    with socket.socket() as sock:  # a loopback port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert data_service.unreachable(f"127.0.0.1:{port}", wait_s=0) == (
        "no dispatcher answered there in 0 s (Connection refused)")


@pytest.fixture(scope="module")
def data_dir(photo_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("service_data"))
    run_dirs.write_records(photo_dir, out, 32, min_shards=4, val_fraction=0.25)
    return out


def test_the_split_stream_holds_every_record_once_per_epoch_from_the_resume_epoch_on(data_dir):
    """What the service splits: (epoch, shard file) after (epoch, shard file), from the epoch given. Read in
    process here (the order in which a worker's interleave meets the files is not fixed): each epoch holds every
    record of every file exactly once, under an index unique in the epoch."""
    manifest = records.read_manifest(data_dir)
    files = records.shard_paths(data_dir, manifest, "train")
    expected = collections.Counter(record.numpy() for record in tf.data.TFRecordDataset(files))
    per_epoch = sum(expected.values())
    assert len(files) >= 4 and per_epoch >= 20
    stream = input_pipeline._records_by_split(files, seed=5, first_epoch=2, cycle_length=3)
    by_epoch = collections.defaultdict(list)
    for epoch, index, record in stream.take(4 * per_epoch):
        by_epoch[int(epoch)].append((int(index), record.numpy()))
    assert min(by_epoch) == 2
    for epoch in (2, 3):
        indices = [index for index, _ in by_epoch[epoch]]
        assert collections.Counter(record for _, record in by_epoch[epoch]) == expected
        assert len(set(indices)) == per_epoch
        assert {index >> 32 for index in indices} == set(range(len(files)))
