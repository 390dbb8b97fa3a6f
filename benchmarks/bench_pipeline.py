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

  python benchmarks/bench_pipeline.py --stages

instead profiles the training pipeline of launch/configs/unet256.cfg (256 px JPEG records, batch 32) stage by stage,
each pipeline prefix in its own process: host CPU-seconds per example (all threads, so its inverse is the examples
one core gives), and the host cores per GPU that implies at BUILD.md's paper estimates of GPU examples/s.
  read          shuffled serialized records, batched
  parse         + parsing the records
  decode        + decoding, cropping and flipping: the whole host pipeline with --color_maths=device
  lab_op_by_op  + the Lab pair op by op (the host pipeline before its colour maths was XLA-compiled)
  lab           + the Lab pair as shipped: the host pipeline with --color_maths=host
"""

import json
import os
import resource
import sys
import tempfile
import time

import process_stats
from absl import app
from absl import flags

from colorgan.core import portable

STAGES = ("read", "parse", "decode", "lab_op_by_op", "lab")
_CAMERA_IMAGES = flags.DEFINE_integer("camera_images", 200, "Camera-sized photos (1920x1280).")
_CAMERA_EXAMPLES = flags.DEFINE_integer("camera_examples", 400, "Examples timed per method on camera photos.")
_SMALL_IMAGES = flags.DEFINE_integer("small_images", 4000, "Small 256x256 crops.")
_EXAMPLES = flags.DEFINE_integer("examples", 3000, "Examples timed per method (after a warm-up batch).")
_BATCH = flags.DEFINE_integer("batch_size", 32, "Batch size.")
_SIZE = flags.DEFINE_integer("image_size", 150, "Side of the produced images.")
_SHUFFLE = flags.DEFINE_integer("shuffle_buffer", 1000, "colorgan pipeline shuffle buffer (records).")
_WORK_DIR = flags.DEFINE_string("work_dir", "", "Keep files here (default: a temporary folder).")
_METHOD = flags.DEFINE_string("method", "", "Internal: run one method in this process and print its JSON.")
_STAGE_METHOD = flags.DEFINE_enum("stage_method", None, STAGES, "Internal: time one --stages prefix.")
_SOURCE = flags.DEFINE_string("source", "", "Internal: folder or dataset directory for --method.")
_STAGES = flags.DEFINE_boolean("stages", False, "Profile unet256.cfg's training pipeline stage by stage instead.")
_STAGE_CROPS = flags.DEFINE_integer("stage_crops", 2048, "256 px photo crops in the records --stages reads.")
_STAGE_BATCHES = flags.DEFINE_integer("stage_batches", 60, "Batches timed per stage (after 3 warm-up batches).")
_GPU_RATES = flags.DEFINE_list("gpu_examples_per_s", ["A100=1560", "H100=4950"],
                               "GPU=examples/s of unet256.cfg: BUILD.md's paper estimates (gpu_estimate.py).")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _time_batches(dataset, examples, batch_size):
    """Examples/s over `examples` examples, after one warm-up batch (graph building, buffers)."""
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(max(1, examples // batch_size)):
        next(iterator)
    return max(1, examples // batch_size) * batch_size / (time.perf_counter() - start)


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stage_dataset(stage, data_dir, batch, size):
    """One prefix of input_pipeline.make_dataset's training stream (unet256.cfg's settings)."""
    import tensorflow as tf

    from colorgan.core import color
    from colorgan.data import input_pipeline
    from colorgan.data import records

    if stage in ("read", "parse"):
        files = records.shard_paths(data_dir, records.read_manifest(data_dir), "train")
        dataset = tf.data.Dataset.from_tensor_slices(files).repeat().interleave(
            tf.data.TFRecordDataset, cycle_length=min(16, len(files)), num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.shuffle(_SHUFFLE.value).batch(batch, drop_remainder=True)
        if stage == "parse":
            dataset = dataset.map(lambda serialized: records.parse_example(serialized)[records.RGB_KEY],
                                  num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.prefetch(tf.data.AUTOTUNE)
    if stage == "lab":
        return input_pipeline.make_dataset(data_dir, "train", batch, size, color_space="lab")
    dataset = input_pipeline.make_dataset(data_dir, "train", batch, size, color_space=None)
    if stage == "lab_op_by_op":
        lab = color.color_space("lab")
        dataset = dataset.map(lambda rgb: input_pipeline.model_pair.python_function(lab, rgb),
                              num_parallel_calls=tf.data.AUTOTUNE)
    return dataset


def run_stage(stage, data_dir):
    """Runs in a child process: CPU-seconds and wall time per example of one pipeline prefix."""
    batch, batches = _BATCH.value, _STAGE_BATCHES.value
    iterator = iter(_stage_dataset(stage, data_dir, batch, _SIZE.value))
    for _ in range(3):
        next(iterator)
    cpu, start = _cpu_seconds(), time.perf_counter()
    for _ in range(batches):
        next(iterator)
    examples = batches * batch
    print(json.dumps({"cpu_ms_per_example": (_cpu_seconds() - cpu) * 1e3 / examples,
                      "examples_per_s": examples / (time.perf_counter() - start)}))


def profile_stages(work):
    """--stages: the table of stages, and host cores per GPU for each way of running the colour maths."""
    from colorgan.data import conversion
    from colorgan.data import conversion_config
    from colorgan.demo import sample_photos

    size, batch = 256, 32
    photos, data = os.path.join(work, "stage_photos", "all"), os.path.join(work, "stage_records_jpeg")
    if not os.path.isdir(photos) or len(os.listdir(photos)) != _STAGE_CROPS.value:
        print(f"writing {_STAGE_CROPS.value} photo crops of {size} px ...", flush=True)
        sample_photos.write_photo_folder(photos, num_crops=_STAGE_CROPS.value, crop_size=size,
                                         include_originals=False, seed=2)
    conversion.run(conversion_config.ConversionConfig(output_dir=data, input_dirs=(photos,), image_size=size,
                                                      encoding="jpeg", val_fraction=0.0), log=lambda _: None)
    gpus = {name: float(rate) for name, rate in (entry.split("=") for entry in _GPU_RATES.value)}
    figures = {"image_size": size, "batch_size": batch, "cpus": os.cpu_count(), "gpu_examples_per_s": gpus}
    print(f"{'stage':14s} {'CPU ms/example':>15s} {'examples/core-s':>16s} {'examples/s':>11s}  "
          + "  ".join(f"cores per {name}" for name in gpus))
    for stage in STAGES:
        result, _ = _measure([f"--stage_method={stage}", f"--source={data}", f"--batch_size={batch}",
                              f"--image_size={size}", f"--shuffle_buffer={_SHUFFLE.value}",
                              f"--stage_batches={_STAGE_BATCHES.value}"])
        per_core = 1e3 / result["cpu_ms_per_example"]
        cores = {name: rate / per_core for name, rate in gpus.items()}
        figures[stage] = {**{key: round(value, 3) for key, value in result.items()},
                          "examples_per_core_s": round(per_core), "cores_per_gpu": {
                              name: round(value, 1) for name, value in cores.items()}}
        print(f"{stage:14s} {result['cpu_ms_per_example']:15.3f} {per_core:16.0f} {result['examples_per_s']:11.0f}  "
              + "  ".join(f"{value:12.1f}" for value in cores.values()), flush=True)
    ratio = figures["lab_op_by_op"]["cpu_ms_per_example"] / figures["lab"]["cpu_ms_per_example"]
    figures["ratio_host_pipeline_before_vs_after"] = round(ratio, 2)
    print(f"host pipeline with --color_maths=host, CPU per example before / after: {ratio:.2f}x")
    print(json.dumps(figures, sort_keys=True))


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
    if _STAGE_METHOD.value:
        run_stage(_STAGE_METHOD.value, _SOURCE.value)
        return
    from colorgan.data import conversion
    from colorgan.data import conversion_config
    from colorgan.demo import sample_photos

    work = _WORK_DIR.value or tempfile.mkdtemp(prefix="bench_pipeline_")
    if _STAGES.value:
        profile_stages(work)
        return
    folders = {  # name: (photos, size, enlargement of the bundled photos, examples timed per method)
        "camera": (_CAMERA_IMAGES.value, (1920, 1280), 4.0, _CAMERA_EXAMPLES.value),
        "small": (_SMALL_IMAGES.value, 256, 1.0, _EXAMPLES.value),
    }
    figures = {"batch_size": _BATCH.value, "image_size": _SIZE.value, "cpus": portable.usable_cpus()}
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
