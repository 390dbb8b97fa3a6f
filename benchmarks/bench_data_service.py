"""The training input through a tf.data service against the same pipeline in the trainer's process, side by side.

  python benchmarks/bench_data_service.py

unet256.cfg's pipeline (256 px JPEG records, batch 32) is read by a consumer that stands in for the trainer (it takes
batches as fast as they come, with no model step), with the colour maths in the pipeline (--color_maths=host: Lab
float32 pairs) and without it (device: uint8 RGB, a quarter of the bytes):
  in_process  make_dataset in the consumer's own process
  service     a dispatcher and --service_workers workers (launch/data_service.py) run it; the consumer reads through
              --data_service. All in one private network namespace on loopback (launch/local_cluster.py's).
For each: examples/s, and the consumer's own CPU per batch (a training step's input cost to the trainer's host).
On this 2-core machine the service's workers share the consumer's cores, so the rate shows only that the service
keeps up; the consumer's CPU is what a trainer host saves. Ends with one JSON line.
"""

import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

_CROPS = flags.DEFINE_integer("crops", 1024, "256 px photo crops in the records.")
_BATCHES = flags.DEFINE_integer("batches", 60, "Batches timed (after 3 warm-up batches).")
_SERVICE_WORKERS = flags.DEFINE_integer("service_workers", 2, "tf.data service workers.")
_WORK_DIR = flags.DEFINE_string("work_dir", "", "Keep files here (default: a temporary folder).")
_CONSUME = flags.DEFINE_string("consume", "", "Internal: read this dataset directory and print the JSON figures.")
_DATA_SERVICE = flags.DEFINE_string("data_service", "", "Internal: the dispatcher the consumer reads through.")
_COLOR_MATHS = flags.DEFINE_enum("color_maths", "host", ["host", "device"], "Internal: the consumer's pipeline.")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE, BATCH = 256, 32


def consume(data_dir, address):
    """Runs in a child process: times `_BATCHES` batches of the pipeline; prints examples/s and CPU ms per batch."""
    from colorgan.data import input_pipeline

    dataset = input_pipeline.make_dataset(data_dir, "train", BATCH, SIZE,
                                          color_space="lab" if _COLOR_MATHS.value == "host" else None,
                                          data_service=address or None, job_name="bench_data_service")
    iterator = iter(dataset)
    for _ in range(3):
        next(iterator)
    cpu, start = time.process_time(), time.perf_counter()
    for _ in range(_BATCHES.value):
        next(iterator)
    print("FIGURES " + json.dumps({"examples_per_s": _BATCHES.value * BATCH / (time.perf_counter() - start),
                                   "cpu_ms_per_batch": (time.process_time() - cpu) * 1e3 / _BATCHES.value}),
          flush=True)


def _figures(output):
    match = re.search(r"FIGURES (\{.*\})", output)
    if not match:
        raise SystemExit(f"no figures in:\n{output[-3000:]}")
    return json.loads(match[1])


def main(argv):
    del argv
    if _CONSUME.value:
        consume(_CONSUME.value, _DATA_SERVICE.value)
        return
    from colorgan.data import conversion
    from colorgan.data import conversion_config
    from colorgan.data import data_service
    from colorgan.demo import sample_photos
    from colorgan.training import local_cluster

    work = _WORK_DIR.value or tempfile.mkdtemp(prefix="bench_data_service_")
    photos, data = os.path.join(work, "photos"), os.path.join(work, "records")
    if not os.path.isdir(photos) or len(os.listdir(photos)) != _CROPS.value:
        sample_photos.write_photo_folder(photos, num_crops=_CROPS.value, crop_size=SIZE, include_originals=False,
                                         seed=2)
    conversion.run(conversion_config.ConversionConfig(output_dir=data, input_dirs=(photos,), image_size=SIZE,
                                                      val_fraction=0.0), log=lambda _: None)
    this = os.path.abspath(__file__)
    figures = {}
    for maths in ("host", "device"):
        consumer = [f"--consume={data}", f"--batches={_BATCHES.value}", f"--color_maths={maths}"]
        local = subprocess.run([sys.executable, this, *consumer], capture_output=True, text=True, check=True)
        out = io.StringIO()
        status = local_cluster.run_local_cluster(
            1, this, consumer, out=out, data_service_workers=_SERVICE_WORKERS.value,
            data_service_program=os.path.join(REPO_ROOT, "launch", "data_service.py"))
        if status:
            raise SystemExit(f"the service run failed ({status}):\n{out.getvalue()[-3000:]}")
        runs = {"in_process": _figures(local.stdout), "service": _figures(out.getvalue())}
        runs["service_cpu_s"] = {label.removeprefix("data_service "): seconds
                                 for label, _, seconds in data_service.serving_cpu_seconds(out.getvalue())}
        for name in ("in_process", "service"):
            print(f"--color_maths={maths:6s} {name:10s} {runs[name]['examples_per_s']:8.1f} examples/s   consumer "
                  f"CPU {runs[name]['cpu_ms_per_batch']:6.1f} ms per batch of {BATCH}", flush=True)
        runs["ratio_consumer_cpu_in_process_vs_service"] = round(
            runs["in_process"]["cpu_ms_per_batch"] / runs["service"]["cpu_ms_per_batch"], 2)
        runs["ratio_examples_per_s_service_vs_in_process"] = round(
            runs["service"]["examples_per_s"] / runs["in_process"]["examples_per_s"], 2)
        print(f"--color_maths={maths}: consumer CPU per batch, in process / through the service: "
              f"{runs['ratio_consumer_cpu_in_process_vs_service']}x; examples/s, service / in process: "
              f"{runs['ratio_examples_per_s_service_vs_in_process']}x", flush=True)
        figures[maths] = runs
    figures.update(image_size=SIZE, batch_size=BATCH, service_workers=_SERVICE_WORKERS.value, cpus=os.cpu_count())
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    app.run(main)
