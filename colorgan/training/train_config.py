"""The trainer's settings: one dataclass, from which the absl flags are defined, validated and saved.

Every flag is declared once, here, with its default and help, without loading TensorFlow (the choices come from
`modeling.model_names`; the registries load in `validate`). `colorgan-train` (tools/train) defines them, experiments
are `--flagfile` configs in `launch/configs/`, and the resolved values are written to MODEL_DIR/flags.cfg, which is
itself a valid `--flagfile`.
"""

import dataclasses
import os

from absl import flags

from colorgan.core import flag_config
from colorgan.core import storage
from colorgan.data import data_service
from colorgan.modeling import model_names

STRATEGIES = ("auto", "mirrored", "multi_worker", "one_device")
CLUSTERS = ("tf_config", "slurm")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16", "auto")
COLOR_MATHS = ("host", "device", "auto")
# The resolved flags of a run, saved in its model_dir: a re-runnable --flagfile, and what inference rebuilds from.
FLAGFILE_NAME = "flags.cfg"
# Settings that decide what a run's checkpoints hold or how their numbers are read: a run resumes only with the
# same values (and with an EMA of the generator or without, as it started).
CHECKPOINT_SETTINGS = ("generator", "discriminator", "base_width", "depth", "norm", "hints", "encoder",
                       "freeze_encoder_steps", "pretrain_steps", "precision")


_field = flag_config.field


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    # Data and output.
    data_dir: str = _field("", "Dataset directory made by data_prep/make_tfrecords.py (holds manifest.json).")
    model_dir: str = _field("", "Checkpoints, flags.cfg, metrics.jsonl, TensorBoard logs and sample sheets.")
    train_steps: int = _field(1000, "Total training steps (global batches) of the run, resumed runs included.")
    batch_size: int = _field(16, "Global batch size, split evenly across all replicas of all workers.")
    image_size: int = _field(150, "Training image side; at most the dataset's stored size (random crops).")
    shuffle_buffer: int = _field(2048, "Records held by the input shuffle buffer of each input pipeline.")
    data_service: str = _field("", "A tf.data service dispatcher, host:port (or slurm:JOB_ID:PORT: that of the Slurm "
                                   "job launch/slurm/data_service.sbatch): its workers, on other machines, run the "
                                   "training input pipeline (BUILD.md, \"tf.data service\").")
    # Models.
    generator: str = _field("seed", "Generator name in colorgan.models (seed, unet, unet_rgb).")
    discriminator: str = _field("seed", "Discriminator name in colorgan.models (seed, patchgan).")
    base_width: int = _field(64, "U-Net / PatchGAN width of the first layer.")
    depth: int = _field(0, "U-Net down-sampling steps (0: as many as the image size allows, at most 8).")
    norm: str = _field("batch", "U-Net / PatchGAN normalisation.", model_names.NORMS)
    dropout: float = _field(0.5, "U-Net dropout in its innermost decoder blocks (pix2pix's noise; 0: off).")
    hints: bool = _field(False, "Colour hints: the generator also takes a few points' true a*b* (a person's clicks; "
                                "simulated in training as Zhang et al. 2017 do). Lab U-Net only.")
    hints_recolor: float = _field(0.0, "With --hints: the fraction of training examples with points whose colours are "
                                       "rotated by a random hue first, so that the points, not the training set's "
                                       "colours, tell them (small datasets need it: BUILD.md, \"Colour hints\").")
    hints_loss_weight: float = _field(0.0, "With --hints: weight of the pixel loss over the hinted pixels alone, "
                                           "beside the loss over all (both times --reconstruction_weight): a "
                                           "person's colour then holds where they put it (BUILD.md, \"Colour "
                                           "hints\").")
    hints_ramp_steps: int = _field(0, "With --hints: the share of training examples that get points grows "
                                      "linearly from none to all over the first N steps, so that the automatic "
                                      "colours are learnt first (BUILD.md, \"Colour hints\").")
    encoder: str = _field(model_names.PIX2PIX_ENCODER, "U-Net encoder: pix2pix's own, trained from scratch, or a Keras "
                          "Applications backbone (BUILD.md, \"Pretrained encoders\"); a backbone needs --image_size "
                          "a multiple of 32.", model_names.ENCODERS)
    encoder_weights: str = _field("imagenet", "A backbone --encoder's starting weights: imagenet (Keras's own "
                                  "download and cache), none (random), or a weights file of that backbone without "
                                  "its top (for machines without internet). Read when a run starts, not on resume.")
    freeze_encoder_steps: int = _field(0, "Steps during which a backbone --encoder is frozen (no updates, batch "
                                          "normalization on its moving statistics); then it trains with the rest, "
                                          "with an Adam of its own starting then.")
    pretrain_steps: int = _field(0, "Steps of generator-only training on the pixel loss before the adversarial "
                                    "phase (DeOldify's NoGAN); the discriminator is not updated during them.")
    # Losses.
    adversarial_loss: str = _field("non_saturating", "GAN loss.", model_names.ADVERSARIAL_LOSSES)
    reconstruction_loss: str = _field("l1", "Pixel loss between generated and real targets.",
                                      model_names.RECONSTRUCTION_LOSSES)
    reconstruction_weight: float = _field(100.0, "Weight of the pixel loss against the adversarial loss.")
    noisy_labels: bool = _field(False, "The seed's one-sided noisy labels: real 0.9..1.0, fake 0..0.1.")
    # Optimisation.
    g_learning_rate: float = _field(2e-4, "Generator Adam learning rate.")
    d_learning_rate: float = _field(2e-4, "Discriminator Adam learning rate.")
    beta_1: float = _field(0.5, "Adam beta_1 of both optimizers.")
    beta_2: float = _field(0.999, "Adam beta_2 of both optimizers.")
    clip_norm: float = _field(0.0, "Clip each model's gradient to this global norm after the all-reduce (0: off).")
    ema_decay: float = _field(0.0, "Exponential moving average of generator weights for eval/export (0: off).")
    # Distribution and speed.
    strategy: str = _field("auto", "auto: all GPUs or one device; mirrored; multi_worker; one_device.",
                           STRATEGIES)
    cpu_replicas: int = _field(0, "Split the CPU into this many logical devices (MirroredStrategy on CPU).")
    cluster: str = _field("tf_config", "How multi_worker finds its peers: TF_CONFIG or Slurm.", CLUSTERS)
    steps_per_loop: int = _field(1, "Training steps run inside one compiled call.")
    xla: bool = _field(False, "Compile the step with XLA (jit_compile).")
    color_maths: str = _field("auto", "Where the training batches become the model's colour space: host (the input "
                              "pipeline, which then ships float32), device (the compiled step, batched; the host "
                              "ships uint8 RGB, a quarter of the bytes, and does less per example), or auto: device "
                              "when the replicas are GPUs or TPUs.", COLOR_MATHS)
    precision: str = _field("float32", "Compute precision; mixed_float16 adds dynamic loss scaling. auto: "
                            "mixed_bfloat16 where the hardware computes bf16 natively (CPUs with AVX512_BF16 or AMX, "
                            "GPUs of compute capability 8.0+), else float32; resolved at start-up and saved resolved "
                            "in flags.cfg and the checkpoints, and a resumed run keeps the precision it started with.",
                            PRECISIONS)
    deterministic: bool = _field(False, "Op determinism, ordered input and fixed seeds: reproducible runs.")
    profile_steps: str = _field("", "A,B: a TensorFlow profiler trace of training steps A to B (both included) in "
                                    "MODEL_DIR/tensorboard, for TensorBoard's Profile tab (the [profile] extra).")
    seed: int = _field(0, "Seed of weights, input order, augmentation and noisy labels.")
    # State, logs, pictures.
    checkpoint_every: int = _field(500, "Save a checkpoint every this many steps (and at the end).")
    keep_checkpoints: int = _field(3, "Checkpoints kept.")
    max_nan_restores: int = _field(3, "Stop after this many restores from non-finite losses.")
    log_every: int = _field(50, "Steps between metrics.jsonl training lines and progress lines.")
    eval_every: int = _field(500, "Steps between evaluations on the val split (0: only at the end).")
    eval_batches: int = _field(8, "Batches per evaluation (0: the whole val split).")
    sample_rows: int = _field(8, "Rows (gray | generated | real) in each sample sheet.")

    def validate(self, num_replicas=None):
        """Every problem as one line naming its flag; empty when the config is usable."""
        # Here, not at the top: flags and --help are declared without TensorFlow, which the registries load.
        from colorgan.modeling import backbones  # noqa: PLC0415
        from colorgan.modeling import models  # noqa: PLC0415

        problems = []

        def check(ok, message):
            if not ok:
                problems.append(message)

        check(bool(self.data_dir), "--data_dir is required")
        check(not self.data_dir or storage.exists(os.path.join(self.data_dir, "manifest.json")),
              f"--data_dir={self.data_dir}: no manifest.json (make it with data_prep/make_tfrecords.py)")
        check(bool(self.model_dir), "--model_dir is required")
        model_dir_problem = storage.directory_problem(self.model_dir) if self.model_dir else None
        check(not model_dir_problem, f"--model_dir={self.model_dir}: {model_dir_problem}")
        check(self.generator in models.GENERATORS,
              f"--generator={self.generator}: unknown, expected one of {sorted(models.GENERATORS)}")
        check(self.discriminator in models.DISCRIMINATORS,
              f"--discriminator={self.discriminator}: unknown, expected one of {sorted(models.DISCRIMINATORS)}")
        for name in ("train_steps", "batch_size", "image_size", "steps_per_loop", "checkpoint_every",
                     "keep_checkpoints", "log_every", "shuffle_buffer", "sample_rows", "base_width"):
            check(getattr(self, name) > 0, f"--{name}={getattr(self, name)}: must be > 0")
        for name in ("g_learning_rate", "d_learning_rate"):
            check(getattr(self, name) > 0, f"--{name}={getattr(self, name)}: must be > 0")
        for name in ("reconstruction_weight", "clip_norm", "cpu_replicas", "depth", "max_nan_restores", "eval_every",
                     "eval_batches", "seed", "freeze_encoder_steps", "pretrain_steps", "hints_ramp_steps"):
            check(getattr(self, name) >= 0, f"--{name}={getattr(self, name)}: must be >= 0")
        if self.data_service:
            check(data_service.is_address(self.data_service),
                  f"--data_service={self.data_service}: expected the dispatcher's host:port (or slurm:JOB_ID:PORT)")
            check(not self.deterministic, "--data_service with --deterministic: the service's workers deliver "
                                          "batches in no fixed order")
            check(not self.data_dir.startswith("ram://"), f"--data_service with --data_dir={self.data_dir}: the "
                                                           f"service's workers cannot read this process's memory")
        check(not self.profile_steps or self.profile_range() is not None,
              f"--profile_steps={self.profile_steps}: expected two step numbers A,B with 1 <= A <= B")
        check(0 <= self.beta_1 < 1, f"--beta_1={self.beta_1}: must be in [0, 1)")
        check(0 <= self.beta_2 < 1, f"--beta_2={self.beta_2}: must be in [0, 1)")
        check(0 <= self.ema_decay < 1, f"--ema_decay={self.ema_decay}: must be in [0, 1)")
        check(0 <= self.dropout < 1, f"--dropout={self.dropout}: must be in [0, 1)")
        check(0 <= self.hints_recolor <= 1, f"--hints_recolor={self.hints_recolor}: must be in [0, 1]")
        check(not self.hints_recolor or self.hints, f"--hints_recolor={self.hints_recolor} needs --hints")
        check(self.hints_loss_weight >= 0, f"--hints_loss_weight={self.hints_loss_weight}: must be >= 0")
        check(not self.hints_loss_weight or self.hints, f"--hints_loss_weight={self.hints_loss_weight} needs --hints")
        check(not self.hints_ramp_steps or self.hints, f"--hints_ramp_steps={self.hints_ramp_steps} needs --hints")
        spec = models.GENERATORS.get(self.generator)
        check(not (self.hints and spec and not spec.takes_hints), f"--hints with --generator={self.generator}: " + (
            "the seed generator stays as the seed designed it (gray in, RGB out); hints need --generator=unet"
            if self.generator == "seed" else "hints are a*b* colours, which only a Lab U-Net takes (--generator=unet)"))
        problems.extend(self._encoder_problems(spec, backbones))
        check(not (self.noisy_labels and self.adversarial_loss == "hinge"),
              "--noisy_labels with --adversarial_loss=hinge: the hinge loss has no label targets to blur")
        problems.extend(flag_config.value_problems(self))
        if num_replicas:
            check(self.batch_size % num_replicas == 0,
                  f"--batch_size={self.batch_size}: not divisible by the {num_replicas} replicas")
        batch_norm = self.norm == "batch" and any(
            name in registry and registry[name].has_norm
            for registry, name in ((models.GENERATORS, self.generator), (models.DISCRIMINATORS, self.discriminator)))
        check(not (self.xla and batch_norm),
              "--xla with --norm=batch: batch statistics are all-reduced across replicas inside the forward pass, "
              "which the XLA-compiled pass cannot hold; use --norm=instance or drop --xla")
        backbone = backbones.BACKBONES.get(self.encoder)
        check(not (self.xla and backbone and backbone.batch_norm),
              f"--xla with --encoder={self.encoder}: its batch statistics are all-reduced across replicas inside "
              f"the forward pass, which the XLA-compiled pass cannot hold; drop --xla or use --encoder=convnext_tiny")
        check(not (self.precision == "mixed_float16" and self.clip_norm > 0),
              "--clip_norm with --precision=mixed_float16: loss-scaled gradients cannot be clipped across "
              "replicas here; use mixed_bfloat16 (no loss scaling) or --clip_norm=0")
        return problems

    def _encoder_problems(self, spec, backbones):
        """--encoder, --encoder_weights and --freeze_encoder_steps, one line per problem (`backbones`: the module,
        loaded by validate)."""
        problems = []
        if self.encoder not in backbones.BACKBONES:
            needs_backbone = f"needs a backbone --encoder (the {self.encoder} encoder trains from scratch)"
            if self.encoder_weights not in backbones.WEIGHTS:
                problems.append(f"--encoder_weights={self.encoder_weights} {needs_backbone}")
            if self.freeze_encoder_steps:
                problems.append(f"--freeze_encoder_steps={self.freeze_encoder_steps} {needs_backbone}")
            return problems
        if spec and not spec.takes_encoder:
            problems.append(f"--encoder={self.encoder} with --generator={self.generator}: a backbone takes L*, so "
                            f"it needs the Lab U-Net (--generator=unet)")
        if self.image_size % backbones.STRIDE:
            problems.append(f"--image_size={self.image_size}: the {self.encoder} encoder needs a multiple of "
                            f"{backbones.STRIDE}")
        if self.depth:
            problems.append(f"--depth={self.depth} with --encoder={self.encoder}: the backbone sets the depth; "
                            f"leave --depth=0")
        if self.encoder_weights not in backbones.WEIGHTS and not storage.exists(self.encoder_weights):
            problems.append(f"--encoder_weights={self.encoder_weights}: no such file (expected "
                            f"{' or '.join(backbones.WEIGHTS)} or a weights file)")
        if self.freeze_encoder_steps and self.precision == "mixed_float16":
            problems.append("--freeze_encoder_steps with --precision=mixed_float16: the encoder's own optimizer "
                            "would unscale with another loss scale; use mixed_bfloat16 (no loss scaling)")
        return problems

    def model_hparams(self):
        """The keyword arguments every model builder takes (`models.build_generator`, `build_discriminator`)."""
        return dict(base_width=self.base_width, depth=self.depth, norm=self.norm, dropout=self.dropout,
                    hints=self.hints, encoder=self.encoder)

    def profile_range(self):
        """(A, B) of --profile_steps, or None when it is empty or not two step numbers 1 <= A <= B."""
        try:
            first, last = (int(part) for part in self.profile_steps.split(","))
        except ValueError:
            return None
        return (first, last) if 1 <= first <= last else None


FIELDS = flag_config.flag_fields(TrainConfig)


def define_flags(flag_values=flags.FLAGS):
    """Defines one absl flag per TrainConfig field, with the dataclass's default and help."""
    flag_config.define_flags(TrainConfig, flag_values)


def from_flags(flag_values=flags.FLAGS):
    return flag_config.from_flags(TrainConfig, flag_values)


def checkpoint_differences(config, saved):
    """How `config` differs from a run's `saved` config in what its checkpoints hold or mean, one phrase per flag:
    CHECKPOINT_SETTINGS, and an EMA kept or not (its decay may change)."""
    differences = [f"--{name}={getattr(config, name)} where the run has --{name}={getattr(saved, name)}"
                   for name in CHECKPOINT_SETTINGS if getattr(config, name) != getattr(saved, name)]
    if (config.ema_decay > 0) != (saved.ema_decay > 0):
        differences.append(f"--ema_decay={config.ema_decay} where the run has --ema_decay={saved.ema_decay}")
    return differences


def resolve_precision(config, native_bf16, checkpoint_precision=None):
    """The config with --precision=auto resolved: the precision of the existing run (from MODEL_DIR/flags.cfg, else
    `checkpoint_precision`, what its newest checkpoint records), so a resume on other hardware keeps its numbers;
    for a new run mixed_bfloat16 if `native_bf16()` says the hardware has it, else float32. Other precisions are
    returned as given."""
    if config.precision != "auto":
        return config
    flagfile = os.path.join(config.model_dir, FLAGFILE_NAME)
    if storage.exists(flagfile):
        try:
            return dataclasses.replace(config, precision=read_flagfile(flagfile).precision)
        except ValueError:
            pass  # an unreadable flags.cfg: the checkpoint's record, else the hardware decides
    if checkpoint_precision:
        return dataclasses.replace(config, precision=checkpoint_precision)
    return dataclasses.replace(config, precision="mixed_bfloat16" if native_bf16() else "float32")


def read_flagfile(path, *overrides):
    """The TrainConfig a flagfile (a launch/ config or a run's flags.cfg) and later `--flag=value` overrides give;
    ValueError naming the file on an unknown or bad flag."""
    values = flags.FlagValues()
    define_flags(values)
    try:
        # Read here, not by absl's --flagfile, which opens local files only (a run's flags.cfg may be on gs://).
        lines = [line.strip() for line in storage.read_text(path).splitlines()]
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read: {e}") from None
    try:
        values(["colorgan", *(line for line in lines if line and not line.startswith(("#", "//"))), *overrides])
    except flags.Error as e:
        raise ValueError(f"{path}: {str(e).splitlines()[0]}") from None
    return from_flags(values)


def to_flagfile_text(config):
    """A `--flagfile` that reproduces the config exactly (booleans as --name / --noname)."""
    return flag_config.to_flagfile_text(config)


def write_flagfile(config, path):
    storage.write_atomic(path, to_flagfile_text(config))
