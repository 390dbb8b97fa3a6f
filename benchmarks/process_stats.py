"""Wall time and peak memory of a whole process tree, shared by the benchmarks."""

import subprocess
import threading
import time

import psutil


def run_measured(command):
    """Runs `command`; returns (seconds, peak summed RSS of it and its children in MiB, stdout).

    RSS is sampled every 20 ms, so a peak shorter than that can be missed; exits on failure with the tail of
    stderr."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample():
        parent = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                peak[0] = max(peak[0], sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)]))
            except psutil.Error:
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, stderr = process.communicate()
    seconds = time.perf_counter() - start
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed ({process.returncode}):\n{stderr[-3000:]}")
    return seconds, peak[0] / 2**20, stdout
