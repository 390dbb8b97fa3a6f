"""Draws a run's loss curves and evaluation metrics (from MODEL_DIR/metrics.jsonl) to a PNG.

  colorgan-plot --model_dir=runs/smoke            # writes runs/smoke/loss_curves.png
"""

import os

from absl import flags

from colorgan.core import cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from colorgan.core import storage

_MODEL_DIR = flags.DEFINE_string("model_dir", "", "A training run's directory (holds metrics.jsonl).")
_OUTPUT = flags.DEFINE_string("output", "", "PNG to write (default: MODEL_DIR/loss_curves.png).")


def _main(argv):
    metrics_path = os.path.join(_MODEL_DIR.value, "metrics.jsonl")
    if not storage.isfile(metrics_path):
        return cli.usage_error("plot_metrics", f"--model_dir={_MODEL_DIR.value}: no metrics.jsonl")
    from colorgan.training import plots  # noqa: PLC0415 - TensorFlow loads only for a usable run directory.

    output = _OUTPUT.value or os.path.join(_MODEL_DIR.value, plots.LOSS_CURVES_FILENAME)
    try:
        plots.plot_metrics(metrics_path, output)
    except ValueError as e:
        return cli.failure("plot_metrics", str(e))
    except OSError as e:
        return cli.failure("plot_metrics", f"--output={output}: {e}")
    print(f"plot_metrics: wrote {output}")
    return 0


def main():
    """The colorgan-plot command (also `python launch/plot_metrics.py`)."""
    cli.run("plot_metrics", _main)


if __name__ == "__main__":
    main()
