"""What mixed_bfloat16 does to colorization quality, against float32's own seed-to-seed spread.

  python benchmarks/bench_precision.py --steps=800 --seeds=3

launch/configs/smoke.cfg at 128 px, trained --steps steps with each of --seeds seeds in float32 and in
mixed_bfloat16 (each run its own launch/train.py process, on the records and held-out photos of bench_quality.py),
then evaluated on the held-out photos at full resolution with launch/evaluate.py (colorize.py's path). bf16 is
"within the float32 spread" when its seeds' mean is no worse than float32's worst seed on PSNR and SSIM (higher is
better) and on the colorfulness gap to the real photos (lower is better); colorfulness itself has no better side
and is shown only. Prints the runs, the means and ranges, the verdict and the time of each run, then one JSON line.
"""

import json
import os
import tempfile
import time

import bench_quality
from absl import app
from absl import flags

_STEPS = flags.DEFINE_integer("steps", 800, "Training steps of every run.")
_SEEDS = flags.DEFINE_integer("seeds", 3, "Seeds per precision (--seed=0..N-1).")
# --crops and --work_dir are bench_quality's flags (its data and held-out photos are used here).

PRECISIONS = ("float32", "mixed_bfloat16")
METRICS = ("psnr", "ssim", "colorfulness", "colorfulness_delta")
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "colorfulness_delta": False}


def main(argv):
    del argv
    work = flags.FLAGS.work_dir or tempfile.mkdtemp(prefix="bench_precision_")
    data, held_out = bench_quality.prepare(work, flags.FLAGS.crops)
    smoke = f"--flagfile={os.path.join(bench_quality.CONFIGS, 'smoke.cfg')}"
    runs = {precision: [] for precision in PRECISIONS}
    for seed in range(_SEEDS.value):  # interleaved, so a busy stretch of the machine hits both precisions
        for precision in PRECISIONS:
            model_dir = os.path.join(work, f"run_{precision}_{seed}")
            start = time.monotonic()
            bench_quality.train_for(None, model_dir, f"--data_dir={data}", smoke, "--image_size=128",
                                    f"--precision={precision}", f"--seed={seed}", train_steps=_STEPS.value)
            seconds = time.monotonic() - start
            report = bench_quality.evaluate(model_dir, held_out, os.path.join(work, f"eval_{precision}_{seed}"))
            runs[precision].append({"seed": seed, "seconds": seconds, **{m: report[m] for m in METRICS}})
            print(f"{precision:15s} seed {seed}: " + ", ".join(f"{m} {report[m]:.3f}" for m in METRICS)
                  + f" ({seconds:.0f} s)", flush=True)

    figures = {"steps": _STEPS.value, "seeds": _SEEDS.value, "config": "smoke.cfg", "image_size": 128}
    print(f"\nsmoke.cfg at 128 px, {_STEPS.value} steps, held-out photos at full resolution:")
    print(f"{'':15s}" + "".join(f"{m:>28s}" for m in METRICS) + f"{'s/run':>8s}")
    for precision, results in runs.items():
        cells = []
        for metric in METRICS:
            values = [result[metric] for result in results]
            mean = sum(values) / len(values)
            figures[f"{precision}_{metric}_mean"] = round(mean, 4)
            figures[f"{precision}_{metric}_range"] = [round(min(values), 4), round(max(values), 4)]
            cells.append(f"{mean:9.3f} ({min(values):.3f}-{max(values):.3f})")
        seconds = sum(result["seconds"] for result in results) / len(results)
        figures[f"{precision}_seconds_per_run"] = round(seconds, 1)
        print(f"{precision:15s}" + "".join(f"{cell:>28s}" for cell in cells) + f"{seconds:8.0f}")
    within = {}
    for metric, higher_is_better in HIGHER_IS_BETTER.items():
        low, high = figures[f"float32_{metric}_range"]
        bf16 = figures[f"mixed_bfloat16_{metric}_mean"]
        within[metric] = bf16 >= low if higher_is_better else bf16 <= high
    figures["bf16_within_float32_spread"] = within
    figures["bf16_within_float32_spread_all"] = all(within.values())
    print("mixed_bfloat16's mean no worse than float32's worst seed: "
          + ", ".join(f"{metric} {'yes' if ok else 'no'}" for metric, ok in within.items()))
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    app.run(main)
