"""Choosing a tf.distribute strategy from flags: one device, all GPUs of a host, or many hosts.

`--cpu_replicas=N` splits the CPU into N logical devices so MirroredStrategy (and its all-reduce) runs on a laptop
or in CI exactly as it would over N GPUs.
"""

import json
import os

import tensorflow as tf

STRATEGIES = ("auto", "mirrored", "multi_worker", "one_device")
CLUSTERS = ("tf_config", "slurm")


def split_cpu(replicas):
    """Makes `replicas` logical CPU devices; must run before TensorFlow initialises its devices."""
    if replicas <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)


def make_strategy(name, cpu_replicas=0, cluster="tf_config"):
    """auto: MirroredStrategy over all GPUs (or the split CPU), else one device. multi_worker reads TF_CONFIG, or
    Slurm's environment with cluster='slurm'."""
    if name == "multi_worker":
        resolver = (tf.distribute.cluster_resolver.SlurmClusterResolver() if cluster == "slurm"
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


def cluster_description():
    """A line for the logs: what TF_CONFIG says this process is."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    workers = len(config.get("cluster", {}).get("worker", []))
    return f"task {task.get('type', '?')} {task.get('index', '?')} of {workers} workers" if config else "single host"
