"""Colorization quality for a fixed CPU budget: the seed design, the smoke-size U-Net and its variants, on held-out
photos.

  python benchmarks/bench_quality.py --minutes=10
  python benchmarks/bench_quality.py --minutes=10 --models=unet,unet_nogan,resnet,resnet_nogan

Trains on random crops of the bundled photos except the held-out ones (sample_photos.HELD_OUT_PHOTO_NAMES), each
model for --minutes of wall time in its own launch/train.py process, stopped by SIGTERM as a scheduler would (the
trainer checkpoints and exits 143):
  seed   launch/configs/seed150.cfg at --seed_size px and --seed_batch (the original 150 px gets about ten steps in
         ten minutes on 2 cores; 96 px, near the seed discriminator's minimum, gets hundreds)
  unet   launch/configs/smoke.cfg (Lab U-Net + PatchGAN, 64 px, batch 8)
  resnet smoke.cfg on a ResNet50V2 encoder with random weights (--encoder_weights=none: the architecture alone;
         ImageNet weights are not measured here, as nothing may download)
  convnext  the same on ConvNeXt-Tiny
  X_nogan   model X with --pretrain_steps set to half the steps X reached in the same time (X runs first): the
         pixel loss alone for the first half of the budget, as DeOldify's NoGAN schedule does
then evaluates both with launch/evaluate.py --input_dir on the held-out photos at full resolution, through exactly
colorize.py's path, and prints them against the gray-copy baseline. Ends with one JSON line.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from colorgan.core import portable

_MINUTES = flags.DEFINE_float("minutes", 10.0, "Training wall time of each model.")
_CROPS = flags.DEFINE_integer("crops", 2000, "Training crops of the non-held-out photos.")
_SEED_SIZE = flags.DEFINE_integer("seed_size", 96, "Training size of the seed model.")
_SEED_BATCH = flags.DEFINE_integer("seed_batch", 4, "Batch size of the seed model.")
_WORK_DIR = flags.DEFINE_string("work_dir", "", "Keep files here (default: a temporary folder).")
_MODELS = flags.DEFINE_list("models", "seed,unet", "Models to train and evaluate, in order (see the docstring).")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(REPO_ROOT, "launch", "configs")
SMOKE = f"--flagfile={os.path.join(CONFIGS, 'smoke.cfg')}"
NOGAN = "_nogan"


def model_flags(name):
    """The training flags of a model named in --models (without the _nogan suffix)."""
    backbone = {"resnet": "resnet50v2", "convnext": "convnext_tiny"}
    if name == "seed":
        return [f"--flagfile={os.path.join(CONFIGS, 'seed150.cfg')}", f"--image_size={_SEED_SIZE.value}",
                f"--batch_size={_SEED_BATCH.value}"]
    if name == "unet":
        return [SMOKE]
    if name in backbone:
        return [SMOKE, "--depth=0", f"--encoder={backbone[name]}", "--encoder_weights=none"]
    raise app.UsageError(f"--models: unknown model {name!r}")


def train_for(minutes, model_dir, *flags_, train_steps=100000000):
    """Runs launch/train.py until `minutes` have passed (then SIGTERM) or to `train_steps` (minutes=None); returns
    the step it checkpointed."""
    command = [sys.executable, os.path.join(REPO_ROOT, "launch", "train.py"), *flags_, f"--model_dir={model_dir}",
               f"--train_steps={train_steps}", "--eval_every=0", "--checkpoint_every=100000000"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        process.wait(timeout=minutes * 60 if minutes else None)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate()
    if process.returncode not in (0, 128 + signal.SIGTERM):
        raise SystemExit(f"training {model_dir} failed ({process.returncode}):\n{stderr[-3000:]}")
    import tensorflow as tf

    return int(tf.train.load_checkpoint(model_dir).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))


def evaluate(model_dir, photos, output_dir):
    result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, "launch", "evaluate.py"), f"--model={model_dir}",
                             f"--input_dir={photos}", "--samples=2", f"--output_dir={output_dir}"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"evaluate {model_dir} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def prepare(work, crops):
    """Training records (128 px) from `crops` random crops of the photos not held out, and a folder of the held-out
    photos; returns (data_dir, held_out_dir)."""
    from PIL import Image

    from colorgan.data import conversion
    from colorgan.data import conversion_config
    from colorgan.demo import sample_photos

    photos, held_out, data = (os.path.join(work, name) for name in ("photos", "held_out", "data"))
    if not os.path.isdir(photos):
        sample_photos.write_photo_folder(photos, num_crops=crops, crop_size=256, seed=2,
                                         names=sample_photos.TRAINING_PHOTO_NAMES)
    os.makedirs(held_out, exist_ok=True)
    for name, pixels in sample_photos.bundled_photos(sample_photos.HELD_OUT_PHOTO_NAMES).items():
        Image.fromarray(pixels).save(os.path.join(held_out, f"{name}.png"))
    conversion.run(conversion_config.ConversionConfig(output_dir=data, input_dirs=(photos,), image_size=128),
                   log=lambda _: None)
    return data, held_out


def main(argv):
    del argv
    from colorgan.demo import sample_photos

    work = _WORK_DIR.value or tempfile.mkdtemp(prefix="bench_quality_")
    data, held_out = prepare(work, _CROPS.value)
    for name in _MODELS.value:
        model_flags(name.removesuffix(NOGAN))
    figures = {"minutes_each": _MINUTES.value, "cpus": portable.usable_cpus(),
               "held_out": list(sample_photos.HELD_OUT_PHOTO_NAMES), "training_photos":
               list(sample_photos.TRAINING_PHOTO_NAMES), "training_crops": _CROPS.value}
    reports = {}
    for name in _MODELS.value:
        base = name.removesuffix(NOGAN)
        schedule = []
        if name != base:
            if f"{base}_steps" not in figures:
                raise app.UsageError(f"--models: {name} needs {base} before it")
            schedule = [f"--pretrain_steps={figures[f'{base}_steps'] // 2}"]
        model_dir = os.path.join(work, f"run_{name}")
        start = time.monotonic()
        steps = train_for(_MINUTES.value, model_dir, f"--data_dir={data}", *model_flags(base), *schedule)
        print(f"{name}: {steps} steps in {(time.monotonic() - start) / 60:.1f} min", flush=True)
        reports[name] = evaluate(model_dir, held_out, os.path.join(work, f"eval_{name}"))
        figures[f"{name}_steps"] = steps
    print(f"\nheld-out photos at full resolution ({', '.join(sample_photos.HELD_OUT_PHOTO_NAMES)}), "
          f"{_MINUTES.value:g} min of training each on {figures['cpus']} cores:")
    print(f"{'':14s}{'steps':>8s}{'PSNR':>9s}{'SSIM':>8s}{'colorful':>10s}{'|dcolorful|':>13s}")
    baseline = next(iter(reports.values()))
    print(f"{'gray copy':14s}{'':>8s}{baseline['psnr_gray_copy']:9.2f}{baseline['ssim_gray_copy']:8.3f}"
          f"{baseline['colorfulness_gray_copy']:10.1f}{baseline['colorfulness_delta_gray_copy']:13.1f}")
    for name, report in reports.items():
        print(f"{name:14s}{figures[f'{name}_steps']:8d}{report['psnr']:9.2f}{report['ssim']:8.3f}"
              f"{report['colorfulness']:10.1f}{report['colorfulness_delta']:13.1f}")
        for metric in ("psnr", "ssim", "colorfulness", "colorfulness_delta", "psnr_gray_copy",
                       "colorfulness_real"):
            figures[f"{name}_{metric}"] = round(report[metric], 4)
        figures[f"{name}_beats_gray_copy_psnr"] = report["psnr"] > report["psnr_gray_copy"]
        figures[f"{name}_colorfulness_within_10"] = report["colorfulness_delta"] <= 10.0
    print(f"real colorfulness {baseline['colorfulness_real']:.1f}; sample sheets in {work}/eval_*/samples")
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    app.run(main)
