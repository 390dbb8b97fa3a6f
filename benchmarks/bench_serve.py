"""launch/serve.py under load: 16 concurrent clients on loopback, with batching on and off.

  python benchmarks/bench_serve.py [--seconds=60] [--clients=16]
  python benchmarks/bench_serve.py --memory_budget [--seconds=90]

Exports launch/configs/unet256.cfg's generator (54 M parameters, render size 256; weights as initialised: speed does
not depend on their values), then for each variant starts launch/serve.py on 127.0.0.1 (a free port it picks and
names), sends one warm-up request, and lets --clients threads POST /colorize a gray photo (--photo_size, JPEG) back
to back for --seconds. Variants: batching on (--max_batch=16, --batch_timeout_ms=5), batching off (--max_batch=1),
and batching on with --max_queue below the client count, where 503s are expected. Prints requests/s, p50/p95
latency, errors by status, mean batch size and the server's peak RSS (sampled every 20 ms), then one JSON line.

--memory_budget measures the service's memory formula instead (BUILD.md): the server's RSS once loaded, the peak of
one client sending the largest photo the defaults accept (a 7000x7000 gray JPEG, 49 MP in a small file), which gives
the bytes a decoded pixel costs at the peak of its stages, and the peak of --clients sending it at once, which the
default --max_pixels_in_flight (two such photos) must keep under loaded + budget x bytes per pixel.
"""

import http.client
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import psutil
import unet256_run
from absl import app
from absl import flags

_SECONDS = flags.DEFINE_float("seconds", 60.0, "Timed load per variant.")
_CLIENTS = flags.DEFINE_integer("clients", 16, "Concurrent clients.")
_PHOTO_SIZE = flags.DEFINE_string("photo_size", "1024x768", "WIDTHxHEIGHT of the uploaded gray photo.")
_WORK_DIR = flags.DEFINE_string("work_dir", "", "Keep the run and export here (default: a temporary folder).")
_MEMORY_BUDGET = flags.DEFINE_bool("memory_budget", False, "Measure the memory formula's terms (see the docstring).")

DEFAULT_MAX_PIXELS_IN_FLIGHT = 100_000_000  # launch/serve.py's default: two photos of --max_pixels
# The formula's bytes per decoded pixel (BUILD.md): one photo alone measured 20.2 (2026-12-04); photos in flight
# together also hold their canvases' activations and their threads' allocator arenas.
FORMULA_BYTES_PER_PIXEL = 25

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVE = os.path.join(REPO_ROOT, "launch", "serve.py")
BANNER = re.compile(r"^serve: http://127\.0\.0\.1:(\d+)/")


def photo_bytes(width, height):
    """A gray JPEG of a real black-and-white photograph (scikit-image's camera), enlarged as a scan would be."""
    from PIL import Image

    from colorgan.demo import sample_photos

    image = Image.fromarray(sample_photos.black_and_white_photo()).resize((width, height), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class Server:
    """launch/serve.py in its own process, with its peak RSS sampled."""

    def __init__(self, export_dir, flags_):
        self.process = subprocess.Popen([sys.executable, SERVE, f"--model={export_dir}", "--port=0", *flags_],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for line in self.process.stderr:
            match = BANNER.match(line)
            if match:
                self.port = int(match.group(1))
                break
        else:
            raise SystemExit(f"serve.py did not start ({self.process.wait()})")
        threading.Thread(target=lambda: self.process.stderr.read(), daemon=True).start()
        self.loaded = psutil.Process(self.process.pid).memory_info().rss  # the model loaded, nothing decoded yet
        self.peak, self._sampling = 0, True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _sample(self):
        process = psutil.Process(self.process.pid)
        while self._sampling:
            try:
                self.peak = max(self.peak, process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.02)

    def connection(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)

    def info(self):
        connection = self.connection()
        connection.request("GET", "/server")
        info = json.loads(connection.getresponse().read())
        connection.close()
        return info

    def stop(self):
        self._sampling = False
        self.process.terminate()
        self.process.wait()


def load(server, photo, clients, seconds):
    """(latencies of successful requests, {status: count} of the others, wall seconds)."""
    latencies, errors, lock = [], {}, threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client():
        connection = server.connection()
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            try:
                connection.request("POST", "/colorize", photo, {"Content-Type": "image/jpeg"})
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as e:
                status, connection = type(e).__name__, server.connection()
            with lock:
                if status == 200:
                    latencies.append(time.perf_counter() - start)
                else:
                    errors[str(status)] = errors.get(str(status), 0) + 1
            if status == 503:
                time.sleep(float(response.getheader("Retry-After", "1")))  # as a polite client (the page) does
        connection.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors, time.perf_counter() - start


def measure(export_dir, photo, name, flags_):
    server = Server(export_dir, flags_)
    try:
        warm = server.connection()
        warm.request("POST", "/colorize", photo, {"Content-Type": "image/jpeg"})
        assert warm.getresponse().read() and warm.sock, "warm-up failed"
        warm.close()
        before = server.info()
        latencies, errors, seconds = load(server, photo, _CLIENTS.value, _SECONDS.value)
        after = server.info()
    finally:
        server.stop()
    batches = after["batches"] - before["batches"]
    return {"variant": name, "flags": " ".join(flags_), "requests_per_s": len(latencies) / seconds,
            "ok": len(latencies), "errors": errors,
            "p50_s": float(np.percentile(latencies, 50)) if latencies else None,
            "p95_s": float(np.percentile(latencies, 95)) if latencies else None,
            "mean_batch": (after["photos"] - before["photos"]) / batches if batches else 0.0,
            "largest_batch": after["largest_batch"], "peak_rss_mib": server.peak / 2**20}


def memory_budget(export_dir):
    """The memory formula's terms, measured: see the module docstring."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (7000, 7000), 128).save(buffer, format="JPEG", quality=90)
    largest = buffer.getvalue()
    figures = {}
    for name, clients in (("one largest photo", 1), (f"{_CLIENTS.value} clients, largest photos", _CLIENTS.value)):
        server = Server(export_dir, [])
        try:
            latencies, errors, seconds = load(server, largest, clients, _SECONDS.value)
        finally:
            server.stop()
        figures[name] = {"loaded_mib": server.loaded / 2**20, "peak_mib": server.peak / 2**20, "ok": len(latencies),
                         "errors": errors, "seconds_per_photo": float(np.mean(latencies)) if latencies else None}
        print(f"{name}: done", file=sys.stderr, flush=True)
    one, many = figures.values()
    per_pixel = (one["peak_mib"] - one["loaded_mib"]) * 2**20 / (7000 * 7000)
    bodies = _CLIENTS.value * len(largest) / 2**20
    bound = many["loaded_mib"] + bodies + DEFAULT_MAX_PIXELS_IN_FLIGHT * FORMULA_BYTES_PER_PIXEL / 2**20
    print(f"7000x7000 gray JPEG ({len(largest) / 1024:.0f} KiB), defaults (--max_pixels_in_flight=100000000), "
          f"{os.cpu_count()} cores")
    for name, figure in figures.items():
        errors = ", ".join(f"{count} x {status}" for status, count in figure["errors"].items()) or "0"
        print(f"{name:34} loaded {figure['loaded_mib']:6.0f} MiB  peak {figure['peak_mib']:6.0f} MiB  "
              f"{figure['ok']} ok, errors {errors}, {figure['seconds_per_photo'] or 0:.1f} s per photo")
    print(f"bytes per decoded pixel at one photo's peak: {per_pixel:.1f} (the formula takes "
          f"{FORMULA_BYTES_PER_PIXEL}); formula loaded + bodies + 100 MP x {FORMULA_BYTES_PER_PIXEL} B = "
          f"{bound:.0f} MiB; "
          f"measured peak with {_CLIENTS.value} clients {many['peak_mib']:.0f} MiB "
          f"({'under' if many['peak_mib'] <= bound else 'OVER'} the formula; with {per_pixel:.1f} B/px it would be "
          f"{many['loaded_mib'] + bodies + DEFAULT_MAX_PIXELS_IN_FLIGHT * per_pixel / 2**20:.0f} MiB)")
    print(json.dumps({"benchmark": "bench_serve_memory_budget", "seconds": _SECONDS.value, "clients": _CLIENTS.value,
                      "figures": figures, "bytes_per_pixel": per_pixel, "formula_mib": bound}))


def main(argv):
    del argv
    width, height = (int(side) for side in _PHOTO_SIZE.value.lower().split("x"))
    with tempfile.TemporaryDirectory() as temporary:
        work_dir = _WORK_DIR.value or temporary
        run_dir, export_dir = os.path.join(work_dir, "run"), os.path.join(work_dir, "export", "1")
        if not os.path.exists(os.path.join(export_dir, "saved_model.pb")):
            unet256_run.make_run(run_dir)
            subprocess.run([sys.executable, os.path.join(REPO_ROOT, "launch", "export.py"), f"--model_dir={run_dir}",
                            f"--export_dir={export_dir}", "--overwrite"], check=True, capture_output=True)
        if _MEMORY_BUDGET.value:
            memory_budget(export_dir)
            return
        photo = photo_bytes(width, height)
        variants = [("batching on", ["--max_batch=16", "--batch_timeout_ms=5"]),
                    ("batching off", ["--max_batch=1"]),
                    (f"batching on, --max_queue={_CLIENTS.value // 2}",
                     ["--max_batch=16", "--batch_timeout_ms=5", f"--max_queue={_CLIENTS.value // 2}"])]
        results = []
        for name, flags_ in variants:
            results.append(measure(export_dir, photo, name, flags_))
            print(f"{name}: done", file=sys.stderr, flush=True)
    print(f"{_CLIENTS.value} clients, {_SECONDS.value:g} s each, {width}x{height} gray JPEG "
          f"({len(photo) / 1024:.0f} KiB), unet256.cfg generator at 256 px, {os.cpu_count()} cores")
    print(f"{'variant':34} {'req/s':>6} {'p50 s':>7} {'p95 s':>7} {'errors':>16} {'mean batch':>10} {'peak RSS':>10}")
    for r in results:
        errors = ", ".join(f"{count} x {status}" for status, count in r["errors"].items()) or "0"
        print(f"{r['variant']:34} {r['requests_per_s']:6.2f} {r['p50_s'] or 0:7.2f} {r['p95_s'] or 0:7.2f} "
              f"{errors:>16} {r['mean_batch']:10.1f} {r['peak_rss_mib']:7.0f} MiB")
    on, off = results[0], results[1]
    print(f"batching on / off: {on['requests_per_s'] / off['requests_per_s']:.2f}x requests/s")
    print(json.dumps({"benchmark": "bench_serve", "clients": _CLIENTS.value, "seconds": _SECONDS.value,
                      "photo": [width, height], "results": results}))


if __name__ == "__main__":
    app.run(main)
