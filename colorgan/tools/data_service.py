"""Runs a tf.data service dispatcher or worker, for training with --data_service (BUILD.md, "tf.data service").

  colorgan-data-service --role=dispatcher --port=5050
  colorgan-data-service --role=worker --dispatcher=HOST:5050 --port=5051
  srun colorgan-data-service --cluster=slurm --port=5050    # launch/slurm/data_service.sbatch

Keep them on a private network: they run any pipeline they are sent, unauthenticated. Both run until SIGTERM or
Ctrl-C (exit 143 or 130), printing the CPU time they spent serving.
"""

import os
import sys

from absl import flags

from colorgan.core import cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from colorgan.core import flag_config
from colorgan.data import data_service

flag_config.define_flags(data_service.ServiceConfig)
flags.adopt_module_key_flags(data_service)


def _main(argv):
    config = flag_config.from_flags(data_service.ServiceConfig)
    problems = config.validate()
    if config.cluster and not problems:
        try:
            config = data_service.slurm_task(config, os.environ)
        except (ValueError, RuntimeError) as e:
            problems = [f"--cluster=slurm: {e}"]
    for problem in problems:
        cli.usage_error("data_service", problem)
    if problems:
        return cli.EXIT_USAGE
    return data_service.serve(config, log=lambda line: print(line, file=sys.stderr, flush=True))


def main():
    """The colorgan-data-service command (also `python launch/data_service.py`)."""
    cli.run("data_service", _main)


if __name__ == "__main__":
    main()
