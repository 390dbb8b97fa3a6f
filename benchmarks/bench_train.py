"""Training throughput: colorgan's Trainer against the seed notebook's plain training step, and its U-Net against
TensorFlow's pix2pix tutorial step, side by side.

  python benchmarks/bench_train.py

The seed model (models.seed_generator + the seed discriminator) at 150x150, global batch 8, trained on the same real
photos (random 256 px crops of scikit-image's bundled photos) by each variant:
  plain                   the seed notebook's way: every photo as float32 (gray, rgb) numpy arrays in memory,
                          from_tensor_slices + shuffle + batch, the faithful seed discriminator (sigmoid output),
                          BCE on probabilities + MSE, one-sided noisy labels, two Adam optimizers, global-norm
                          clipping at 1.0, one @tf.function step with two GradientTapes, called from a Python loop
  trainer                 colorgan.trainer.Trainer with launch/configs/seed150.cfg (batch 8) over TFRecords made
                          from the same photos by make_tfrecords; one_device strategy, steps_per_loop=1
  trainer_steps_per_loop  the same, with all timed steps in one compiled call (--steps_per_loop)
  trainer_xla             the same as trainer, with --xla (the replica's forward/backward pass XLA-compiled)
  trainer_2_replicas      the same as trainer, with --strategy=mirrored --cpu_replicas=2 (4 examples per replica)
and the U-Net pair of launch/configs/smoke.cfg at --unet_size 128 px, global batch --unet_batch 8:
  tutorial_unet           TensorFlow's pix2pix tutorial step (one @tf.function, two GradientTapes, BCE from logits
                          + 100 x L1, float32, a per-step Python loop) over the photos in memory as (L, ab)
  trainer_unet            the Trainer with its best settings for the hardware: --precision=auto, all --unet_steps
                          timed steps in one compiled call
  trainer_unet_xla        the same with --xla
  trainer_unet_float32    the same as trainer_unet in float32, the precision the shipped configs train in
                          (bf16 failed bench_precision's quality check), its colour maths in the input pipeline
  trainer_unet_device     the same with --color_maths=device: the pipeline ships uint8 RGB and the compiled step
                          converts to Lab (what auto picks on GPUs; on a CPU the same cores do the work either way)
  pipeline_unet           the trainer's input pipeline alone, on the same batches (how fast it can feed them)
Each variant runs in its own fresh process (the CPU must be split into replicas before TensorFlow initialises), is
warmed up (tracing, compilation and --warmup_steps steps), then timed over --steps training steps; peak RSS is that
process's own, sampled every 20 ms. Only training steps are timed: no evaluation, checkpoint or log line runs.

Prints a table (images/s; seconds per step, and its fastest-slowest over the timed calls; the process's CPU seconds
per step; the cores other processes took meanwhile; warm-up seconds; the trainer's own in-loop input-wait fraction;
peak RSS), the ratios (trainer vs plain; steps_per_loop and XLA vs trainer; the cost of 2 replicas over 1, as
1 - rate(2) / rate(1)), each also by CPU time per image, a cross-check that a busy machine disturbs much less than
wall time, then one JSON line of every figure. Targets: trainer >= 1.0x plain; 2 replicas cost <= 15%. About 7-10
minutes on 2 cores with the defaults (a step of the seed model takes about 7 s there).
"""

import dataclasses
import json
import os
import shutil
import sys
import tempfile
import time

import process_stats
from absl import app
from absl import flags

from colorgan.core import portable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_NUM_PHOTOS = flags.DEFINE_integer("num_photos", 256, "Photos (256x256 JPEG crops) in the benchmark folder.")
_STEPS = flags.DEFINE_integer("steps", 6, "Training steps timed per variant.")
_WARMUP = flags.DEFINE_integer("warmup_steps", 2, "Training steps run (after tracing/compiling) before timing.")
_STEPS_PER_LOOP = flags.DEFINE_integer(
    "steps_per_loop", 0, "Steps per compiled call of the trainer_steps_per_loop variant (0: all --steps in one call).")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Global batch size (the 2-replica variant splits it in two).")
_SIZE = flags.DEFINE_integer("image_size", 150, "Training image side (the seed's).")
_CONFIG = flags.DEFINE_string("config", os.path.join(REPO_ROOT, "launch", "configs", "seed150.cfg"),
                              "Trainer flagfile of the seed settings (--batch_size and --image_size above override).")
_UNET_CONFIG = flags.DEFINE_string("unet_config", os.path.join(REPO_ROOT, "launch", "configs", "smoke.cfg"),
                                   "Trainer flagfile of the U-Net pair (--unet_size and --unet_batch override).")
_UNET_SIZE = flags.DEFINE_integer("unet_size", 128, "Training image side of the U-Net variants.")
_UNET_BATCH = flags.DEFINE_integer("unet_batch", 8, "Global batch size of the U-Net variants.")
_UNET_STEPS = flags.DEFINE_integer("unet_steps", 60, "Training steps timed per U-Net variant (its steps are short).")
_SEED = flags.DEFINE_integer("seed", 0, "--seed of every variant (weights, data order, noisy labels).")
_VARIANTS = flags.DEFINE_list(
    "variants", "plain,trainer,trainer_steps_per_loop,trainer_xla,trainer_2_replicas,tutorial_unet,trainer_unet,"
    "trainer_unet_xla,trainer_unet_float32,pipeline_unet", "Variants to run, in order.")
_REPEATS = flags.DEFINE_integer(
    "repeats", 1, "Rounds over all variants (interleaved, to spread a busy machine's noise); the fastest round of "
    "each variant is reported.")
_WORK_DIR = flags.DEFINE_string("work_dir", "", "Keep photos and records here (default: a temporary folder).")
_VARIANT = flags.DEFINE_string("variant", "", "Internal: run one variant in this process and print its JSON.")
_SOURCE = flags.DEFINE_string("source", "", "Internal: photo folder (plain) or dataset directory (trainer).")
_MODEL_DIR = flags.DEFINE_string("model_dir", "", "Internal: the trainer's model_dir (nothing is saved there).")

# Trainer settings of each variant, over the seed150 config or (unet) the U-Net config. Never-reached intervals keep
# checkpoints, evaluation and log lines out of the timed steps (the benchmark drives the compiled loop itself).
# The U-Net variants run the trainer with its best settings for the hardware: precision auto, all timed steps in
# one call, and with/without XLA (smoke.cfg's instance norm allows it).
_TRAINER_VARIANTS = {
    "trainer": dict(strategy="one_device", cpu_replicas=0, steps_per_loop=1, xla=False),
    "trainer_steps_per_loop": dict(strategy="one_device", cpu_replicas=0, steps_per_loop=None, xla=False),
    "trainer_xla": dict(strategy="one_device", cpu_replicas=0, steps_per_loop=1, xla=True),
    "trainer_2_replicas": dict(strategy="mirrored", cpu_replicas=2, steps_per_loop=1, xla=False),
    "trainer_unet": dict(strategy="one_device", cpu_replicas=0, steps_per_loop=None, xla=False, precision="auto"),
    "trainer_unet_xla": dict(strategy="one_device", cpu_replicas=0, steps_per_loop=None, xla=True, precision="auto"),
    "trainer_unet_float32": dict(strategy="one_device", cpu_replicas=0, steps_per_loop=None, xla=False,
                                 precision="float32", color_maths="host"),
    "trainer_unet_device": dict(strategy="one_device", cpu_replicas=0, steps_per_loop=None, xla=False,
                                precision="float32", color_maths="device"),
}
_UNET_VARIANTS = ("tutorial_unet", "trainer_unet", "trainer_unet_xla", "trainer_unet_float32", "trainer_unet_device",
                  "pipeline_unet")
VARIANTS = ("plain", *_TRAINER_VARIANTS, "tutorial_unet", "pipeline_unet")


def _steps(variant):
    return _UNET_STEPS.value if variant in _UNET_VARIANTS else _STEPS.value


def _steps_per_loop(variant):
    return _STEPS_PER_LOOP.value or _steps(variant)


def _batch(variant):
    return _UNET_BATCH.value if variant in _UNET_VARIANTS else _BATCH.value


def _variant_config(variant, data_dir, model_dir, **overrides):
    """The TrainConfig of the variant's flagfile (--config, or --unet_config for the U-Net variants; parsed by the
    trainer's own flag definitions) with benchmark overrides."""
    from colorgan.training import train_config

    unet = variant in _UNET_VARIANTS
    settings = dict(data_dir=data_dir, model_dir=model_dir, batch_size=_batch(variant),
                    image_size=_UNET_SIZE.value if unet else _SIZE.value, seed=_SEED.value, train_steps=10**9,
                    eval_every=0, checkpoint_every=10**9, log_every=10**9, **overrides)
    return dataclasses.replace(train_config.read_flagfile(_UNET_CONFIG.value if unet else _CONFIG.value),
                               **settings)


# ------------------------------------------------------------------------------------------------ plain


def run_plain(photo_dir):
    """The seed notebook's training, as one would write it from the notebook; prints the child's JSON."""
    import keras
    import tensorflow as tf

    from colorgan.modeling import models

    config = _variant_config("plain", "", "")  # the trainer's learning rates and betas (speed-neutral)
    size, batch = _SIZE.value, _BATCH.value
    start = time.perf_counter()
    gray, rgb = _photos_in_memory(photo_dir, size)
    dataset = tf.data.Dataset.from_tensor_slices((gray, rgb)).shuffle(len(gray), seed=config.seed).batch(
        batch, drop_remainder=True).repeat()
    load_s = time.perf_counter() - start

    keras.utils.set_random_seed(config.seed)
    generator = models.seed_generator(size)
    discriminator = models.seed_discriminator(size)  # sigmoid probabilities, as the seed
    g_optimizer = keras.optimizers.Adam(config.g_learning_rate, beta_1=config.beta_1, beta_2=config.beta_2)
    d_optimizer = keras.optimizers.Adam(config.d_learning_rate, beta_1=config.beta_1, beta_2=config.beta_2)
    bce = keras.losses.BinaryCrossentropy()
    mse = keras.losses.MeanSquaredError()

    @tf.function
    def train_step(gray, rgb):
        shape = [tf.shape(gray)[0], 1]
        real_labels = tf.random.uniform(shape, 0.9, 1.0)  # the seed's one-sided noisy labels
        fake_labels = tf.random.uniform(shape, 0.0, 0.1)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            generated = generator(gray, training=True)
            real = discriminator(rgb, training=True)
            fake = discriminator(generated, training=True)
            d_loss = bce(real_labels, real) + bce(fake_labels, fake)
            g_loss = bce(tf.ones_like(fake), fake) + config.reconstruction_weight * mse(rgb, generated)
        g_grads = g_tape.gradient(g_loss, generator.trainable_variables)
        d_grads = d_tape.gradient(d_loss, discriminator.trainable_variables)
        g_grads, _ = tf.clip_by_global_norm(g_grads, config.clip_norm)
        d_grads, _ = tf.clip_by_global_norm(d_grads, config.clip_norm)
        g_optimizer.apply_gradients(zip(g_grads, generator.trainable_variables))
        d_optimizer.apply_gradients(zip(d_grads, discriminator.trainable_variables))
        return g_loss, d_loss

    _time_step_loop(train_step, iter(dataset), _steps("plain"), batch, load_s=load_s)


def _time_step_loop(train_step, iterator, steps, batch_size, **extra):
    """Warms up (the first call traces and builds the optimizers), then times `steps` calls of a per-step
    tf.function from a Python loop, reading the losses back after each (a notebook prints them; the trainer reads
    its losses after each call too); prints the child's JSON."""
    import numpy as np

    start = time.perf_counter()
    for _ in range(max(1, _WARMUP.value)):
        g_loss, _ = train_step(*next(iterator))
    float(g_loss)
    warmup_s = time.perf_counter() - start
    step_seconds = []
    clocks = _Clocks()
    for _ in range(steps):
        start = time.perf_counter()
        g_loss, d_loss = train_step(*next(iterator))
        losses = float(g_loss), float(d_loss)
        step_seconds.append(time.perf_counter() - start)
    _report(step_seconds, 1, warmup_s, clocks, batch_size, finite=bool(np.isfinite(losses).all()), **extra)


def _photos_in_memory(photo_dir, size):
    """Every photo resized to size x size: (gray [n, s, s, 1], rgb [n, s, s, 3]) float32 in [0, 1]."""
    import numpy as np
    from PIL import Image

    paths = [os.path.join(photo_dir, name) for name in sorted(os.listdir(photo_dir))]
    rgb = np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size)), np.float32) / 255.0
                    for p in paths])
    gray = np.stack([np.asarray(Image.open(p).convert("L").resize((size, size)), np.float32)[..., None] / 255.0
                     for p in paths])
    return gray, rgb


def run_tutorial_unet(photo_dir):
    """TensorFlow's pix2pix tutorial training step (tensorflow.org/tutorials/generative/pix2pix) on the U-Net +
    PatchGAN of --unet_config: one @tf.function step with two GradientTapes, BCE-from-logits GAN losses + 100 x L1,
    two Adams, float32, called from a per-step Python loop over an in-memory (L, ab) dataset of the same photos."""
    import keras
    import tensorflow as tf

    from colorgan.core import color
    from colorgan.modeling import models

    config = _variant_config("tutorial_unet", "", "")
    size, batch = config.image_size, config.batch_size
    start = time.perf_counter()
    gray, rgb = _photos_in_memory(photo_dir, size)
    lab = color.color_space("lab")
    inputs, targets = lab.model_input(tf.constant(gray)).numpy(), lab.targets(tf.constant(rgb)).numpy()
    dataset = tf.data.Dataset.from_tensor_slices((inputs, targets)).shuffle(len(inputs), seed=config.seed).batch(
        batch, drop_remainder=True).repeat()
    load_s = time.perf_counter() - start

    keras.utils.set_random_seed(config.seed)
    generator = models.unet_generator(size, color_space="lab", base_width=config.base_width, depth=config.depth,
                                      norm=config.norm, dropout=config.dropout)
    discriminator = models.patchgan_discriminator(size, color_space="lab", base_width=config.base_width,
                                                  norm=config.norm)
    g_optimizer = keras.optimizers.Adam(config.g_learning_rate, beta_1=config.beta_1)
    d_optimizer = keras.optimizers.Adam(config.d_learning_rate, beta_1=config.beta_1)
    loss_object = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def train_step(input_image, target):
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            gen_output = generator(input_image, training=True)
            disc_real_output = discriminator([input_image, target], training=True)
            disc_generated_output = discriminator([input_image, gen_output], training=True)
            gan_loss = loss_object(tf.ones_like(disc_generated_output), disc_generated_output)
            gen_total_loss = gan_loss + config.reconstruction_weight * tf.reduce_mean(tf.abs(target - gen_output))
            disc_loss = (loss_object(tf.ones_like(disc_real_output), disc_real_output)
                         + loss_object(tf.zeros_like(disc_generated_output), disc_generated_output))
        generator_gradients = gen_tape.gradient(gen_total_loss, generator.trainable_variables)
        discriminator_gradients = disc_tape.gradient(disc_loss, discriminator.trainable_variables)
        g_optimizer.apply_gradients(zip(generator_gradients, generator.trainable_variables))
        d_optimizer.apply_gradients(zip(discriminator_gradients, discriminator.trainable_variables))
        return gen_total_loss, disc_loss

    _time_step_loop(train_step, iter(dataset), _steps("tutorial_unet"), batch, load_s=load_s)


def run_pipeline_unet(data_dir):
    """The trainer's input pipeline alone, on the U-Net variants' batches (Lab, --unet_size, --unet_batch, random
    crops and flips from the records): how fast it can feed them."""
    from colorgan.data import input_pipeline

    config = _variant_config("pipeline_unet", data_dir, "")
    iterator = iter(input_pipeline.make_dataset(data_dir, "train", config.batch_size, config.image_size,
                                                color_space="lab", seed=config.seed))
    start = time.perf_counter()
    next(iterator)
    warmup_s = time.perf_counter() - start
    batches = 4 * _steps("pipeline_unet")
    clocks = _Clocks()
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    _report([time.perf_counter() - start], batches, warmup_s, clocks, config.batch_size, finite=True)


# ---------------------------------------------------------------------------------------------- trainer


def run_trainer(variant, data_dir, model_dir):
    """colorgan's Trainer, driving its compiled training loop directly; prints the child's JSON."""
    from colorgan.training import distribute

    overrides = dict(_TRAINER_VARIANTS[variant])
    if overrides["steps_per_loop"] is None:
        overrides["steps_per_loop"] = _steps_per_loop(variant)
    config = _variant_config(variant, data_dir, model_dir, **overrides)
    # First thing touching devices: the CPU is split into replicas before TensorFlow initialises.
    strategy = distribute.make_strategy(config.strategy, config.cpu_replicas)
    problems = config.validate(num_replicas=strategy.num_replicas_in_sync)
    if problems:
        raise SystemExit("; ".join(problems))
    import numpy as np

    from colorgan.training import checkpoints
    from colorgan.training import trainer

    config = checkpoints.resolve_config(config, log=lambda _: None)  # --precision=auto, as launch/train.py does
    run = trainer.Trainer(config, strategy, log=lambda _: None)
    # Private on purpose: Trainer.train() would add restore, evaluation, checkpoints and log lines; the benchmark
    # times what train() runs per call (`_run_steps`: the first batch fetched and timed by the host, the compiled
    # loop, losses read back) over the same `_dataset` stream, alone.
    iterator = iter(run._dataset(training=True))
    per_call = config.steps_per_loop
    start = time.perf_counter()
    warmup = max(1, _WARMUP.value)
    for _ in range(max(1, warmup // per_call)):  # traces, compiles (XLA too) and runs >= 1 step
        run._run_steps(iterator, min(per_call, warmup))
    warmup_s = time.perf_counter() - start
    calls = max(1, _steps(variant) // per_call)
    wait = 0.0
    call_seconds = []
    clocks = _Clocks()
    for _ in range(calls):
        start = time.perf_counter()
        g_total, d_total, finite_steps, call_wait = run._run_steps(iterator, per_call)
        call_seconds.append(time.perf_counter() - start)
        wait += call_wait
    _report(call_seconds, per_call, warmup_s, clocks, config.batch_size,
            input_wait_fraction=min(1.0, wait / sum(call_seconds)), replicas=strategy.num_replicas_in_sync,
            steps_per_loop=per_call, precision=run.config.precision,
            finite=bool(np.isfinite([g_total, d_total]).all()) and finite_steps == per_call)


class _Clocks:
    """From construction on: wall time, this process's CPU time (all its threads), and the CPU time the whole machine
    spent busy (/proc/stat), whose difference is what other processes took while we were timed."""

    def __init__(self):
        self.wall, self.cpu, self.machine = time.perf_counter(), time.process_time(), self._machine_busy()

    @staticmethod
    def _machine_busy():
        try:
            with open("/proc/stat", encoding="ascii") as f:
                user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in f.readline().split()[1:9])
        except (OSError, ValueError):
            return float("nan")
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    def elapsed(self):
        """(wall s, this process's CPU s, other processes' CPU s) since construction."""
        wall, cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu
        return wall, cpu, max(0.0, self._machine_busy() - self.machine - cpu)


def _report(call_seconds, steps_per_call, warmup_s, clocks, batch_size, **extra):
    """Prints the child's JSON: rates over all timed calls; the fastest and slowest call per step; CPU seconds per
    step, a figure much less sensitive than wall time to other processes; and how many cores those took meanwhile."""
    wall, cpu, others = clocks.elapsed()
    seconds, steps = sum(call_seconds), len(call_seconds) * steps_per_call
    print(json.dumps({"images_per_s": steps * batch_size / seconds, "seconds_per_step": seconds / steps,
                      "fastest_step_s": min(call_seconds) / steps_per_call,
                      "slowest_step_s": max(call_seconds) / steps_per_call, "cpu_seconds_per_step": cpu / steps,
                      "other_processes_cores": others / wall, "steps": steps, "warmup_s": warmup_s, **extra}))


# ---------------------------------------------------------------------------------------------- parent


def _measure(args):
    """(child's JSON, peak RSS MiB, wall seconds) for one variant in a fresh process."""
    seconds, peak_mib, stdout = process_stats.run_measured([sys.executable, os.path.abspath(__file__), *args])
    return json.loads(stdout.strip().splitlines()[-1]), peak_mib, seconds


def _prepare_data(work):
    from colorgan.data import conversion
    from colorgan.data import conversion_config
    from colorgan.demo import sample_photos

    photos = os.path.join(work, "photos", "all")
    if not os.path.isdir(photos) or len(os.listdir(photos)) != _NUM_PHOTOS.value:
        print(f"writing {_NUM_PHOTOS.value} photos ...", flush=True)
        sample_photos.write_photo_folder(photos, num_crops=_NUM_PHOTOS.value, crop_size=256, include_originals=False,
                                         seed=1)
    data = os.path.join(work, f"records{_SIZE.value}")
    conversion.run(conversion_config.ConversionConfig(output_dir=data, input_dirs=(photos,), image_size=_SIZE.value,
                                                      val_fraction=0.0), log=lambda _: None)
    return photos, data


def main(argv):
    del argv
    if _VARIANT.value in ("plain", "tutorial_unet", "pipeline_unet"):
        {"plain": run_plain, "tutorial_unet": run_tutorial_unet, "pipeline_unet": run_pipeline_unet}[
            _VARIANT.value](_SOURCE.value)
        return
    if _VARIANT.value:
        run_trainer(_VARIANT.value, _SOURCE.value, _MODEL_DIR.value)
        return
    unknown = sorted(set(_VARIANTS.value) - set(VARIANTS))
    if unknown:
        raise app.UsageError(f"--variants: unknown {unknown}, expected some of {list(VARIANTS)}")
    wall_start = time.perf_counter()
    work = _WORK_DIR.value or tempfile.mkdtemp(prefix="bench_train_")
    photos, data = _prepare_data(work)
    common = [f"--steps={_STEPS.value}", f"--warmup_steps={_WARMUP.value}", f"--batch_size={_BATCH.value}",
              f"--image_size={_SIZE.value}", f"--steps_per_loop={_STEPS_PER_LOOP.value}", f"--config={_CONFIG.value}",
              f"--unet_config={_UNET_CONFIG.value}", f"--unet_size={_UNET_SIZE.value}",
              f"--unet_batch={_UNET_BATCH.value}", f"--unet_steps={_UNET_STEPS.value}",
              f"--seed={_SEED.value}"]
    figures = {"batch_size": _BATCH.value, "image_size": _SIZE.value, "cpus": portable.usable_cpus(),
               "steps_timed": _STEPS.value, "warmup_steps": _WARMUP.value, "steps_per_loop": _steps_per_loop("trainer"),
               "unet_size": _UNET_SIZE.value, "unet_batch": _UNET_BATCH.value, "unet_steps_timed": _UNET_STEPS.value,
               "repeats": _REPEATS.value, "photos": _NUM_PHOTOS.value}
    results = {}  # variant: (child JSON, peak MiB) of its fastest round
    print(f"{'variant':24s} {'images/s':>9s} {'s/step':>8s} {'min-max s/step':>15s} {'CPU s/step':>10s} "
          f"{'others':>6s} {'warm-up s':>9s} {'input wait':>10s} {'peak RSS':>9s}", flush=True)
    for _ in range(_REPEATS.value):
        for variant in _VARIANTS.value:
            if variant in ("plain", "tutorial_unet"):
                args = [f"--source={photos}"]
            else:
                args = [f"--source={data}", f"--model_dir={tempfile.mkdtemp(prefix=f'{variant}_', dir=work)}"]
            result, peak, _ = _measure([f"--variant={variant}", *args, *common])
            if not result["finite"]:
                print(f"warning: {variant} produced a non-finite loss", flush=True)
            wait = result.get("input_wait_fraction")
            spread = f"{result['fastest_step_s']:.2f}-{result['slowest_step_s']:.2f}"
            print(f"{variant:24s} {result['images_per_s']:9.2f} {result['seconds_per_step']:8.2f} {spread:>15s} "
                  f"{result['cpu_seconds_per_step']:10.2f} {result['other_processes_cores']:6.2f} "
                  f"{result['warmup_s']:9.1f} {'-' if wait is None else f'{wait:.1%}':>10s} {peak:6.0f} MiB",
                  flush=True)
            if variant not in results or result["images_per_s"] > results[variant][0]["images_per_s"]:
                results[variant] = (result, peak)
    for variant, (result, peak) in results.items():
        figures[f"{variant}_images_per_s"] = round(result["images_per_s"], 3)
        figures[f"{variant}_seconds_per_step"] = round(result["seconds_per_step"], 3)
        figures[f"{variant}_cpu_seconds_per_step"] = round(result["cpu_seconds_per_step"], 3)
        figures[f"{variant}_other_processes_cores"] = round(result["other_processes_cores"], 2)
        figures[f"{variant}_warmup_s"] = round(result["warmup_s"], 1)
        figures[f"{variant}_peak_rss_mib"] = round(peak)
        if "precision" in result:
            figures[f"{variant}_precision"] = result["precision"]
        if "input_wait_fraction" in result:
            figures[f"{variant}_input_wait_fraction"] = round(result["input_wait_fraction"], 4)
    others = [result["other_processes_cores"] for result, _ in results.values()]
    figures["other_processes_cores_max"] = round(max(others), 2)
    if max(others) > 0.25:
        print(f"warning: other processes took {min(others):.2f}-{max(others):.2f} of the "
              f"{figures['cpus']} cores while variants were timed; the images/s ratios carry that load, the CPU-time "
              f"ratios much less (rerun on a quiet machine, or with --repeats, to confirm a target)")
    rate = {variant: result["images_per_s"] for variant, (result, _) in results.items()}
    cpu = {variant: result["cpu_seconds_per_step"] for variant, (result, _) in results.items()}
    ratios = (("trainer_vs_plain", "trainer", "plain"),
              ("steps_per_loop_vs_trainer", "trainer_steps_per_loop", "trainer"),
              ("xla_vs_trainer", "trainer_xla", "trainer"),
              ("two_replicas_vs_one", "trainer_2_replicas", "trainer"),
              ("trainer_unet_vs_tutorial", "trainer_unet", "tutorial_unet"),
              ("trainer_unet_xla_vs_tutorial", "trainer_unet_xla", "tutorial_unet"),
              ("trainer_unet_float32_vs_tutorial", "trainer_unet_float32", "tutorial_unet"),
              ("device_colour_maths_vs_host", "trainer_unet_device", "trainer_unet_float32"),
              ("pipeline_unet_vs_trainer_unet", "pipeline_unet", "trainer_unet"))
    if _REPEATS.value > 1:
        print(f"(fastest of {_REPEATS.value} rounds per variant)")
    for name, numerator, denominator in ratios:
        if numerator in rate and denominator in rate:
            figures[f"ratio_{name}"] = round(rate[numerator] / rate[denominator], 3)
            # The same ratio by CPU time per image: a cross-check against a busy machine, not the target.
            figures[f"cpu_ratio_{name}"] = round(cpu[denominator] / cpu[numerator], 3)
            print(f"{numerator} vs {denominator}: {figures[f'ratio_{name}']:.2f}x images/s "
                  f"({figures[f'cpu_ratio_{name}']:.2f}x by CPU time per image)")
    if "ratio_trainer_vs_plain" in figures:
        figures["target_trainer_vs_plain_met"] = figures["ratio_trainer_vs_plain"] >= 1.0
        print(f"target trainer >= 1.0x plain: {'met' if figures['target_trainer_vs_plain_met'] else 'NOT met'}")
    unet_best = max((name for name in ("trainer_unet", "trainer_unet_xla", "trainer_unet_float32") if name in rate),
                    key=rate.get, default=None)
    if unet_best and "tutorial_unet" in rate:
        figures["trainer_unet_best"] = unet_best
        figures["target_trainer_unet_vs_tutorial_met"] = rate[unet_best] / rate["tutorial_unet"] >= 1.3
        print(f"target U-Net trainer ({unet_best}, {results[unet_best][0]['precision']}) >= 1.3x the pix2pix "
              f"tutorial step: {'met' if figures['target_trainer_unet_vs_tutorial_met'] else 'NOT met'}")
    if "ratio_two_replicas_vs_one" in figures:
        cost = 100.0 * (1.0 - rate["trainer_2_replicas"] / rate["trainer"])
        figures["two_replicas_cost_percent"] = round(cost, 1)
        figures["target_two_replicas_cost_met"] = cost <= 15.0
        print(f"cost of 2 CPU replicas over 1: {cost:.1f}% (target <= 15%: "
              f"{'met' if figures['target_two_replicas_cost_met'] else 'NOT met'})")
    figures["wall_s"] = round(time.perf_counter() - wall_start, 1)
    if not _WORK_DIR.value:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    app.run(main)
