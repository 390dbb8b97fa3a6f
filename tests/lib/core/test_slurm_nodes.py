"""Tests of colorgan.core.slurm without a Slurm (tests/launch/test_slurm.py runs a real one)."""

import pytest

from colorgan.core import slurm_nodes


def test_node_names_are_their_own_addresses_without_scontrol(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without Slurm's client tools, as in many containers
    assert slurm_nodes.node_addresses(["a1", "a2"]) == {"a1": "a1", "a2": "a2"}


def test_a_job_cannot_be_found_without_squeue(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"^no squeue here \(Slurm's client tools are not installed\)$"):
        slurm_nodes.job_first_node("123")


def test_addresses_are_host_parts_and_nodelists_expand_in_order():
    assert [slurm_nodes.host_part(address) for address in ("10.1.2.3", "node7", "fd00::7")] == [
        "10.1.2.3", "node7", "[fd00::7]"]
    assert slurm_nodes.expand_nodelist("cpu[07-09,02],gpu1") == ["cpu07", "cpu08", "cpu09", "cpu02", "gpu1"]
