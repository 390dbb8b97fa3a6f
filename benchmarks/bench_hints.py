"""Colour hints measured as Zhang et al. 2017 measure them: quality against the number of points revealed.

  python benchmarks/bench_hints.py --minutes=10 --draws=10

Trains two models for the same wall time (or --steps) each on random crops of the bundled photos except the
held-out ones (bench_quality.prepare): launch/configs/smoke_hints.cfg and smoke.cfg, the same but for --hints. Then,
on the held-out photos at full resolution, through the colorize path:
  - the hints model at 0, 1, 2, 5, 10, 20 points, each point revealed from the original by the paper's protocol
    (hint_points.from_original: the mean colour of a patch of 6/256 of the longer side, placed normally around the
    centre with sigma a quarter of the side), averaged over --draws draws per photo;
  - the nearest-hint baseline, which needs no model: every pixel takes the a*b* of its nearest point, L* the photo's;
  - the hint-free model (0 points);
  - one point where the hints model's automatic colour is furthest from the original (among saturated pixels): the
    a*b* distance there before and after a single hint with the original's colour.
Prints PSNR, SSIM and |delta colourfulness| per count, writes gray | 0 points | 10 points (drawn) | real sheets to
--sheets_dir, and ends with one JSON line. The paper's ImageNet curve (PSNR dB at 0, 1, 2, 5, 10, 20 points):
24.43, 25.37, 26.20, 27.39, 28.42, 29.34.
"""

import json
import os
import tempfile
import time

import bench_quality
import numpy as np
from absl import app
from absl import flags

from colorgan.core import portable

# --minutes, --crops and --work_dir are bench_quality's flags (its data and held-out photos are used here); a model
# already trained in --work_dir is reused.
_DRAWS = flags.DEFINE_integer("draws", 10, "Draws of the points per photo and count.")
_COUNTS = flags.DEFINE_list("counts", ["0", "1", "2", "5", "10", "20"], "Numbers of points revealed.")
_SEED = flags.DEFINE_integer("seed", 0, "Training seed of both models.")
_STEPS = flags.DEFINE_integer("steps", 0, "Train each model for this many steps instead of --minutes: the same budget "
                              "in steps, which other work on the machine cannot bias.")
_SHEETS_DIR = flags.DEFINE_string("sheets_dir", "", "Where the sample sheets go (default: WORK_DIR/sheets).")

PAPER_PSNR = {0: 24.43, 1: 25.37, 2: 26.20, 5: 27.39, 10: 28.42, 20: 29.34}


def nearest_hint(gray, hints):
    """The baseline: every pixel takes the a*b* of its nearest point (gray without points), L* the photo's; sRGB."""
    import tensorflow as tf

    from colorgan.core import color

    height, width = gray.shape
    lightness = color.lightness_from_gray(tf.constant(gray[..., None], tf.float32))
    if len(hints):
        rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
        distance = (columns[..., None] - hints.xy[:, 0]) ** 2 + (rows[..., None] - hints.xy[:, 1]) ** 2
        point_ab = color.rgb_to_lab(tf.constant(hints.rgb))[:, 1:].numpy()
        ab = tf.constant(point_ab[np.argmin(distance, axis=-1)])
    else:
        ab = tf.zeros([height, width, 2])
    return color.lab_to_rgb(color.fit_chroma_to_gamut(tf.concat([lightness, ab], -1))).numpy()


def ab_distance(rgb_a, rgb_b):
    """Per-pixel CIE a*b* distance of two sRGB [0, 1] images."""
    import tensorflow as tf

    from colorgan.core import color

    lab_a, lab_b = (color.rgb_to_lab(tf.constant(image, tf.float32)).numpy() for image in (rgb_a, rgb_b))
    return np.hypot(*np.moveaxis(lab_a[..., 1:] - lab_b[..., 1:], -1, 0))


def worst_point(automatic, real):
    """(x, y) where the automatic colour is furthest (a*b*, over 5x5 means) from a saturated original."""
    import tensorflow as tf

    from colorgan.core import color

    def local_mean(values):
        return tf.nn.avg_pool2d(tf.constant(values[None], tf.float32), 5, 1, "SAME")[0].numpy()

    error = local_mean(ab_distance(automatic, real)[..., None])[..., 0]
    chroma = np.hypot(*np.moveaxis(color.rgb_to_lab(tf.constant(real, tf.float32)).numpy()[..., 1:], -1, 0))
    error[chroma < 20] = 0
    error[:8], error[-8:], error[:, :8], error[:, -8:] = 0, 0, 0, 0
    y, x = np.unravel_index(np.argmax(error), error.shape)
    return int(x), int(y)


def main(argv):
    del argv
    from colorgan.core import visualize
    from colorgan.evaluation import evaluator
    from colorgan.inference import colorize_steps
    from colorgan.inference import hint_points
    from colorgan.inference import loading
    from colorgan.inference import photo_files

    minutes = flags.FLAGS.minutes
    work = flags.FLAGS.work_dir or tempfile.mkdtemp(prefix="bench_hints_")
    sheets_dir = _SHEETS_DIR.value or os.path.join(work, "sheets")
    data, held_out = bench_quality.prepare(work, flags.FLAGS.crops)
    figures = {"minutes_each": None if _STEPS.value else minutes, "steps_each": _STEPS.value or None,
               "cpus": portable.usable_cpus(), "draws": _DRAWS.value, "seed": _SEED.value}
    colorizers = {}
    for name, config in (("hints", "smoke_hints.cfg"), ("plain", "smoke.cfg")):
        model_dir = os.path.join(work, f"run_{name}")
        start = time.monotonic()
        if not os.path.exists(os.path.join(model_dir, "checkpoint")):
            flagfile = os.path.join(bench_quality.CONFIGS, config)
            steps = bench_quality.train_for(None if _STEPS.value else minutes, model_dir, f"--flagfile={flagfile}",
                                            f"--data_dir={data}", f"--seed={_SEED.value}",
                                            **({"train_steps": _STEPS.value} if _STEPS.value else {}))
            print(f"{name}: {steps} steps in {(time.monotonic() - start) / 60:.1f} min", flush=True)
        colorizers[name] = loading.Colorizer.from_run(model_dir)
        figures[f"{name}_steps"] = colorizers[name].description["step"]

    counts = [int(count) for count in _COUNTS.value]
    sums = {}

    def add(key, generated, photo):
        gray = evaluator.gray_as_rgb(photo.gray[None, ..., None])
        values = evaluator.pair_metrics(generated[None].astype(np.float32), photo.rgb[None] / np.float32(255), gray)
        total = sums.setdefault(key, {"psnr": 0.0, "ssim": 0.0, "colorfulness_delta": 0.0, "n": 0})
        for metric in ("psnr", "ssim", "colorfulness_delta"):
            total[metric] += float(values[metric][0])
        total["n"] += 1

    single = []
    os.makedirs(sheets_dir, exist_ok=True)
    for index, path in enumerate(sorted(os.path.join(held_out, name) for name in os.listdir(held_out))):
        photo = photo_files.load_photo(path)
        real = photo.rgb / np.float32(255)
        shown = {}
        for count in counts:
            for draw in range(_DRAWS.value):
                points = hint_points.from_original(photo.rgb, count, np.random.default_rng([2017, draw, index]))
                generated = colorize_steps.colorize_photo(colorizers["hints"], photo, "PNG", points) / np.float32(255)
                add(("hints", count), generated, photo)
                add(("nearest", count), nearest_hint(photo.gray, points), photo)
                if draw == 0 and count in (0, 10):
                    shown[count] = (generated, points)
        add(("plain", 0), colorizers["plain"].colorize(photo.gray, np.float32), photo)
        # One point where the automatic colour is most wrong, coloured as the original there.
        automatic = shown[0][0]
        x, y = worst_point(automatic, real)
        hint = hint_points.Hints(np.array([[x, y]], np.float32), real[y:y + 1, x])
        fixed = colorize_steps.colorize_photo(colorizers["hints"], photo, "PNG", hint) / np.float32(255)
        before, after = (float(ab_distance(image[y:y + 1, x:x + 1], real[y:y + 1, x:x + 1])[0, 0])
                         for image in (automatic, fixed))
        single.append({"photo": os.path.basename(path), "x": x, "y": y, "ab_error_before": round(before, 2),
                       "ab_error_after": round(after, 2)})
        ten, ten_points = shown[10]
        cells = [visualize.to_u8(photo.gray), visualize.to_u8(automatic),
                 visualize.with_points(visualize.to_u8(ten), ten_points.xy, ten_points.rgb), photo.rgb]
        visualize.save_png(visualize.row_sheet(cells, ("gray", "0 points", "10 points", "real"), 384),
                           os.path.join(sheets_dir, f"{os.path.splitext(os.path.basename(path))[0]}.png"))

    means = {key: {metric: value / total["n"] for metric, value in total.items() if metric != "n"}
             for key, total in sums.items()}
    budget = f"{_STEPS.value} steps" if _STEPS.value else f"{minutes:g} min"
    print(f"\nheld-out photos at full resolution, {_DRAWS.value} draws of the points per photo and count; "
          f"{budget} of training each ({figures['hints_steps']} and {figures['plain_steps']} steps):")
    print(f"{'points':>6s}  {'hints model PSNR / SSIM / |dcolorful|':>40s}  {'nearest hint PSNR':>18s}  "
          f"{'paper':>6s}")
    for count in counts:
        model, nearest = means["hints", count], means["nearest", count]
        print(f"{count:6d}  {model['psnr']:14.2f} {model['ssim']:12.3f} {model['colorfulness_delta']:12.1f}"
              f"  {nearest['psnr']:18.2f}  {PAPER_PSNR.get(count, float('nan')):6.2f}")
        for metric in ("psnr", "ssim", "colorfulness_delta"):
            figures[f"hints_{count}_{metric}"] = round(model[metric], 4)
            figures[f"nearest_{count}_{metric}"] = round(nearest[metric], 4)
    plain = means["plain", 0]
    print(f"hint-free model: PSNR {plain['psnr']:.2f}, SSIM {plain['ssim']:.3f}, |dcolorful| "
          f"{plain['colorfulness_delta']:.1f}")
    for metric in ("psnr", "ssim", "colorfulness_delta"):
        figures[f"plain_0_{metric}"] = round(plain[metric], 4)
    if 0 in counts and 10 in counts:
        figures["gain_10_points_db"] = round(means["hints", 10]["psnr"] - means["hints", 0]["psnr"], 3)
        figures["beats_nearest_at_10"] = means["hints", 10]["psnr"] > means["nearest", 10]["psnr"]
        figures["zero_points_minus_plain_db"] = round(means["hints", 0]["psnr"] - plain["psnr"], 3)
    for entry in single:
        print(f"one point on {entry['photo']} at ({entry['x']}, {entry['y']}): a*b* error "
              f"{entry['ab_error_before']:.1f} -> {entry['ab_error_after']:.1f}")
    figures["single_point"] = single
    print(f"sample sheets in {sheets_dir}")
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    app.run(main)
