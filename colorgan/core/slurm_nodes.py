"""Where a Slurm job's nodes are, as Slurm reports it: shared by the trainer's Slurm cluster (training/distribute.py)
and the tf.data service's (data/data_service.py). No TensorFlow at import: the service's flags load without it."""

import re
import shutil
import subprocess


def host_part(address):
    """An address as the host part of host:port (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address else address


def expand_nodelist(nodelist):
    """Slurm's compressed node list ("node[01-03,07]") as names, in order."""
    # TF's parser, exported under no public name; imported here so that importing this module stays light.
    from tensorflow.python.distribute.cluster_resolver.slurm_cluster_resolver import expand_hostlist  # noqa: PLC0415

    return expand_hostlist(nodelist)


def node_addresses(nodes):
    """{node name: address} as Slurm reports it (slurm.conf's NodeAddr, which defaults to the name), from `scontrol
    show node`. Where Slurm's client tools are not installed (some containers) the names themselves, left to DNS."""
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        return {name: name for name in nodes}
    result = _run(["scontrol", "--oneliner", "show", "node", ",".join(nodes)], scontrol)
    addresses = dict(re.findall(r"^NodeName=(\S+) .*?\bNodeAddr=(\S+)", result, re.MULTILINE))
    missing = [name for name in nodes if name not in addresses]
    if missing:
        raise RuntimeError(f"scontrol show node: no NodeAddr for {','.join(missing)}")
    return {name: addresses[name] for name in nodes}


def job_first_node(job_id):
    """The first node of running Slurm job `job_id` (`squeue`); RuntimeError naming the job if it is not running."""
    squeue = shutil.which("squeue")
    if squeue is None:
        raise RuntimeError("no squeue here (Slurm's client tools are not installed)")
    fields = _run(["squeue", "--noheader", f"--jobs={job_id}", "--format=%T %N"], squeue).split()
    if len(fields) != 2 or fields[0] != "RUNNING":
        state = fields[0] if fields else "not in the queue"
        raise RuntimeError(f"Slurm job {job_id} is {state}, not running (submit the training job with "
                           f"--dependency=after:{job_id})")
    return expand_nodelist(fields[1])[0]


def _run(command, executable):
    """A Slurm command's stdout; RuntimeError with its first line of complaint, or after 120 s without answer."""
    try:
        result = subprocess.run(command, executable=executable, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{' '.join(command)}: no answer in 120 s (is slurmctld up?)") from None
    if result.returncode != 0:
        why = (result.stderr.strip().splitlines() or [f"exit status {result.returncode}"])[0]
        raise RuntimeError(f"{' '.join(command)}: {why}")
    return result.stdout
