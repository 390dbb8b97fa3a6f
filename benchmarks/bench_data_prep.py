"""Data-prep throughput and memory: make_tfrecords against a plain single-process writer, side by side.

  python benchmarks/bench_data_prep.py --num_images=2000

Builds a folder of real photos (random crops of scikit-image's bundled photos, saved as camera-style JPEGs), then
times each writer as a whole process on the same folder:
  plain     the seed notebook's loop: PIL open, resize to 150x150, convert to L, encode both (same codec as
            make_tfrecords, --encoding), one TFRecord file
  workers=1 make_tfrecords.py --num_workers=1
  workers=2 make_tfrecords.py --num_workers=2
  beam      make_tfrecords.py --runner=beam on Beam's DirectRunner engine (FnApiRunner) with 2 worker processes: the
            same conversion as an Apache Beam pipeline, which scales out on Dataflow, Flink or Spark; on one host
            it costs Beam's start-up and its gRPC hops, and this figure says how much (against workers=2)
and make_tfrecords (2 workers) once more on a quarter of the folder, to show that peak memory does not grow with the
number of images. Peak memory is the largest summed RSS of the process and its children, sampled every 20 ms.
Ends with one JSON line of the figures.
"""

import json
import os
import subprocess
import sys
import tempfile

import process_stats
from absl import app
from absl import flags

from colorgan.core import portable

_NUM_IMAGES = flags.DEFINE_integer("num_images", 2000, "Photos in the benchmark folder.")
_PHOTO_SIZE = flags.DEFINE_string("photo_size", "800x600", "WxH of the generated photos.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 150, "Output side, as the seed.")
_ENCODING = flags.DEFINE_enum("encoding", "jpeg", ["png", "jpeg"], "Codec of the stored images, for every writer.")
_WORK_DIR = flags.DEFINE_string("work_dir", "", "Keep files here (default: a temporary folder).")
_PLAIN = flags.DEFINE_string("plain_writer", "", "Internal: run the plain writer from this folder.")
_PLAIN_OUT = flags.DEFINE_string("plain_output", "", "Internal: the plain writer's output file.")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The DirectRunner's engine with 2 worker processes, by name: runner=DirectRunner would first try to download Prism.
BEAM_2 = "runner=FnApiRunner,direct_running_mode=multi_processing,direct_num_workers=2"


def plain_writer(input_dir, output_path, size, encoding):
    """The seed's way, plus what it takes to store the pairs: one process, one file at a time."""
    import io

    import tensorflow as tf
    from PIL import Image

    from colorgan.data import records

    with tf.io.TFRecordWriter(output_path) as writer:
        for name in sorted(os.listdir(input_dir)):
            rgb = Image.open(os.path.join(input_dir, name)).convert("RGB").resize((size, size))
            gray = rgb.convert("L")
            encoded = []
            for image in (rgb, gray):
                buffer = io.BytesIO()
                if encoding == "jpeg":
                    image.save(buffer, format="JPEG", quality=95, subsampling=0)
                else:
                    image.save(buffer, format="PNG")
                encoded.append(buffer.getvalue())
            writer.write(records.serialize_example(encoded[0], encoded[1], encoding, size, size, name))


def main(argv):
    del argv
    if _PLAIN.value:
        plain_writer(_PLAIN.value, _PLAIN_OUT.value, _IMAGE_SIZE.value, _ENCODING.value)
        return
    from colorgan.demo import sample_photos

    work_dir = _WORK_DIR.value or tempfile.mkdtemp(prefix="bench_data_prep_")
    width, height = (int(v) for v in _PHOTO_SIZE.value.split("x"))
    photos = os.path.join(work_dir, "photos")
    quarter = os.path.join(work_dir, "photos_quarter")
    if not os.path.isdir(photos) or len(os.listdir(photos)) != _NUM_IMAGES.value:
        print(f"writing {_NUM_IMAGES.value} photos of {width}x{height} to {photos} ...", flush=True)
        sample_photos.write_photo_folder(photos, num_crops=_NUM_IMAGES.value, crop_size=(width, height),
                                         include_originals=False, upscale=2.0)
    if not os.path.isdir(quarter):
        os.makedirs(quarter)
        for name in sorted(os.listdir(photos))[: _NUM_IMAGES.value // 4]:
            os.symlink(os.path.join(photos, name), os.path.join(quarter, name))

    python, script = sys.executable, os.path.join(REPO_ROOT, "data_prep", "make_tfrecords.py")

    def make_tfrecords(input_dir, workers, name, *extra):
        return [python, script, f"--input_dir={input_dir}", f"--output_dir={os.path.join(work_dir, name)}",
                f"--image_size={_IMAGE_SIZE.value}", f"--encoding={_ENCODING.value}", f"--num_workers={workers}",
                "--overwrite", *extra]

    runs = {
        "plain": [python, os.path.abspath(__file__), f"--plain_writer={photos}",
                  f"--plain_output={os.path.join(work_dir, 'plain.tfrecord')}", f"--image_size={_IMAGE_SIZE.value}",
                  f"--encoding={_ENCODING.value}"],
        "workers1": make_tfrecords(photos, 1, "out1"),
        "workers2": make_tfrecords(photos, 2, "out2"),
        "beam_workers2": make_tfrecords(photos, 2, "out_beam", "--runner=beam", f"--beam_pipeline_options={BEAM_2}"),
        "workers2_quarter": make_tfrecords(quarter, 2, "out_quarter"),
    }
    results = {}
    for name, command in runs.items():
        for stale in ("out1", "out2", "out_beam", "out_quarter"):
            subprocess.run(["rm", "-rf", os.path.join(work_dir, stale)], check=True)
        seconds, peak_mib, _ = process_stats.run_measured(command)
        count = _NUM_IMAGES.value // 4 if name.endswith("quarter") else _NUM_IMAGES.value
        results[name] = {"images_per_s": count / seconds, "seconds": seconds, "peak_rss_mib": peak_mib}
        print(f"{name:18s} {count:6d} images {seconds:7.1f} s {count / seconds:8.1f} images/s "
              f"peak RSS {peak_mib:7.0f} MiB", flush=True)

    plain = results["plain"]["images_per_s"]
    figures = {
        "num_images": _NUM_IMAGES.value,
        "photo_size": _PHOTO_SIZE.value,
        "image_size": _IMAGE_SIZE.value,
        "encoding": _ENCODING.value,
        "cpus": portable.usable_cpus(),
        **{f"{name}_images_per_s": round(r["images_per_s"], 1) for name, r in results.items()},
        **{f"{name}_peak_rss_mib": round(r["peak_rss_mib"]) for name, r in results.items()},
        "ratio_workers1_vs_plain": round(results["workers1"]["images_per_s"] / plain, 2),
        "ratio_workers2_vs_plain": round(results["workers2"]["images_per_s"] / plain, 2),
        "ratio_beam_workers2_vs_workers2": round(
            results["beam_workers2"]["images_per_s"] / results["workers2"]["images_per_s"], 2),
        "peak_rss_ratio_full_vs_quarter": round(
            results["workers2"]["peak_rss_mib"] / results["workers2_quarter"]["peak_rss_mib"], 2),
    }
    print(f"workers=1 vs plain: {figures['ratio_workers1_vs_plain']}x; workers=2 vs plain: "
          f"{figures['ratio_workers2_vs_plain']}x (target >= 1.7x); peak RSS with 4x the images: "
          f"{figures['peak_rss_ratio_full_vs_quarter']}x (target ~1.0x); Beam DirectRunner (2 workers) vs local "
          f"workers=2: {figures['ratio_beam_workers2_vs_workers2']}x")
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    app.run(main)
