"""A training run's checkpoints: what they hold, the precision they record, and the policy around them (the Orbit
controller's checkpoint job): resolve --precision=auto before anything is built, restore the newest intact
checkpoint under the run's own settings, save at a step (every worker takes part), and a full disk in one line.

A checkpoint holds the GAN's objects by the names checkpoints have always used, plus the run's resolved precision as
a string variable beside the weights (float32 and bf16 runs hold the same variables, so only the record tells them
apart once flags.cfg is gone). Checkpoints from before the record restore without it.
"""

import os

import tensorflow as tf

from colorgan.core import storage
from colorgan.training import distribute
from colorgan.training import train_config

PRECISION_KEY = "precision/.ATTRIBUTES/VARIABLE_VALUE"  # where a checkpoint records its run's precision


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. too many non-finite losses); the message says why."""


class DamagedCheckpoint(Exception):
    """A checkpoint whose files cannot be read."""


def recorded_precision(checkpoint_path):
    """The precision the run of `checkpoint_path` trains in, as its checkpoint records it; None for a checkpoint from
    before the record was kept, or one that cannot be read (its restore says why)."""
    try:
        return storage.checkpoint_reader(checkpoint_path).get_tensor(PRECISION_KEY).decode()
    except (tf.errors.OpError, ValueError):
        return None


def resolve_config(config, log):
    """The config a run is built from: --precision=auto resolved (the run's own precision, from flags.cfg or its
    newest checkpoint's record, else what this hardware computes natively), said in one line when it was auto."""
    newest = tf.train.latest_checkpoint(config.model_dir) if config.precision == "auto" else None
    resolved = train_config.resolve_precision(config, distribute.native_bf16,
                                              recorded_precision(newest) if newest else None)
    if resolved.precision != config.precision:
        log(f"train: --precision=auto: {resolved.precision}")
    return resolved


class RunCheckpoints:
    """The checkpoints of one run of `gan` (a gan.Gan) under `strategy`: non-chief workers write theirs to a
    temporary folder, the chief's land in --model_dir."""

    def __init__(self, config, gan, strategy):
        self.config, self.gan = config, gan
        self.precision = tf.Variable(config.precision, trainable=False, dtype=tf.string)
        self.checkpoint = tf.train.Checkpoint(**gan.checkpoint_objects(), precision=self.precision)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, distribute.worker_checkpoint_dir(config.model_dir, strategy),
            max_to_keep=config.keep_checkpoints)
        self.is_chief = distribute.is_chief(strategy)
        self._last_saved_step = None

    def restore_or_initialize(self, log):
        """Restores the chief's newest intact checkpoint if there is one (every worker reads the same one); returns
        the step training continues from. A damaged newer one (truncated data, garbage index) is named in one line
        and left in place: the run's next save of that step replaces it. A new run's pretrained encoder gets its
        --encoder_weights instead."""
        state = tf.train.get_checkpoint_state(self.config.model_dir)
        paths = state.all_model_checkpoint_paths if state else []
        if paths:
            self._check_same_settings(paths[-1])
        else:
            self.gan.load_pretrained_encoder(log)
        restored = None
        for path in reversed(paths):
            try:
                self.restore(path)
            except DamagedCheckpoint as e:
                log(f"train: {path} is damaged ({e}); trying the checkpoint before it")
                continue
            restored = path
            log(f"train: restored {path} at step {int(self.gan.step.numpy())}")
            break
        if paths and not restored:
            raise TrainingError(f"{self.config.model_dir}: every checkpoint is damaged; move them away to start "
                                f"afresh")
        step = int(self.gan.step.numpy())
        self._last_saved_step = step if restored else None
        return step

    def restore_latest(self):
        """Restores the newest checkpoint (after a non-finite loss); returns its path."""
        latest = tf.train.latest_checkpoint(self.config.model_dir)
        self.restore(latest)
        return latest

    def restore(self, path):
        """Restores every object of this run from `path`, or fails in one line when the checkpoint was made by other
        models or settings (e.g. another --generator or --ema_decay in the same --model_dir)."""
        recorded = recorded_precision(path)
        if recorded is not None and recorded != self.config.precision:
            raise TrainingError(f"{path}: was trained with --precision={recorded}; this run asks for "
                                f"--precision={self.config.precision} (a run keeps its precision)")
        # Checkpoints from before the precision was recorded restore without it.
        checkpoint = self.checkpoint if recorded else tf.train.Checkpoint(**self.gan.checkpoint_objects())
        try:
            checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError, tf.errors.InvalidArgumentError) as e:  # e.g. another dtype
            raise TrainingError(f"{path}: does not match the models and settings asked for (compare "
                                f"{self._flagfile()}): {str(e).strip().splitlines()[0][:300]}") from None
        except (tf.errors.OpError, IndexError, RuntimeError) as e:  # what TF raises for unreadable files
            raise DamagedCheckpoint(str(e).strip().splitlines()[0][:200] or type(e).__name__) from None

    def save(self, step):
        """A checkpoint at `step` (all workers take part; only the chief's lands in model_dir). Whether it exists
        already is kept here, the same on every worker, not read from each worker's own directory."""
        if step == self._last_saved_step:
            return
        try:
            self.manager.save(checkpoint_number=step)
        except (tf.errors.OpError, OSError) as e:
            if not storage.is_disk_full(e):
                raise
            self._disk_full(step)
        self._last_saved_step = step
        if not self.is_chief:
            storage.rmtree(self.manager.directory)

    def _flagfile(self):
        return os.path.join(self.config.model_dir, train_config.FLAGFILE_NAME)

    def _check_same_settings(self, path):
        """Refuses, in one line, to resume a run under settings that change what its checkpoints hold or mean
        (flags.cfg records the run's settings). A checkpoint's own objects cannot tell all of these apart (a restore
        ignores an EMA the new settings do not build); its precision record backs this up where flags.cfg is gone."""
        flagfile = self._flagfile()
        if not tf.io.gfile.exists(flagfile):
            return
        try:
            saved = train_config.read_flagfile(flagfile)
        except ValueError:
            return  # an unreadable flags.cfg: the checkpoint's own objects are checked on restore
        differences = train_config.checkpoint_differences(self.config, saved)
        if differences:
            raise TrainingError(f"{path}: does not match the models and settings asked for (compare {flagfile}): "
                                f"{'; '.join(differences)}")

    def _disk_full(self, step):
        """Removes the half-written checkpoint (it would keep the disk full) and stops in one line; the previous
        checkpoints are untouched, and the rerun resumes from the newest."""
        for leftover in tf.io.gfile.glob(os.path.join(self.manager.directory, f"ckpt-{step}[._]*")):
            if tf.io.gfile.isdir(leftover):
                tf.io.gfile.rmtree(leftover)
            else:
                tf.io.gfile.remove(leftover)
        needed = sum(variable.numpy().nbytes for held in self.gan.checkpoint_objects().values()
                     for variable in getattr(held, "variables", [held]))  # models, optimizers; counters themselves
        intact = self.manager.latest_checkpoint
        raise TrainingError(
            f"{self.config.model_dir}: no space left on device while saving the checkpoint of step {step} (it needs "
            f"about {needed // 1024} KiB); " + (f"{intact} is intact: " if intact else "") +
            "free space and run the same command to resume")
