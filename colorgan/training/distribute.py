"""Choosing a tf.distribute strategy from flags: one device, all GPUs of a host, or many hosts.

`--cpu_replicas=N` splits the CPU into N logical devices so MirroredStrategy (and its all-reduce) runs on a laptop
or in CI exactly as it would over N GPUs. `--cluster=slurm` builds the multi-host cluster from Slurm's environment
(`slurm_cluster_resolver`).
"""

import os

import tensorflow as tf

# TF's parser of Slurm's compressed task counts ("2(x3),1"), exported under no public name.
from tensorflow.python.distribute.cluster_resolver.slurm_cluster_resolver import expand_tasks_per_node

from colorgan.core import slurm_nodes

PORT_BASE_VARIABLE = "COLORGAN_PORT_BASE"  # Task i of a Slurm node listens on this port + i.
DEFAULT_PORT_BASE = 8888


def split_cpu(replicas):
    """Makes `replicas` logical CPU devices; must run before TensorFlow initialises its devices."""
    if replicas <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)


def replicas_on_accelerators(strategy):
    """Whether every replica of `strategy` computes on a GPU or TPU (not the host's CPU)."""
    return all(tf.DeviceSpec.from_string(device).device_type in ("GPU", "TPU")
               for device in strategy.extended.worker_devices)


def make_strategy(name, cpu_replicas=0, cluster="tf_config"):
    """auto: MirroredStrategy over all GPUs (or the split CPU), else one device. multi_worker reads TF_CONFIG, or
    Slurm's environment with cluster='slurm'."""
    if name == "multi_worker":
        resolver = (slurm_cluster_resolver() if cluster == "slurm"
                    else tf.distribute.cluster_resolver.TFConfigClusterResolver())
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    split_cpu(cpu_replicas)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    if name == "auto" and len(devices) == 1:
        return tf.distribute.OneDeviceStrategy(devices[0])
    if not gpus:
        # NCCL is GPU-only; CPU replicas reduce through one device.
        return tf.distribute.MirroredStrategy(devices, cross_device_ops=tf.distribute.ReductionToOneDevice())
    return tf.distribute.MirroredStrategy(devices)


def slurm_cluster_resolver(environ=None, node_addresses=None):
    """This Slurm job step as a multi-worker cluster, from Slurm's environment alone: TF's SlurmClusterResolver runs
    `nvidia-smi` to count GPUs (missing on CPU nodes and in many containers) and cannot describe a job without GPUs.

    Worker i is Slurm task i (SLURM_PROCID) at its node's address (`node_addresses(names)` -> {name: address},
    default `slurm_nodes.node_addresses`), port COLORGAN_PORT_BASE (8888) + the task's SLURM_LOCALID. The task keeps
    its share of the GPUs Slurm gave it (`task_gpus`) and sees only those: CUDA_VISIBLE_DEVICES is set in `environ`
    (os.environ by default), empty for a job without GPUs, which then trains on the CPUs. Missing, unparsable or
    inconsistent variables raise ValueError, one line naming the variable."""
    environ = os.environ if environ is None else environ
    nodes = _environment_variable(environ, "SLURM_STEP_NODELIST", slurm_nodes.expand_nodelist)
    tasks_per_node = _environment_variable(environ, "SLURM_STEP_TASKS_PER_NODE", expand_tasks_per_node)
    if len(tasks_per_node) != len(nodes):
        raise ValueError(f"SLURM_STEP_TASKS_PER_NODE={environ['SLURM_STEP_TASKS_PER_NODE']} counts the tasks of "
                         f"{len(tasks_per_node)} nodes, SLURM_STEP_NODELIST={environ['SLURM_STEP_NODELIST']} names "
                         f"{len(nodes)}")
    num_tasks = _environment_variable(environ, "SLURM_STEP_NUM_TASKS", int)
    if num_tasks != sum(tasks_per_node):
        raise ValueError(f"SLURM_STEP_NUM_TASKS={num_tasks}, but SLURM_STEP_TASKS_PER_NODE="
                         f"{environ['SLURM_STEP_TASKS_PER_NODE']} adds up to {sum(tasks_per_node)} tasks")
    node = _environment_variable(environ, "SLURMD_NODENAME")
    if node not in nodes:
        raise ValueError(f"SLURMD_NODENAME={node} is not in SLURM_STEP_NODELIST={environ['SLURM_STEP_NODELIST']}")
    node_index = nodes.index(node)
    rank = _environment_variable(environ, "SLURM_PROCID", int)
    local_id = _environment_variable(environ, "SLURM_LOCALID", int)
    if not (0 <= local_id < tasks_per_node[node_index] and rank == sum(tasks_per_node[:node_index]) + local_id):
        raise ValueError(f"SLURM_PROCID={rank} is not task SLURM_LOCALID={local_id} of node {node} in block order "
                         f"(SLURM_STEP_TASKS_PER_NODE={environ['SLURM_STEP_TASKS_PER_NODE']}): start the step with "
                         f"srun --distribution=block")
    port_base = _environment_variable(environ, PORT_BASE_VARIABLE, int, default=DEFAULT_PORT_BASE)
    if not 0 < port_base <= 65536 - max(tasks_per_node):
        raise ValueError(f"{PORT_BASE_VARIABLE}={port_base}: ports {port_base} to "
                         f"{port_base + max(tasks_per_node) - 1} are not all valid TCP ports")
    addresses = (node_addresses or slurm_nodes.node_addresses)(nodes)
    workers = [f"{slurm_nodes.host_part(addresses[name])}:{port_base + task}"
               for name, tasks in zip(nodes, tasks_per_node) for task in range(tasks)]
    gpus = task_gpus(environ, tasks_per_node[node_index], local_id)
    environ["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    return tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec({"worker": workers}), task_type="worker", task_id=rank,
        num_accelerators={"GPU": len(gpus)}, rpc_layer="grpc")


def _environment_variable(environ, name, parse=str, default=None):
    """environ[name] parsed (`default` when unset, if given), or ValueError naming the variable."""
    if name not in environ and default is not None:
        return default
    if name not in environ:
        raise ValueError(f"{name} is not set: the Slurm cluster exists only in a job step started by srun "
                         f"(launch/slurm/train.sbatch)")
    try:
        return parse(environ[name])
    except ValueError as e:
        raise ValueError(f"{name}={environ[name]}: {str(e).splitlines()[0]}") from None


def task_gpus(environ, tasks_on_node, local_id):
    """The GPU ids this Slurm task may use, from Slurm's environment (never nvidia-smi). The node's GPUs are those
    listed by CUDA_VISIBLE_DEVICES, else SLURM_STEP_GPUS, else 0..SLURM_GPUS_ON_NODE-1, and none without any of
    them. When the task sees all SLURM_GPUS_ON_NODE of them (--gpus-per-node) the node's tasks share them out
    evenly and task SLURM_LOCALID takes its share; when Slurm already bound each task its own (--gpus-per-task), it
    sees 1/tasks_on_node of them and keeps them."""
    source = next((name for name in ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS") if name in environ), None)
    if source:
        visible = [gpu for gpu in environ[source].split(",") if gpu]
    else:
        visible = [str(gpu) for gpu in range(_environment_variable(environ, "SLURM_GPUS_ON_NODE", int, default=0))]
    on_node = _environment_variable(environ, "SLURM_GPUS_ON_NODE", int, default=len(visible))
    if len(visible) * tasks_on_node == on_node:
        return visible
    if len(visible) != on_node:
        raise ValueError(f"{source}={environ[source]} lists {len(visible)} GPUs, SLURM_GPUS_ON_NODE={on_node}: neither "
                         f"all of the node's nor one task's share of them")
    if on_node % tasks_on_node:
        raise ValueError(f"SLURM_GPUS_ON_NODE={on_node}: the GPUs do not divide among the {tasks_on_node} tasks of "
                         f"the node (SLURM_STEP_TASKS_PER_NODE)")
    share = on_node // tasks_on_node
    return visible[local_id * share:(local_id + 1) * share]


def native_bf16(cpu_flags=None, gpu_capabilities=None):
    """Whether this host computes bfloat16 natively: every GPU of compute capability 8.0+ (Ampere on), or, without
    GPUs, a CPU with AVX512_BF16 or AMX (what oneDNN's bf16 kernels need). `cpu_flags` (a set) and
    `gpu_capabilities` (a list of (major, minor)) default to this host's."""
    if gpu_capabilities is None:
        gpu_capabilities = [tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
                            for gpu in tf.config.list_physical_devices("GPU")]
    if gpu_capabilities:
        return all(tuple(capability) >= (8, 0) for capability in gpu_capabilities)
    if cpu_flags is None:
        cpu_flags = _cpu_flags()
    return bool(cpu_flags & {"avx512_bf16", "amx_bf16"})


def _cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def is_chief(strategy):
    """Only the chief writes summaries, samples and metrics; every worker takes part in checkpointing."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and not has_chief


def num_workers(strategy):
    """Hosts (processes) taking part: 1 except under MultiWorkerMirroredStrategy. TF has no public accessor."""
    return getattr(strategy.extended, "_num_workers", 1)


def worker_checkpoint_dir(model_dir, strategy):
    """Checkpoints of non-chief workers go to a temporary directory (the multi-worker checkpointing rule)."""
    if is_chief(strategy):
        return model_dir
    resolver = strategy.cluster_resolver
    return os.path.join(model_dir, "workers_tmp", f"{resolver.task_type}_{resolver.task_id}")


def cluster_description(strategy):
    """A line for the logs: which task of how many workers this process is, as the strategy's cluster resolver
    (TF_CONFIG or Slurm) says; "single host" for one-process strategies."""
    resolver = getattr(strategy, "cluster_resolver", None)
    workers = resolver.cluster_spec().as_dict().get("worker", []) if resolver else []
    if not workers:
        return "single host"
    return f"task {resolver.task_type} {resolver.task_id} of {len(workers)} workers"
