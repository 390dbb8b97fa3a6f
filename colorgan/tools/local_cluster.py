"""Runs a multi-worker TensorFlow job on this machine: N worker processes on 127.0.0.1, each with its TF_CONFIG.

  colorgan-local-cluster --num_workers=2 --restarts=1 -- --strategy=multi_worker \\
      --flagfile=launch/configs/smoke.cfg --data_dir=demo_out/data --model_dir=runs/local2

Everything after `--` goes to the program (the trainer unless --program says otherwise) unchanged. Each line the
workers print comes out prefixed `[worker i] `. With --data_service_workers=K the job also runs a tf.data service
(a dispatcher and K workers, prefixed `[data_service ...] `) and the workers train through it. One failed worker
stops the job; with --restarts it starts again on
fresh ports and the trainer resumes from its last checkpoint. Ctrl-C or SIGTERM reaches the workers as SIGTERM, so
they checkpoint before they exit.

The workers run in a private network namespace whose only interface is loopback (TensorFlow's servers would otherwise
listen, unauthenticated, on every interface of the host); this needs util-linux unshare/nsenter and root or
unprivileged user namespaces. Without them the job runs after a one-line warning, or fails with --require_isolation.
"""

import importlib.util

from absl import flags

from colorgan.core import cli
from colorgan.core import storage
from colorgan.training import local_cluster

_NUM_WORKERS = flags.DEFINE_integer("num_workers", 2, "Worker processes in the job.")
_RESTARTS = flags.DEFINE_integer("restarts", 0, "Times the whole job is started again after a worker fails.")
_PROGRAM = flags.DEFINE_string("program", "colorgan.tools.train",
                               "Python program each worker runs: a file, or a module run with -m (default: the "
                               "trainer, colorgan-train).")
_GRACE_S = flags.DEFINE_float("grace_s", 10.0, "Seconds workers get to exit after SIGTERM before SIGKILL.")
_DATA_SERVICE_WORKERS = flags.DEFINE_integer(
    "data_service_workers", 0, "Also run a tf.data service (a dispatcher and this many workers, "
    "colorgan-data-service) in the job's namespace, and pass the workers --data_service= its address.")
_REQUIRE_ISOLATION = flags.DEFINE_boolean(
    "require_isolation", False, "Exit 2 instead of running the workers with their ports reachable from the network "
    "when no private network namespace can be made for them.")


def _program_problem(program):
    """Why `program` cannot run, or None."""
    if local_cluster.python_command(program)[1] != "-m":
        return None if storage.isfile(program) else "no such file"
    try:
        found = importlib.util.find_spec(program)
    except (ImportError, ValueError):  # a missing parent package, an empty name part
        found = None
    return None if found else "no such module"


def _problems():
    checks = [
        (_NUM_WORKERS.value >= 1, f"--num_workers={_NUM_WORKERS.value}: must be >= 1"),
        (_RESTARTS.value >= 0, f"--restarts={_RESTARTS.value}: must be >= 0"),
        (_GRACE_S.value >= 0, f"--grace_s={_GRACE_S.value}: must be >= 0"),
        (_DATA_SERVICE_WORKERS.value >= 0, f"--data_service_workers={_DATA_SERVICE_WORKERS.value}: must be >= 0"),
        (not _program_problem(_PROGRAM.value), f"--program={_PROGRAM.value}: {_program_problem(_PROGRAM.value)}"),
    ]
    return [message for ok, message in checks if not ok]


def _main(argv):
    # absl stops parsing flags at the first `--`, drops it, and passes what follows to main() untouched (after any
    # positional arguments given before it, which go to the program as well).
    problems = _problems()
    for problem in problems:
        cli.usage_error("local_cluster", problem)
    if problems:
        return cli.EXIT_USAGE
    return local_cluster.run_local_cluster(_NUM_WORKERS.value, _PROGRAM.value, argv[1:], restarts=_RESTARTS.value,
                                           grace_s=_GRACE_S.value, require_isolation=_REQUIRE_ISOLATION.value,
                                           data_service_workers=_DATA_SERVICE_WORKERS.value,
                                           data_service_program="colorgan.tools.data_service")


def main():
    """The colorgan-local-cluster command (also `python launch/local_cluster.py`)."""
    cli.run("local_cluster", _main, takes_arguments=True)


if __name__ == "__main__":
    main()
