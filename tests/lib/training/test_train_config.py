"""Tests of colorgan.training.train_config: flags from the dataclass, validation lines, and the re-runnable flagfile."""

import dataclasses
import glob
import json
import os
import re

import pytest
from absl import flags
from conftest import REPO_ROOT
from conftest import run_script

from colorgan.core import flag_config
from colorgan.training import train_config

# Every config shipped, found by globbing: a config added later is checked without anyone listing it here.
SHIPPED_CONFIGS = sorted(glob.glob(os.path.join(REPO_ROOT, "launch", "configs", "*.cfg")))


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


def test_the_configs_folder_holds_the_documented_configs():
    assert {"seed150", "unet256", "smoke", "smoke_hints", "unet256_hints", "unet256_resnet"} <= {
        os.path.basename(path)[:-len(".cfg")] for path in SHIPPED_CONFIGS}


@pytest.mark.parametrize("base", ["smoke", "unet256"])
def test_a_hints_variant_is_its_base_config_with_hints(base):
    configs = []
    for name in (base, f"{base}_hints"):
        values = _flag_values()
        values(["prog", f"--flagfile={os.path.join(REPO_ROOT, 'launch', 'configs', name + '.cfg')}"])
        configs.append(train_config.from_flags(values))
    ramp = configs[1].hints_ramp_steps
    assert 0 < ramp <= configs[0].train_steps
    assert not configs[0].hints and configs[1] == dataclasses.replace(
        configs[0], hints=True, hints_recolor=1.0, hints_loss_weight=3.0, hints_ramp_steps=ramp)


def test_the_pretrained_encoder_config_is_unet256_on_a_backbone():
    base, resnet = (train_config.read_flagfile(os.path.join(REPO_ROOT, "launch", "configs", name + ".cfg"))
                    for name in ("unet256", "unet256_resnet"))
    assert resnet == dataclasses.replace(base, depth=0, encoder="resnet50v2", encoder_weights="imagenet",
                                         freeze_encoder_steps=2000, pretrain_steps=20000)


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=os.path.basename)
def test_shipped_configs_parse_and_command_line_overrides_them(path):
    values = _flag_values()
    values(["prog", f"--flagfile={path}", "--batch_size=4"])
    config = train_config.from_flags(values)
    assert config.batch_size == 4
    assert config.generator in ("seed", "unet")


KUBEFLOW_TEMPLATES = sorted(glob.glob(os.path.join(REPO_ROOT, "launch", "kubeflow", "*.yaml")))


@pytest.mark.parametrize("path", KUBEFLOW_TEMPLATES, ids=os.path.basename)
def test_kubeflow_templates_run_the_trainer_with_flags_it_has_from_the_dockerfiles_folder(path):
    """Each TFJob template's trainer command is launch/train.py with flags the trainer defines and a shipped
    flagfile, and any tf.data service beside it runs launch/data_service.py with settings that validate, at the
    address the trainer names; every container runs from the folder the Dockerfile installs the repository in
    (templates are not run here: no cluster)."""
    from colorgan.data import data_service

    with open(path, encoding="utf-8") as f:
        text = f.read()
    commands = [[line.strip()[2:] for line in block.splitlines() if line.strip().startswith("- ")]
                for block in re.findall(r"command:\n((?:\s+- .*\n|\s+#.*\n)+)", text)]
    trainers = [items for items in commands if items[:2] == ["python", "launch/train.py"]]
    services = [items for items in commands if items[:2] == ["python", "launch/data_service.py"]]
    assert len(trainers) == 1 and len(trainers) + len(services) == len(commands), commands
    values = _flag_values()
    values(["prog", *(item.replace("launch/", os.path.join(REPO_ROOT, "launch") + "/", 1)
                      if item.startswith("--flagfile=") else item for item in trainers[0][2:])])
    config = train_config.from_flags(values)
    assert config.strategy == "multi_worker" and config.data_dir and config.model_dir
    roles = []
    for items in services:
        service_values = flags.FlagValues()
        flag_config.define_flags(data_service.ServiceConfig, service_values)
        service_values(["prog", *(item.replace("$(POD_IP)", "10.0.0.7") for item in items[2:])])
        service = flag_config.from_flags(data_service.ServiceConfig, service_values)
        assert service.validate() == [], items
        roles.append(service.role)
        if service.role == "worker":
            assert service.dispatcher == config.data_service
    assert sorted(roles) == (["dispatcher", "worker"] if config.data_service else [])
    if config.data_service:
        host, port = data_service.parse_address(config.data_service)
        assert re.search(rf"kind: Service\nmetadata:\n  name: {host}\n[\s\S]*?- port: {port}\n", text)
        assert "kind: NetworkPolicy" in text
    with open(os.path.join(REPO_ROOT, "Dockerfile"), encoding="utf-8") as f:
        workdir = re.search(r"^WORKDIR (\S+)", f.read(), re.MULTILINE).group(1)
    assert text.count(f"workingDir: {workdir}") == len(commands)


def check_shipped_config(path, tmp_path):
    """What a user of a shipped config needs to hold: it passes validation as shipped (given a dataset and a
    model_dir), and its models build at its image size with its hyperparameters (built, not trained)."""
    import keras

    from colorgan.modeling import models

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "manifest.json").write_text(json.dumps({"format_version": 1}))
    config = train_config.read_flagfile(path, f"--data_dir={data_dir}", f"--model_dir={tmp_path / 'model'}")
    problems = config.validate()
    assert problems == [], problems
    size, hparams = config.image_size, config.model_hparams()
    space = models.GENERATORS[config.generator].color_space
    keras.backend.clear_session()
    try:
        generator = models.build_generator(config.generator, size, for_training=True, **hparams)
        assert tuple(generator.output.shape) == (None, size, size, space.channels)
        discriminator = models.build_discriminator(config.discriminator, size, color_space=space, **hparams)
        assert discriminator.count_params() > 0
    finally:
        keras.backend.clear_session()


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=os.path.basename)
def test_shipped_configs_validate_and_build_their_models(path, tmp_path):
    check_shipped_config(path, tmp_path)


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


def test_the_data_service_is_refused_where_its_workers_cannot_keep_the_promise():
    config = dataclasses.replace(train_config.TrainConfig(), data_dir="ram://data", model_dir="ram://run",
                                 data_service="dispatcher:5050", deterministic=True)
    problems = [problem for problem in config.validate() if "data_service" in problem]
    assert problems == [
        "--data_service with --deterministic: the service's workers deliver batches in no fixed order",
        "--data_service with --data_dir=ram://data: the service's workers cannot read this process's memory"]
    assert [problem for problem in dataclasses.replace(config, data_service="dispatcher").validate()
            if "data_service" in problem][0] == ("--data_service=dispatcher: expected the dispatcher's host:port (or "
                                                 "slurm:JOB_ID:PORT)")


def test_hints_are_refused_with_a_generator_that_cannot_take_them(tmp_path):
    base = dataclasses.replace(train_config.TrainConfig(), data_dir="", model_dir=str(tmp_path), hints=True)
    assert dataclasses.replace(base, generator="unet").validate()[1:] == []  # [0]: --data_dir is required
    assert dataclasses.replace(base, generator="seed").validate()[1:] == [
        "--hints with --generator=seed: the seed generator stays as the seed designed it (gray in, RGB out); hints "
        "need --generator=unet"]
    assert dataclasses.replace(base, generator="unet_rgb").validate()[1:] == [
        "--hints with --generator=unet_rgb: hints are a*b* colours, which only a Lab U-Net takes (--generator=unet)"]
    assert dataclasses.replace(base, generator="unet", hints=False, hints_recolor=0.5).validate()[1:] == [
        "--hints_recolor=0.5 needs --hints"]
    assert dataclasses.replace(base, generator="unet", hints_recolor=1.5).validate()[1:] == [
        "--hints_recolor=1.5: must be in [0, 1]"]
    assert dataclasses.replace(base, generator="unet", hints=False, hints_loss_weight=3.0).validate()[1:] == [
        "--hints_loss_weight=3.0 needs --hints"]
    assert dataclasses.replace(base, generator="unet", hints_loss_weight=-1.0).validate()[1:] == [
        "--hints_loss_weight=-1.0: must be >= 0"]
    assert dataclasses.replace(base, generator="unet", hints=False, hints_ramp_steps=100).validate()[1:] == [
        "--hints_ramp_steps=100 needs --hints"]
    assert dataclasses.replace(base, generator="unet", hints_ramp_steps=-1).validate()[1:] == [
        "--hints_ramp_steps=-1: must be >= 0"]


def test_encoder_flags_are_checked_at_start_up_one_line_each(tmp_path):
    weights = tmp_path / "resnet.weights.h5"
    weights.write_bytes(b"checked when the run starts")
    base = dataclasses.replace(train_config.TrainConfig(), data_dir="", model_dir=str(tmp_path), generator="unet",
                               image_size=64, encoder="resnet50v2")
    assert base.validate()[1:] == []  # [0]: --data_dir is required
    assert dataclasses.replace(base, encoder_weights=str(weights), freeze_encoder_steps=10,
                               pretrain_steps=20).validate()[1:] == []
    assert dataclasses.replace(base, generator="unet_rgb", image_size=48, depth=3, encoder_weights="imagenet.h5",
                               freeze_encoder_steps=5, precision="mixed_float16").validate()[1:] == [
        "--encoder=resnet50v2 with --generator=unet_rgb: a backbone takes L*, so it needs the Lab U-Net "
        "(--generator=unet)",
        "--image_size=48: the resnet50v2 encoder needs a multiple of 32",
        "--depth=3 with --encoder=resnet50v2: the backbone sets the depth; leave --depth=0",
        "--encoder_weights=imagenet.h5: no such file (expected imagenet or none or a weights file)",
        "--freeze_encoder_steps with --precision=mixed_float16: the encoder's own optimizer would unscale with "
        "another loss scale; use mixed_bfloat16 (no loss scaling)"]
    pix2pix = dataclasses.replace(base, encoder="pix2pix", encoder_weights=str(weights), freeze_encoder_steps=5,
                                  pretrain_steps=-1)
    assert pix2pix.validate()[1:] == [
        "--pretrain_steps=-1: must be >= 0",
        f"--encoder_weights={weights} needs a backbone --encoder (the pix2pix encoder trains from scratch)",
        "--freeze_encoder_steps=5 needs a backbone --encoder (the pix2pix encoder trains from scratch)"]
    assert dataclasses.replace(base, encoder="vgg").validate()[1:] == [
        "--encoder=vgg: expected one of pix2pix, resnet50v2, convnext_tiny"]
    assert dataclasses.replace(base, xla=True, norm="instance").validate()[1:] == [
        "--xla with --encoder=resnet50v2: its batch statistics are all-reduced across replicas inside the forward "
        "pass, which the XLA-compiled pass cannot hold; drop --xla or use --encoder=convnext_tiny"]


@pytest.mark.parametrize("value, expected", [
    ("", None), ("3,6", (3, 6)), ("4,4", (4, 4)), ("6,3", None), ("0,2", None), ("3", None), ("a,b", None),
    ("1,2,3", None)])
def test_profile_steps_is_a_range_of_steps_or_refused_in_one_line(tmp_path, value, expected):
    config = dataclasses.replace(train_config.TrainConfig(), data_dir="", model_dir=str(tmp_path),
                                 profile_steps=value)
    assert config.profile_range() == expected
    refusal = f"--profile_steps={value}: expected two step numbers A,B with 1 <= A <= B"
    assert (refusal in config.validate()) == (bool(value) and expected is None)


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


def test_train_help_lists_every_training_flag_with_its_help():
    result = run_script("launch/train.py", "--help", timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    blocks, name = {}, None  # flag name -> its help block, lines joined
    for line in result.stdout.splitlines():
        if match := re.match(r"^  --(?:\[no\])?(\w+): (?:<[^>]*>: )?(.*)", line):
            name = match.group(1)
            blocks[name] = match.group(2)
        elif name and line.startswith("    "):
            blocks[name] += " " + line.strip()
        else:
            name = None
    missing = sorted(set(train_config.FIELDS) - set(blocks))
    assert not missing, f"not in launch/train.py --help: {missing}"
    for name, field in train_config.FIELDS.items():
        # Compared without whitespace: absl wraps lines, also at hyphens.
        assert "".join(blocks[name].split()).startswith("".join(field.metadata["help"].split())), (name, blocks[name])


# Two valid values of each setting a run's checkpoints depend on.
CHECKPOINT_SETTING_VALUES = {"generator": ("unet", "seed"), "discriminator": ("patchgan", "seed"),
                             "base_width": (4, 8), "depth": (3, 2), "norm": ("none", "instance"),
                             "hints": (False, True), "precision": ("float32", "mixed_bfloat16"),
                             "ema_decay": (0.0, 0.9), "encoder": ("pix2pix", "convnext_tiny"),
                             "freeze_encoder_steps": (0, 500), "pretrain_steps": (0, 1000)}


def test_build_md_names_the_settings_a_resume_refuses_to_change():
    """The promise and the code list the same flags (BUILD.md, "A run resumes only with the settings ...")."""
    with open(os.path.join(REPO_ROOT, "BUILD.md"), encoding="utf-8") as f:
        text = " ".join(f.read().split())
    promise = re.search(r"A run resumes only with the settings that decide what its checkpoints hold or mean: "
                        r"(.*?), or an EMA where the run had none", text).group(1)
    assert set(re.findall(r"`--(\w+)`", promise)) == set(train_config.CHECKPOINT_SETTINGS)
    assert set(CHECKPOINT_SETTING_VALUES) == set(train_config.CHECKPOINT_SETTINGS) | {"ema_decay"}


@pytest.mark.parametrize("name", sorted(CHECKPOINT_SETTING_VALUES))
def test_resuming_with_another_checkpoint_setting_is_a_difference_both_ways(name):
    base = dataclasses.replace(train_config.TrainConfig(), ema_decay=0.0)
    first, second = (dataclasses.replace(base, **{name: value}) for value in CHECKPOINT_SETTING_VALUES[name])
    a, b = CHECKPOINT_SETTING_VALUES[name]
    assert train_config.checkpoint_differences(second, first) == [f"--{name}={b} where the run has --{name}={a}"]
    assert train_config.checkpoint_differences(first, second) == [f"--{name}={a} where the run has --{name}={b}"]
    assert train_config.checkpoint_differences(first, first) == []


def test_another_ema_decay_is_no_difference_while_an_ema_is_kept():
    run = dataclasses.replace(train_config.TrainConfig(), ema_decay=0.999)
    assert train_config.checkpoint_differences(dataclasses.replace(run, ema_decay=0.99), run) == []


@pytest.mark.parametrize("requested, saved, native, resolved", [
    ("float32", None, True, "float32"),  # only auto is resolved
    ("mixed_float16", None, True, "mixed_float16"),
    ("auto", None, True, "mixed_bfloat16"),
    ("auto", None, False, "float32"),
    ("auto", "float32", True, "float32"),  # a resume keeps the precision its run started with
    ("auto", "mixed_bfloat16", False, "mixed_bfloat16"),
])
def test_precision_auto_resolves_from_the_run_else_the_hardware(tmp_path, requested, saved, native, resolved):
    config = dataclasses.replace(train_config.TrainConfig(), data_dir="d", model_dir=str(tmp_path),
                                 precision=requested)
    if saved:
        train_config.write_flagfile(dataclasses.replace(config, precision=saved),
                                    str(tmp_path / train_config.FLAGFILE_NAME))
    assert train_config.resolve_precision(config, lambda: native).precision == resolved
