"""Input-pipeline throughput and memory: colorgan's TFRecord stream against the usual alternatives, side by side.

  python benchmarks/bench_pipeline.py

For each of two photo folders, camera-sized JPEGs (2.4 MP, made by enlarging scikit-image's bundled photos) and
small 256x256 JPEG crops, it measures the examples/s of producing the same (gray, rgb) float32 batches at 150x150:
  records_png / records_jpeg  colorgan.input_pipeline over make_tfrecords shards of each encoding
                              (decode + augment + batch, no model)
  keras_dir                   keras.utils.image_dataset_from_directory over the folder, + gray conversion
  seed_numpy                  the seed's way: every image as a float64 numpy array in memory, then
                              from_tensor_slices (rate over the first epoch, loading included)
Each runs in its own process, so peak RSS (sampled every 20 ms) is its own. colorgan's pipeline is also run on a
quarter of the small folder, to show that its memory does not grow with the dataset. Ends with one JSON line.
"""

import json
import os
import sys
import tempfile
import time

import process_stats
from absl import app
from absl import flags

_CAMERA_IMAGES = flags.DEFINE_integer("camera_images", 200, "Camera-sized photos (1920x1280).")
_CAMERA_EXAMPLES = flags.DEFINE_integer("camera_examples", 400, "Examples timed per method on camera photos.")
_SMALL_IMAGES = flags.DEFINE_integer("small_images", 4000, "Small 256x256 crops.")
_EXAMPLES = flags.DEFINE_integer("examples", 3000, "Examples timed per method (after a warm-up batch).")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Batch size.")
_SIZE = flags.DEFINE_integer("image_size", 150, "Side of the produced images.")
_SHUFFLE = flags.DEFINE_integer("shuffle_buffer", 1000, "colorgan pipeline shuffle buffer (records).")
_WORK_DIR = flags.DEFINE_string("work_dir", "", "Keep files here (default: a temporary folder).")
_METHOD = flags.DEFINE_string("method", "", "Internal: run one method in this process and print its JSON.")
_SOURCE = flags.DEFINE_string("source", "", "Internal: folder or dataset directory for --method.")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _time_batches(dataset, examples, batch_size):
    """Examples/s over `examples` examples, after one warm-up batch (graph building, buffers)."""
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(max(1, examples // batch_size)):
        next(iterator)
    return max(1, examples // batch_size) * batch_size / (time.perf_counter() - start)


def run_method(method, source):
    """Runs in a child process: builds one pipeline, times it, prints {"examples_per_s": ...}."""
    import numpy as np
    import tensorflow as tf

    size, batch = _SIZE.value, _BATCH.value
    if method == "records":
        from colorgan.data import input_pipeline

        dataset = input_pipeline.make_dataset(source, "train", batch, size, shuffle_buffer=_SHUFFLE.value)
        rate = _time_batches(dataset, _EXAMPLES.value, batch)
    elif method == "keras_dir":
        import keras

        images = keras.utils.image_dataset_from_directory(
            source, labels=None, image_size=(size, size), batch_size=batch, crop_to_aspect_ratio=True, shuffle=True)
        dataset = images.map(lambda rgb: (tf.image.rgb_to_grayscale(rgb) / 255.0, rgb / 255.0),
                             num_parallel_calls=tf.data.AUTOTUNE).repeat().prefetch(tf.data.AUTOTUNE)
        rate = _time_batches(dataset, _EXAMPLES.value, batch)
    elif method == "seed_numpy":
        from PIL import Image

        start = time.perf_counter()
        names = sorted(os.listdir(source))
        rgb = np.stack([np.asarray(Image.open(os.path.join(source, n)).convert("RGB").resize((size, size)),
                                   dtype=np.float64) / 255.0 for n in names])
        gray = np.stack([np.asarray(Image.open(os.path.join(source, n)).convert("L").resize((size, size)),
                                    dtype=np.float64)[..., None] / 255.0 for n in names])
        dataset = tf.data.Dataset.from_tensor_slices((gray, rgb)).shuffle(len(names)).batch(batch)
        for _ in dataset:
            pass
        rate = len(names) / (time.perf_counter() - start)
    else:
        raise ValueError(method)
    print(json.dumps({"examples_per_s": rate}))


def _measure(args):
    """(child's JSON, peak RSS MiB) for one method in a fresh process."""
    _, peak_mib, stdout = process_stats.run_measured([sys.executable, os.path.abspath(__file__), *args])
    return json.loads(stdout.strip().splitlines()[-1]), peak_mib


def main(argv):
    del argv
    if _METHOD.value:
        run_method(_METHOD.value, _SOURCE.value)
        return
    from colorgan.data import conversion
    from colorgan.data import conversion_config
    from colorgan.demo import sample_photos

    work = _WORK_DIR.value or tempfile.mkdtemp(prefix="bench_pipeline_")
    folders = {  # name: (photos, size, enlargement of the bundled photos, examples timed per method)
        "camera": (_CAMERA_IMAGES.value, (1920, 1280), 4.0, _CAMERA_EXAMPLES.value),
        "small": (_SMALL_IMAGES.value, 256, 1.0, _EXAMPLES.value),
    }
    figures = {"batch_size": _BATCH.value, "image_size": _SIZE.value, "cpus": len(os.sched_getaffinity(0))}
    for name, (count, crop, upscale, examples) in folders.items():
        common = [f"--examples={examples}", f"--batch_size={_BATCH.value}", f"--image_size={_SIZE.value}",
                  f"--shuffle_buffer={_SHUFFLE.value}"]
        figures[f"{name}_examples_timed"] = examples
        photos = os.path.join(work, f"{name}_photos", "all")
        if not os.path.isdir(photos) or len(os.listdir(photos)) != count:
            print(f"writing {count} {name} photos ...", flush=True)
            sample_photos.write_photo_folder(photos, num_crops=count, crop_size=crop, include_originals=False,
                                             upscale=upscale, seed=1)
        subsets = {"": photos}
        if name == "small":
            quarter = os.path.join(work, f"{name}_quarter", "all")
            if not os.path.isdir(quarter):
                os.makedirs(quarter)
                for f in sorted(os.listdir(photos))[: count // 4]:
                    os.symlink(os.path.join(photos, f), os.path.join(quarter, f))
            subsets["_quarter"] = quarter
        for suffix, folder in subsets.items():
            for encoding in ("png", "jpeg") if not suffix else ("jpeg",):
                data = os.path.join(work, f"{name}{suffix}_{encoding}")
                conversion.run(conversion_config.ConversionConfig(
                    output_dir=data, input_dirs=(folder,), image_size=_SIZE.value, encoding=encoding,
                    val_fraction=0.0), log=lambda _: None)
                result, peak = _measure(["--method=records", f"--source={data}", *common])
                key = f"{name}{suffix}_records_{encoding}"
                figures[f"{key}_examples_per_s"] = round(result["examples_per_s"], 1)
                figures[f"{key}_peak_rss_mib"] = round(peak)
                print(f"{key:32s} {result['examples_per_s']:9.1f} examples/s  peak RSS {peak:6.0f} MiB", flush=True)
        for method in ("keras_dir", "seed_numpy"):
            result, peak = _measure([f"--method={method}", f"--source={photos}", *common])
            key = f"{name}_{method}"
            figures[f"{key}_examples_per_s"] = round(result["examples_per_s"], 1)
            figures[f"{key}_peak_rss_mib"] = round(peak)
            print(f"{key:32s} {result['examples_per_s']:9.1f} examples/s  peak RSS {peak:6.0f} MiB", flush=True)
        for encoding in ("png", "jpeg"):
            ratio = figures[f"{name}_records_{encoding}_examples_per_s"] / figures[f"{name}_keras_dir_examples_per_s"]
            figures[f"{name}_ratio_records_{encoding}_vs_keras_dir"] = round(ratio, 2)
            print(f"{name}: records ({encoding}) vs image_dataset_from_directory: {ratio:.2f}x")
    figures["small_peak_rss_ratio_full_vs_quarter"] = round(
        figures["small_records_jpeg_peak_rss_mib"] / figures["small_quarter_records_jpeg_peak_rss_mib"], 2)
    print(f"peak RSS of the records pipeline with 4x the data: {figures['small_peak_rss_ratio_full_vs_quarter']}x")
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    app.run(main)
