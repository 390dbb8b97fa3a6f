"""Tests of colorgan.train_config: flags from the dataclass, validation lines, and the re-runnable flagfile."""

import dataclasses
import os

import pytest
from absl import flags

from colorgan import train_config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _flag_values():
    values = flags.FlagValues()
    train_config.define_flags(values)
    return values


def test_every_field_is_a_flag_with_its_default():
    values = _flag_values()
    values(["prog"])
    assert train_config.from_flags(values) == train_config.TrainConfig()


def test_flagfile_round_trip_reproduces_the_config(tmp_path):
    config = dataclasses.replace(train_config.TrainConfig(), data_dir="/d", model_dir="/m", batch_size=24,
                                 g_learning_rate=3e-5, noisy_labels=True, xla=False, precision="mixed_bfloat16")
    path = tmp_path / "flags.cfg"
    train_config.write_flagfile(config, str(path))
    values = _flag_values()
    values(["prog", f"--flagfile={path}"])
    assert train_config.from_flags(values) == config


@pytest.mark.parametrize("name", ["seed150", "unet256", "smoke"])
def test_shipped_configs_parse_and_command_line_overrides_them(name):
    values = _flag_values()
    values(["prog", f"--flagfile={os.path.join(REPO_ROOT, 'launch', 'configs', name + '.cfg')}", "--batch_size=4"])
    config = train_config.from_flags(values)
    assert config.batch_size == 4
    assert config.generator in ("seed", "unet")


def test_validation_reports_one_line_per_bad_flag(tmp_path):
    config = dataclasses.replace(train_config.TrainConfig(), data_dir=str(tmp_path), model_dir="", batch_size=6,
                                 generator="resnet", g_learning_rate=-1.0, precision="mixed_float16",
                                 clip_norm=1.0)
    problems = config.validate(num_replicas=4)
    assert problems == [
        f"--data_dir={tmp_path}: no manifest.json (make it with data_prep/make_tfrecords.py)",
        "--model_dir is required",
        "--generator=resnet: unknown, expected one of ['seed', 'unet', 'unet_rgb']",
        "--g_learning_rate=-1.0: must be > 0",
        "--batch_size=6: not divisible by the 4 replicas",
        "--clip_norm with --precision=mixed_float16: loss-scaled gradients cannot be clipped across replicas "
        "here; use mixed_bfloat16 (no loss scaling) or --clip_norm=0",
    ]
    assert all("\n" not in p for p in problems)


@pytest.mark.parametrize("generator, discriminator, norm, refused", [
    ("unet", "patchgan", "batch", True), ("seed", "patchgan", "batch", True), ("unet", "seed", "batch", True),
    ("unet", "patchgan", "instance", False), ("seed", "seed", "batch", False)])
def test_xla_with_synchronised_batch_norm_is_refused_where_a_model_normalises(
        tmp_path, generator, discriminator, norm, refused):
    """Synchronised batch norm all-reduces inside the forward pass, which an XLA-compiled pass cannot hold. The
    seed models ignore --norm, so its default ("batch") must not refuse --xla with them."""
    (tmp_path / "manifest.json").write_text("{}")
    config = dataclasses.replace(train_config.TrainConfig(), data_dir=str(tmp_path), model_dir=str(tmp_path / "m"),
                                 generator=generator, discriminator=discriminator, norm=norm, xla=True)
    message = ("--xla with --norm=batch: batch statistics are all-reduced across replicas inside the forward pass, "
               "which the XLA-compiled pass cannot hold; use --norm=instance or drop --xla")
    assert config.validate() == ([message] if refused else [])
