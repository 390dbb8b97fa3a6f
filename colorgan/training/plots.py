"""Loss curves and evaluation metrics of a run, drawn from its metrics.jsonl to a PNG (the seed's loss plot)."""

import io

from colorgan.core import storage
from colorgan.training import run_log

LOSS_CURVES_FILENAME = "loss_curves.png"


def plot_metrics(metrics_path, output_path):
    """Draws generator/discriminator losses and, when the run evaluated, PSNR, SSIM and colorfulness; returns
    output_path. Raises ValueError naming the file when it holds no training lines or a damaged one, OSError when
    output_path cannot be written."""
    import matplotlib  # noqa: PLC0415 - plotting is optional at import time of the library.

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    entries = run_log.read_metrics(metrics_path)
    train = [e for e in entries if e["kind"] == "train" and "g_loss" in e]
    evals = [e for e in entries if e["kind"] == "eval"]
    baseline = next((e for e in entries if e["kind"] == "baseline"), None)
    if not train:
        raise ValueError(f"{metrics_path}: no training lines to plot")
    panels = 4 if evals else 1
    figure, axes = pyplot.subplots(1, panels, figsize=(4.5 * panels, 4), squeeze=False)
    axes = axes[0]
    steps = [e["step"] for e in train]
    axes[0].plot(steps, [e["g_loss"] for e in train], label="generator")
    axes[0].plot(steps, [e["d_loss"] for e in train], label="discriminator")
    axes[0].set(title="losses", xlabel="step")
    axes[0].legend()
    if evals:
        eval_steps = [e["step"] for e in evals]
        for axis, name, title in ((axes[1], "psnr", "val PSNR (dB)"), (axes[2], "ssim", "val SSIM")):
            axis.plot(eval_steps, [e[name] for e in evals], marker="o", label="generated")
            if baseline and f"{name}_gray_copy" in baseline:
                axis.axhline(baseline[f"{name}_gray_copy"], linestyle="--", color="gray", label="gray copy")
            axis.set(title=title, xlabel="step")
            axis.legend()
        axes[3].plot(eval_steps, [e["colorfulness"] for e in evals], marker="o", label="generated")
        axes[3].plot(eval_steps, [e["colorfulness_real"] for e in evals], linestyle="--", label="real")
        axes[3].set(title="val colorfulness", xlabel="step")
        axes[3].legend()
    figure.tight_layout()
    try:
        encoded = io.BytesIO()
        figure.savefig(encoded, format="png", dpi=100)
        storage.makedirs(storage.parent(output_path))
        storage.write_atomic(output_path, encoded.getvalue())
    except OSError as e:
        raise OSError(f"cannot write: {e.strerror or e}") from None
    finally:
        pyplot.close(figure)
    return output_path
