"""Runs a multi-worker TensorFlow job on this machine: N worker processes on 127.0.0.1, each with its TF_CONFIG.

The same as the installed command; see colorgan/tools/local_cluster.py, whose docstring `--help` shows.
"""

from colorgan.tools import local_cluster

if __name__ == "__main__":
    local_cluster.main()
