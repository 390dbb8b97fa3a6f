"""Tests of colorgan.training.run_log: the metrics.jsonl lines, truncation on resume, sample sheets, chief-only
writing."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import metadata

from colorgan.training import run_log


def _lines(model_dir):
    return [json.loads(line) for line in open(os.path.join(model_dir, "metrics.jsonl"), encoding="utf-8")]


def test_lines_carry_kind_step_and_values(tmp_path):
    log = run_log.MetricsLogger(str(tmp_path))
    log.train(10, {"g_loss": np.float32(1.5), "d_loss": 0.25})
    log.eval(10, {"psnr": 21.0})
    log.event(11, {"nan_restores": 1})
    log.close()
    assert _lines(tmp_path) == [{"kind": "train", "step": 10, "g_loss": 1.5, "d_loss": 0.25},
                                {"kind": "eval", "step": 10, "psnr": 21.0},
                                {"kind": "event", "step": 11, "nan_restores": 1}]
    assert os.listdir(tmp_path / run_log.TENSORBOARD_DIRNAME)  # an events file


def test_truncate_after_drops_later_steps_and_a_torn_line(tmp_path):
    log = run_log.MetricsLogger(str(tmp_path))
    for step in (1, 2, 3, 4):
        log.train(step, {"g_loss": float(step)})
    with open(tmp_path / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"kind": "train", "st')  # a writer killed mid-line
    log.truncate_after(2)
    log.train(3, {"g_loss": 30.0})
    log.close()
    assert [(e["step"], e["g_loss"]) for e in _lines(tmp_path)] == [(1, 1.0), (2, 2.0), (3, 30.0)]


def test_sample_sheet_rows_are_gray_generated_real(tmp_path):
    log = run_log.MetricsLogger(str(tmp_path))
    gray = np.full((3, 8, 8, 3), 0.5, np.float32)
    generated = np.zeros((3, 8, 8, 3), np.float32)
    generated[..., 0] = 1.0
    real = np.ones((3, 8, 8, 3), np.float32)
    path = log.sample_sheet(7, gray, generated, real, max_rows=2)
    log.close()
    assert path == run_log.sample_sheet_path(str(tmp_path), 7) and os.path.basename(path) == "step_0000007.png"
    sheet = np.asarray(Image.open(path))
    # Two rows of three 8x8 cells, 4 px padding, a 14 px title band: 4 + 3 * 12 wide, 18 + 4 + 2 * 12 high.
    assert sheet.shape == (46, 40, 3)
    top = 18 + 4
    assert tuple(sheet[top + 4, 4 + 4]) == (128, 128, 128)  # gray
    assert tuple(sheet[top + 4, 16 + 4]) == (255, 0, 0)  # generated
    assert tuple(sheet[top + 12 + 4, 28 + 4]) == (255, 255, 255)  # real, second row


def test_disabled_logger_writes_nothing(tmp_path):
    log = run_log.MetricsLogger(str(tmp_path / "run"), enabled=False)
    log.train(1, {"g_loss": 1.0})
    assert log.sample_sheet(1, np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 4, 3)), np.zeros((1, 4, 4, 3))) is None
    log.truncate_after(0)
    log.close()
    assert not (tmp_path / "run").exists()


def test_a_resumed_run_drops_damaged_lines_instead_of_failing(tmp_path):
    log = run_log.MetricsLogger(str(tmp_path))
    for step in (1, 2, 3):
        log.train(step, {"g_loss": 1.0})
    log.close()
    path = tmp_path / run_log.METRICS_FILENAME
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"\xff garbage\n" + b"".join(lines[1:]))
    with pytest.raises(ValueError, match=rf"{path}:2: not a JSON object"):
        run_log.read_metrics(str(path))
    assert log.truncate_after(2) == [2]  # the line numbers, for the trainer's log
    assert [entry["step"] for entry in run_log.read_metrics(str(path))] == [1, 2]


def test_run_settings_reach_tensorboards_hparams_dashboard_and_text(tmp_path):
    """Read back with TensorBoard's own event reader and plugin parsers, as its dashboards read them."""
    flagfile = "--generator=unet\n--image_size=64\n--hints\n"
    log = run_log.MetricsLogger(str(tmp_path))
    log.run_settings(flagfile, {"generator": "unet", "image_size": 64, "hints": True, "input_dir": "a,b"},
                     ["eval/psnr", "eval/ssim"])
    log.eval(5, {"psnr": 21.5, "ssim": 0.5})
    log.close()
    events = event_accumulator.EventAccumulator(str(tmp_path / run_log.TENSORBOARD_DIRNAME),
                                                size_guidance={event_accumulator.TENSORS: 0})
    events.Reload()
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    assert [info.name for info in experiment.hparam_infos] == ["generator", "image_size", "hints", "input_dir"]
    assert [info.name.tag for info in experiment.metric_infos] == ["eval/psnr", "eval/ssim"]
    session = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    assert {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
            for name, value in session.hparams.items()} == {"generator": "unet", "image_size": 64.0,
                                                            "hints": True, "input_dir": "a,b"}
    [text] = events.Tensors("flags")
    assert text.step == 0 and text.tensor_proto.string_val[0].decode() == (
        "    --generator=unet\n    --image_size=64\n    --hints\n")
    [psnr] = events.Tensors("eval/psnr")
    assert (psnr.step, float(tf.make_ndarray(psnr.tensor_proto))) == (5, 21.5)


def test_only_the_chief_writes_run_settings(tmp_path):
    log = run_log.MetricsLogger(str(tmp_path), enabled=False)
    log.run_settings("--x=1\n", {"x": 1}, ["eval/psnr"])
    log.close()
    assert not (tmp_path / run_log.TENSORBOARD_DIRNAME).exists()
