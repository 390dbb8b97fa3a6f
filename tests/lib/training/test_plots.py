"""Tests of colorgan.training.plots and launch/plot_metrics.py: the loss-curve figure from a run's metrics.jsonl."""

import numpy as np
from conftest import run_script
from PIL import Image

from colorgan.training import run_log


def _write_run(model_dir, with_eval=True):
    log = run_log.MetricsLogger(str(model_dir))
    if with_eval:
        log.baseline(0, {"psnr_gray_copy": 18.0, "ssim_gray_copy": 0.8})
    for step in range(10, 110, 10):
        log.train(step, {"g_loss": 5.0 / step, "d_loss": 1.0, "examples_per_sec": 10.0, "input_wait_fraction": 0.1})
        if with_eval and step % 50 == 0:
            log.eval(step, {"psnr": 20.0 + step / 50, "ssim": 0.85, "colorfulness": 20.0, "colorfulness_real": 30.0})
    log.close()


def test_cli_draws_losses_and_eval_panels(tmp_path):
    _write_run(tmp_path)
    result = run_script("launch/plot_metrics.py", f"--model_dir={tmp_path}", check=True)
    assert "wrote" in result.stdout
    image = np.asarray(Image.open(tmp_path / "loss_curves.png").convert("RGB"))
    assert image.shape[1] > 3 * image.shape[0]  # four panels side by side
    assert (image < 200).any(axis=-1).mean() > 0.01  # lines and text were drawn, not a blank canvas


def test_losses_only_run_gives_one_panel(tmp_path):
    from colorgan.training import plots

    _write_run(tmp_path, with_eval=False)
    path = plots.plot_metrics(str(tmp_path / "metrics.jsonl"), str(tmp_path / "out" / "curves.png"))
    width, height = Image.open(path).size
    assert width < 2 * height


def test_cli_errors_are_one_line(tmp_path):
    result = run_script("launch/plot_metrics.py", f"--model_dir={tmp_path}")
    assert result.returncode == 2
    assert result.stderr.strip() == f"plot_metrics: error: --model_dir={tmp_path}: no metrics.jsonl"
    (tmp_path / "metrics.jsonl").write_text('{"kind": "eval", "step": 1, "psnr": 1}\n')
    result = run_script("launch/plot_metrics.py", f"--model_dir={tmp_path}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"plot_metrics: error: {tmp_path}/metrics.jsonl: no training lines to plot")
    assert "Traceback" not in result.stderr


def test_a_damaged_metrics_file_and_an_unwritable_output_are_one_line(tmp_path):
    _write_run(tmp_path)
    metrics = tmp_path / "metrics.jsonl"
    lines = metrics.read_bytes().splitlines(keepends=True)
    metrics.write_bytes(lines[0] + b"\xff\xfe{not json\n" + b"".join(lines[1:]))
    result = run_script("launch/plot_metrics.py", f"--model_dir={tmp_path}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"plot_metrics: error: {metrics}:2: not a JSON object"
    metrics.write_bytes(b"".join(lines) + b'{"kind": "train", "st')  # a killed writer's torn last line is fine
    run_script("launch/plot_metrics.py", f"--model_dir={tmp_path}", check=True)
    (tmp_path / "a_file").write_text("")
    result = run_script("launch/plot_metrics.py", f"--model_dir={tmp_path}", f"--output={tmp_path}/a_file/x.png")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"plot_metrics: error: --output={tmp_path}/a_file/x.png: cannot write: ")
