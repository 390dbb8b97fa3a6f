"""Runs a tf.data service dispatcher or worker, for training with --data_service (BUILD.md, "tf.data service").

  python launch/data_service.py --role=dispatcher --port=5050
  python launch/data_service.py --role=worker --dispatcher=HOST:5050 --port=5051
  srun python launch/data_service.py --cluster=slurm --port=5050    # launch/slurm/data_service.sbatch

Keep them on a private network: they run any pipeline they are sent, unauthenticated. Both run until SIGTERM or
Ctrl-C (exit 143 or 130), printing the CPU time they spent serving.
"""

from colorgan.tools import data_service

if __name__ == "__main__":
    data_service.main()
