"""Runs a multi-worker TensorFlow job on this machine: N worker processes on 127.0.0.1, each with its TF_CONFIG.

  python launch/local_cluster.py --num_workers=2 --restarts=1 -- --strategy=multi_worker \\
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

from colorgan.tools import local_cluster

if __name__ == "__main__":
    local_cluster.main()
