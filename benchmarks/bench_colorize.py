"""Full-resolution colorization time and memory: colorize.py's path against running the generator at full size.

  python benchmarks/bench_colorize.py

With the launch/configs/unet256.cfg generator (54 M parameters; weights as initialised: speed and memory do not
depend on their values), for camera-sized photos of 1, 6 and 24 megapixels (enlarged bundled photos, JPEG):
  colorgan   colorize.py's path: the generator at its 256 px render size, chroma upsampled and joined with the
             full-resolution L*, gamut-fitted, written as JPEG q95
  naive      the generator run on the whole photo (padded to a multiple of 256), where its estimated activation
             memory fits --naive_budget_gib; otherwise skipped, with the estimate
Each photo and method runs in its own process: seconds for the photo (load, colorize, write; after a warm-up that
traces the graphs) and the process's peak RSS (sampled every 20 ms). Also the whole launch/colorize.py command on the
24 MP photo, start-up included. Ends with one JSON line.

  python benchmarks/bench_colorize.py --part=throughput

Photos/s of launch/colorize.py on a folder of --throughput_photos 1-MP JPEGs (random crops of the bundled photos,
enlarged), each configuration in its own process: local one photo per generator call, local --batch_size=B, and
--runner=beam (FnApiRunner, 2 worker processes) at both. Each runs on the whole folder and on its first tenth; the
difference (start-up, tracing and Beam's workers starting cancel out) gives the steady rate. Ratios against the local
one-at-a-time run.
"""

import json
import os
import sys
import tempfile
import time

import process_stats
import unet256_run
from absl import app
from absl import flags

from colorgan.core import portable

_MEGAPIXELS = flags.DEFINE_list("megapixels", ["1", "6", "24"], "Photo sizes, in megapixels (3:2).")
_NAIVE_BUDGET = flags.DEFINE_float("naive_budget_gib", 8.0, "Run the naive method only below this estimate.")
_WORK_DIR = flags.DEFINE_string("work_dir", "", "Keep files here (default: a temporary folder).")
_METHOD = flags.DEFINE_string("method", "", "Internal: colorize --photo with this method and print its JSON.")
_PHOTO = flags.DEFINE_string("photo", "", "Internal: the photo for --method.")
_MODEL = flags.DEFINE_string("model", "", "Internal: the run directory for --method.")
_PART = flags.DEFINE_enum("part", "memory", ["memory", "throughput"], "What to measure (see above).")
_THROUGHPUT_PHOTOS = flags.DEFINE_integer("throughput_photos", 200, "Photos in the throughput folder.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "The batched configurations' --batch_size.")
_BEAM_OPTIONS = "runner=FnApiRunner,direct_running_mode=multi_processing,direct_num_workers=2"

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = unet256_run.CONFIG
_NAIVE_MULTIPLE = 2**8  # unet256.cfg's U-Net halves the image 8 times


def naive_estimate_gib(megapixels):
    """Activation memory of one full-resolution U-Net pass: every layer's output at that size, float32."""
    from colorgan.modeling import models
    from colorgan.training import train_config

    config = train_config.read_flagfile(CONFIG)
    generator = models.build_generator(config.generator, config.image_size, **config.model_hparams())
    elements = sum(int(_product(layer.output.shape[1:])) for layer in generator.layers)
    return elements * 4 * megapixels * 1e6 / config.image_size**2 / 2**30


def _product(shape):
    result = 1
    for side in shape:
        result *= side
    return result


def run_method(method, photo, model_dir):
    """In a child process: colorizes `photo` once to warm up on a small copy, then times it; prints JSON."""
    import keras
    import numpy as np
    import tensorflow as tf

    from colorgan.core import visualize
    from colorgan.inference import colorize_steps
    from colorgan.inference import loading
    from colorgan.inference import photo_files
    from colorgan.modeling import models

    output = os.path.join(os.path.dirname(photo), f"out_{method}_{os.path.basename(photo)}")
    if method == "colorgan":
        colorizer = loading.Colorizer.load(model_dir)
        colorizer.colorize(np.zeros((300, 200), np.float32), np.uint8)  # traces the graph the photo uses
        start = time.perf_counter()
        loaded = photo_files.load_photo(photo, max_pixels=10**9)
        photo_files.save_photo(colorize_steps.colorize_photo(colorizer, loaded, "JPEG"), output, "JPEG",
                               exif=loaded.exif)
    else:
        start = time.perf_counter()
        loaded = photo_files.load_photo(photo, max_pixels=10**9)
        height, width = loaded.gray.shape
        padded = [-(-side // _NAIVE_MULTIPLE) * _NAIVE_MULTIPLE for side in (height, width)]
        trained, description = loading.load_generator(model_dir)
        # The same layers and weights on a (padded) full-size input.
        generator = keras.models.clone_model(trained, input_tensors=keras.Input((*padded, 1)))
        generator.set_weights(trained.get_weights())
        space = models.GENERATORS[description["generator"]].color_space
        gray = np.pad(loaded.gray, [(0, padded[0] - height), (0, padded[1] - width)], mode="edge")
        inputs = space.model_input(tf.constant(gray[None, ..., None]))
        rgb = space.to_rgb(inputs, generator(inputs, training=False))[0, :height, :width].numpy()
        photo_files.save_photo(visualize.to_u8(rgb), output, "JPEG")
    print(json.dumps({"seconds": time.perf_counter() - start}))


def throughput(work, model_dir):
    """Steady photos/s of colorize.py per configuration (see the module's docstring); returns the figures."""
    from colorgan.demo import sample_photos

    folders = {}
    for count in (_THROUGHPUT_PHOTOS.value // 10, _THROUGHPUT_PHOTOS.value):
        folders[count] = os.path.join(work, f"photos_{count}")
        if not os.path.isdir(folders[count]):  # the first tenth of the big folder is the small one
            sample_photos.write_photo_folder(folders[count], num_crops=count, crop_size=(1224, 816), upscale=3.0,
                                             include_originals=False)
    configurations = {"local_1": [], f"local_{_BATCH.value}": [f"--batch_size={_BATCH.value}"],
                      "beam_1": ["--runner=beam", f"--beam_pipeline_options={_BEAM_OPTIONS}"],
                      f"beam_{_BATCH.value}": ["--runner=beam", f"--beam_pipeline_options={_BEAM_OPTIONS}",
                                               f"--batch_size={_BATCH.value}"]}
    figures = {"throughput_photos": _THROUGHPUT_PHOTOS.value, "throughput_photo_size": "1224x816"}
    for name, flags_of_run in configurations.items():
        seconds = {}
        for count, folder in folders.items():
            seconds[count], _, _ = process_stats.run_measured(
                [sys.executable, os.path.join(REPO_ROOT, "launch", "colorize.py"), f"--model={model_dir}",
                 f"--input={folder}", f"--output_dir={os.path.join(work, f'out_{name}_{count}')}", "--overwrite",
                 *flags_of_run])
        small, large = sorted(seconds)
        rate = (large - small) / (seconds[large] - seconds[small])
        figures[f"{name}_photos_per_s"] = round(rate, 2)
        figures[f"{name}_seconds_{large}"] = round(seconds[large], 1)
        print(f"{name:10s} {seconds[large]:7.1f} s for {large} photos, {seconds[small]:6.1f} s for {small}: "
              f"{rate:.2f} photos/s steady", flush=True)
    for name in configurations:
        figures[f"{name}_vs_local_1"] = round(figures[f"{name}_photos_per_s"] / figures["local_1_photos_per_s"], 2)
        print(f"{name:10s} {figures[f'{name}_vs_local_1']:.2f}x the local one-at-a-time rate")
    return figures


def main(argv):
    del argv
    if _METHOD.value:
        run_method(_METHOD.value, _PHOTO.value, _MODEL.value)
        return
    if _PART.value == "throughput":
        work = _WORK_DIR.value or tempfile.mkdtemp(prefix="bench_colorize_")
        model_dir = os.path.join(work, "unet256_run")
        if not os.path.isdir(model_dir):
            unet256_run.make_run(model_dir)
        figures = {"cpus": portable.usable_cpus(), "generator": "unet256.cfg (render size 256)"}
        print(json.dumps({**figures, **throughput(work, model_dir)}, sort_keys=True))
        return
    from PIL import Image

    from colorgan.demo import sample_photos

    work = _WORK_DIR.value or tempfile.mkdtemp(prefix="bench_colorize_")
    model_dir = os.path.join(work, "unet256_run")
    if not os.path.isdir(model_dir):
        unet256_run.make_run(model_dir)
    coffee = Image.fromarray(sample_photos.bundled_photos(("coffee",))["coffee"])
    figures = {"cpus": portable.usable_cpus(), "generator": "unet256.cfg (render size 256)"}
    for megapixels in (float(m) for m in _MEGAPIXELS.value):
        width = round((megapixels * 1e6 * 1.5) ** 0.5)
        height = round(width / 1.5)
        photo = os.path.join(work, f"photo_{megapixels:g}mp.jpg")
        if not os.path.exists(photo):
            coffee.resize((width, height), Image.Resampling.BICUBIC).save(photo, quality=92)
        key = f"{megapixels:g}mp"
        estimate = naive_estimate_gib(megapixels)
        figures[f"{key}_naive_estimate_gib"] = round(estimate, 1)
        for method in ("colorgan", "naive"):
            if method == "naive" and estimate > _NAIVE_BUDGET.value:
                print(f"{key:6s} {method:9s} skipped: a full-resolution pass needs about {estimate:.1f} GiB "
                      f"(> --naive_budget_gib={_NAIVE_BUDGET.value:g})", flush=True)
                continue
            _, peak, stdout = process_stats.run_measured(
                [sys.executable, os.path.abspath(__file__), f"--method={method}", f"--photo={photo}",
                 f"--model={model_dir}"])
            seconds = json.loads(stdout.strip().splitlines()[-1])["seconds"]
            figures[f"{key}_{method}_seconds"] = round(seconds, 2)
            figures[f"{key}_{method}_peak_rss_mib"] = round(peak)
            print(f"{key:6s} {method:9s} {width}x{height}: {seconds:7.2f} s  peak RSS {peak:7.0f} MiB", flush=True)
        if f"{key}_naive_seconds" in figures:
            figures[f"{key}_naive_vs_colorgan_seconds"] = round(
                figures[f"{key}_naive_seconds"] / figures[f"{key}_colorgan_seconds"], 2)
            figures[f"{key}_naive_vs_colorgan_peak_rss"] = round(
                figures[f"{key}_naive_peak_rss_mib"] / figures[f"{key}_colorgan_peak_rss_mib"], 2)
    largest = os.path.join(work, f"photo_{max(float(m) for m in _MEGAPIXELS.value):g}mp.jpg")
    seconds, peak, _ = process_stats.run_measured(
        [sys.executable, os.path.join(REPO_ROOT, "launch", "colorize.py"), f"--model={model_dir}",
         f"--input={largest}", f"--output_dir={os.path.join(work, 'cli_out')}", "--overwrite"])
    figures["cli_largest_seconds"], figures["cli_largest_peak_rss_mib"] = round(seconds, 2), round(peak)
    print(f"launch/colorize.py on {os.path.basename(largest)}, start-up included: {seconds:.2f} s, peak RSS "
          f"{peak:.0f} MiB")
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    app.run(main)
