"""The training loop: intervals, checkpoints and exact resume, recovery from non-finite losses, the stop vote,
progress lines and periodic evaluation, around the GAN step of `gan.py` (the Orbit controller's job).

The data position is part of the checkpoint (`batches_consumed`) and the input stream is a pure function of (seed,
position), so a restored run continues with exactly the batches an uninterrupted run would have seen; no
DistributedIterator is checkpointed.
"""

import contextlib
import math
import os
import signal
import threading
import time

import keras
import tensorflow as tf

from colorgan import distribute
from colorgan import evaluation
from colorgan import gan
from colorgan import input_pipeline
from colorgan import metrics_log
from colorgan import records
from colorgan import storage
from colorgan import train_config

FLAGFILE_NAME = train_config.FLAGFILE_NAME
PRECISION_KEY = "precision/.ATTRIBUTES/VARIABLE_VALUE"  # where a checkpoint records its run's precision


def recorded_precision(checkpoint_path):
    """The precision the run of `checkpoint_path` trains in, as its checkpoint records it; None for a checkpoint from
    before the record was kept, or one that cannot be read (its restore says why)."""
    try:
        return storage.checkpoint_reader(checkpoint_path).get_tensor(PRECISION_KEY).decode()
    except (tf.errors.OpError, ValueError):
        return None


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. too many non-finite losses); the message says why."""


def configure_process(config):
    """Process-wide settings a training run needs before it builds anything: precision policy, seeds, determinism.
    (Inference needs none of them, which is why they are not part of building the models.)"""
    keras.mixed_precision.set_global_policy(config.precision)
    keras.utils.set_random_seed(config.seed)
    # Every random op here has its own seed (Keras's seed generators, the input pipeline, the label noise). TF's
    # global seed is left unset: with it at 0, tf.data's shuffle fails on a tensor seed, as random_seed.get_seed
    # then compares (0, tensor) == (0, 0).
    tf.random.set_seed(None)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()


class _DamagedCheckpoint(Exception):
    """A checkpoint whose files cannot be read."""


class Trainer:
    """Trains a `gan.Gan` built under `strategy` from `config`."""

    def __init__(self, config, strategy, log=print):
        newest = tf.train.latest_checkpoint(config.model_dir)
        resolved = train_config.resolve_precision(config, distribute.native_bf16,
                                                  recorded_precision(newest) if newest else None)
        if resolved.precision != config.precision:
            log(f"train: --precision=auto: {resolved.precision}")
        config = resolved
        self.config, self.strategy, self.log = config, strategy, log
        self.num_replicas = strategy.num_replicas_in_sync
        self.is_chief = distribute.is_chief(strategy)
        self.global_batch = config.batch_size
        self.per_replica_batch = config.batch_size // self.num_replicas
        configure_process(config)
        self.gan = gan.Gan(config, strategy)
        # The resolved precision is recorded beside the weights: float32 and bf16 runs hold the same variables.
        self.precision = tf.Variable(config.precision, trainable=False, dtype=tf.string)
        self.checkpoint = tf.train.Checkpoint(**self.gan.checkpoint_objects(), precision=self.precision)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, distribute.worker_checkpoint_dir(config.model_dir, strategy),
            max_to_keep=config.keep_checkpoints)
        self.metrics = metrics_log.MetricsLogger(config.model_dir, enabled=self.is_chief)
        self.evaluator = evaluation.Evaluator(self.gan.generate_rgb, strategy)
        self._train_loop = tf.function(self._loop, reduce_retracing=True)
        self.stop_signal = None  # the signal that asked this process to stop, if one did
        # Every worker splits its calls at the range (the calls' stop votes are collectives); the chief traces.
        self.profiler = _Profiler(config, log, tracing=self.is_chief) if config.profile_steps else None
        self._last_saved_step = None

    def _dataset(self, training, start_position=0):
        """Training batches in the model's colour space; evaluation batches as (gray, rgb), what evaluation takes."""
        color_space = self.gan.color_space if training else "rgb"

        def dataset_fn(context):
            return input_pipeline.make_dataset(
                self.config.data_dir, "train" if training else "val", context.get_per_replica_batch_size(
                    self.global_batch), self.config.image_size, input_context=context, training=training,
                color_space=color_space, seed=self.config.seed, deterministic=self.config.deterministic,
                start_position=start_position, shuffle_buffer=self.config.shuffle_buffer)

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def _loop(self, iterator, first_inputs, first_targets, steps):
        """`steps` training steps inside one compiled call: the first on the batch the host fetched, the others on
        batches fetched in the loop, with nothing host-side between steps (on a GPU, no host round trip or sync per
        step). Every step runs the same loop body, so where a call starts cannot change a step's arithmetic (what
        keeps a resumed run exact). Returns summed losses and the count of finite steps."""
        g_total = tf.constant(0.0)
        d_total = tf.constant(0.0)
        finite_steps = tf.constant(0, tf.int64)
        for index in tf.range(steps):
            # A cond, not a loop variable: a multi-worker iterator's batches have no static batch size in the graph.
            inputs, targets = tf.cond(index == 0, lambda: (first_inputs, first_targets), lambda: next(iterator))
            g_loss, d_loss, all_finite = self.gan.train_step(inputs, targets)
            g_total += g_loss
            d_total += d_loss
            finite_steps += tf.cast(all_finite, tf.int64)
        return g_total, d_total, finite_steps

    def _run_steps(self, iterator, steps):
        """`steps` steps in one compiled call, on a first batch fetched here. Returns the summed losses, the finite
        steps and the input wait of the call: the timed fetch's wait, which every step of the call is counted to
        have (in steady state each get_next waits alike), so a slow input pipeline shows as a fraction near 1 and a
        fast one near 0, whatever --steps_per_loop."""
        fetch_start = time.monotonic()
        inputs, targets = next(iterator)
        wait = time.monotonic() - fetch_start
        g_total, d_total, finite_steps = self._train_loop(iterator, inputs, targets, tf.constant(steps, tf.int64))
        return float(g_total), float(d_total), int(finite_steps), wait * steps

    # ------------------------------------------------------------------------------------------- the loop

    def restore_or_initialize(self):
        """Restores the chief's newest intact checkpoint if there is one (every worker reads the same one); returns
        the step training continues from. A damaged newer one (truncated data, garbage index) is named in one line
        and left in place: the run's next save of that step replaces it."""
        state = tf.train.get_checkpoint_state(self.config.model_dir)
        if state and state.all_model_checkpoint_paths:
            self._check_same_settings(state.all_model_checkpoint_paths[-1])
        restored = None
        for path in reversed(state.all_model_checkpoint_paths if state else []):
            try:
                self._restore(path)
            except _DamagedCheckpoint as e:
                self.log(f"train: {path} is damaged ({e}); trying the checkpoint before it")
                continue
            restored = path
            self.log(f"train: restored {path} at step {int(self.gan.step.numpy())}")
            break
        if state and state.all_model_checkpoint_paths and not restored:
            raise TrainingError(f"{self.config.model_dir}: every checkpoint is damaged; move them away to start "
                                f"afresh")
        step = int(self.gan.step.numpy())
        self._last_saved_step = step if restored else None
        # Lines past the checkpoint describe weights that are gone; a run (re)starting at step 0 logs afresh.
        self._truncate_metrics(step if step else -1)
        return step

    def _truncate_metrics(self, step):
        dropped = self.metrics.truncate_after(step)
        if dropped:
            self.log(f"train: {self.metrics.path}: dropped line(s) {dropped}, not JSON objects")

    def _check_same_settings(self, path):
        """Refuses, in one line, to resume a run under settings that change what its checkpoints hold or mean
        (flags.cfg records the run's settings). A checkpoint's own objects cannot tell all of these apart (a restore
        ignores an EMA the new settings do not build); its precision record backs this up where flags.cfg is gone."""
        flagfile = os.path.join(self.config.model_dir, FLAGFILE_NAME)
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

    def _restore(self, path):
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
                                f"{os.path.join(self.config.model_dir, FLAGFILE_NAME)}): "
                                f"{str(e).strip().splitlines()[0][:300]}") from None
        except (tf.errors.OpError, IndexError, RuntimeError) as e:  # what TF raises for unreadable files
            raise _DamagedCheckpoint(str(e).strip().splitlines()[0][:200] or type(e).__name__) from None

    def request_stop(self, signum=signal.SIGTERM, _=None):
        """SIGTERM (preemption) or Ctrl-C: finish the current call, checkpoint, exit. A Ctrl-C after a first request
        ends the process at once, as a person pressing it twice expects."""
        self.stop_signal = self.stop_signal or signum
        # Python runs handlers only between bytecodes, not inside a compiled call or a checkpoint write; the
        # default action ends the process wherever it is.
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    def _all_agree_to_stop(self):
        """True once any worker was asked to stop. Workers of a multi-worker job may get SIGTERM at different
        steps; agreeing through an all-reduce makes them all checkpoint at the same step (their saves are
        collective), as PreemptionCheckpointHandler would, but under every strategy."""
        if distribute.num_workers(self.strategy) == 1:
            return self.stop_signal is not None
        return float(self._count_stop_votes(tf.constant(0.0 if self.stop_signal is None else 1.0))) > 0.0

    @tf.function
    def _count_stop_votes(self, vote):
        votes = self.strategy.run(tf.identity, args=(vote,))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)

    def _save(self, step):
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

    def train(self):
        """Trains up to config.train_steps; returns the final step (smaller when stopped by SIGTERM or Ctrl-C)."""
        config = self.config
        self.restore_or_initialize()
        if self.is_chief:
            storage.makedirs(config.model_dir)
            train_config.write_flagfile(config, os.path.join(config.model_dir, FLAGFILE_NAME))
        stop_signals = (signal.SIGTERM, signal.SIGINT) if _main_thread() else ()
        previous_handlers = {signum: signal.signal(signum, self.request_stop) for signum in stop_signals}
        try:
            return self._train(config)
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
            # A truncated record, or an image that does not decode in a shard whose hash matches: name the shard.
            self.log(f"train: a record failed to read or decode; checking the shards of {config.data_dir}")
            damaged = input_pipeline.find_damaged_shard(config.data_dir, "train", "val")
            if damaged:
                raise damaged from None
            if isinstance(error, tf.errors.DataLossError):
                raise records.DatasetError(f"{config.data_dir}: a record failed to read, but every shard verifies "
                                           f"now") from None
            raise
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
            if self.profiler:
                self.profiler.stop()
            self.metrics.close()

    def _train(self, config):
        iterator = iter(self._dataset(training=True, start_position=int(self.gan.batches_consumed.numpy())))
        step = int(self.gan.step.numpy())
        if step == 0:
            self._save(0)  # something to go back to if the first steps meet a non-finite loss
            if config.eval_every:
                self.evaluate(baseline=True)
        window = _Window()
        start_step, start_time = step, time.monotonic()
        stopping = False
        while step < config.train_steps and not stopping:
            steps = min(config.steps_per_loop, config.train_steps - step,
                        _until_multiple(step, config.log_every), _until_multiple(step, config.checkpoint_every),
                        _until_multiple(step, config.eval_every) if config.eval_every else config.steps_per_loop,
                        self.profiler.steps_until_edge(step) if self.profiler else config.steps_per_loop)
            call_start = time.monotonic()
            with self.profiler.call(step, steps) if self.profiler else contextlib.nullcontext():
                g_total, d_total, finite_steps, wait = self._run_steps(iterator, steps)
            if finite_steps < steps:
                iterator = self._recover_from_non_finite(steps)
                step = int(self.gan.step.numpy())
                window = _Window()  # the discarded call's losses are not finite
                start_step, start_time = step, time.monotonic()
                continue
            window.add(steps, time.monotonic() - call_start, wait, g_total, d_total)
            step = int(self.gan.step.numpy())
            if step % config.log_every == 0 or step == config.train_steps:
                self._log_progress(step, window, start_step, start_time)
                window = _Window()
            if step % config.checkpoint_every == 0:
                self._save(step)
            if config.eval_every and step % config.eval_every == 0:
                self.evaluate()
            stopping = self._all_agree_to_stop()
        if stopping:
            requested = signal.Signals(self.stop_signal).name if self.stop_signal else "by another worker"
            self.log(f"train: stop requested ({requested}); checkpointing at step {step}")
        self._save(step)
        if not stopping and (not config.eval_every or step % config.eval_every):
            self.evaluate()
        return step

    def _recover_from_non_finite(self, call_steps):
        """A non-finite loss never reached the weights (its step was skipped in-graph). Restore the last checkpoint
        and continue the data stream after the call's batches, the offending one among them (the PaLM recipe:
        don't replay the bad stretch)."""
        restores = int(self.gan.nan_restores.numpy()) + 1
        resume_position = int(self.gan.batches_consumed.numpy())
        bad_stretch = f"data positions {resume_position - call_steps}..{resume_position - 1}"
        if restores > self.config.max_nan_restores:
            raise TrainingError(f"non-finite loss in {bad_stretch}: stopping after {self.config.max_nan_restores} "
                                f"restores (--max_nan_restores)")
        latest = tf.train.latest_checkpoint(self.config.model_dir)
        self._restore(latest)
        self.gan.nan_restores.assign(restores)
        self.gan.batches_consumed.assign(resume_position)
        self._truncate_metrics(int(self.gan.step.numpy()))
        self.log(f"train: non-finite loss in {bad_stretch}; restored {latest}, continuing at data position "
                 f"{resume_position} ({restores}/{self.config.max_nan_restores})")
        self.metrics.event(int(self.gan.step.numpy()), {"nan_restores": restores, "data_position": resume_position})
        return iter(self._dataset(training=True, start_position=resume_position))

    def _log_progress(self, step, window, start_step, start_time):
        elapsed = time.monotonic() - start_time
        rate = (step - start_step) / elapsed if elapsed > 0 else 0.0
        eta = (self.config.train_steps - step) / rate if rate > 0 else float("nan")
        scalars = window.scalars(self.global_batch)
        self.metrics.train(step, scalars)
        if self.is_chief:
            self.log(f"train: step {step}/{self.config.train_steps} g_loss {scalars['g_loss']:.4f} "
                     f"d_loss {scalars['d_loss']:.4f} {scalars['examples_per_sec']:.1f} examples/s "
                     f"ETA {_duration(eta)}")

    # ------------------------------------------------------------------------------------------ evaluation

    def evaluate(self, baseline=False):
        """PSNR, SSIM and colorfulness on the val split (and the gray-copy baseline once); a sample sheet."""
        batches = self._eval_batches()
        if not batches:
            self.log("train: no val batches to evaluate (the val split is empty or smaller than one global batch)")
            return {}
        evaluated = self.evaluator.run(iter(self._dataset(training=False)), batches,
                                       keep_samples=self.config.sample_rows if self.is_chief else 0)
        means = evaluated.means
        step = int(self.gan.step.numpy())
        if baseline:
            self.metrics.baseline(step, {"psnr_gray_copy": means["psnr_gray_copy"],
                                         "ssim_gray_copy": means["ssim_gray_copy"]})
        result = {name: means[name] for name in ("psnr", "ssim", "colorfulness", "colorfulness_real",
                                                 "colorfulness_delta")}
        self.metrics.eval(step, result)
        if self.is_chief:
            self.metrics.sample_sheet(step, *zip(*evaluated.samples), max_rows=self.config.sample_rows)
            self.log(f"train: eval at step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in result.items()))
        return result

    def _eval_batches(self):
        """Global val batches every input pipeline can give: the same count on every worker, so no worker waits
        in a collective for a batch another one does not have."""
        pipelines = distribute.num_workers(self.strategy)  # one input pipeline per worker
        contexts = [tf.distribute.InputContext(pipelines, pipeline, self.num_replicas) for pipeline in range(pipelines)]
        batches = min(input_pipeline.batches_per_epoch(self.config.data_dir, "val", self.per_replica_batch, context)
                      for context in contexts)
        return min(batches, self.config.eval_batches) if self.config.eval_batches else batches


class _Profiler:
    """--profile_steps=A,B: the TensorFlow profiler records steps A..B, and only those (compiled calls are split at
    A and B); each call is marked in the trace as a `train` event with its first step (step_num) and step count."""

    def __init__(self, config, log, tracing=True):
        self.first, self.last = config.profile_range()
        self.logdir = os.path.join(config.model_dir, metrics_log.TENSORBOARD_DIRNAME)
        self.log, self.tracing = log, tracing
        self.running = False

    def steps_until_edge(self, step):
        """Steps from `step` to the next edge of the range (A - 1, the step before it, and B)."""
        ahead = [edge - step for edge in (self.first - 1, self.last) if edge > step]
        return min(ahead) if ahead else math.inf

    @contextlib.contextmanager
    def call(self, step, steps):
        """Around a call running steps step+1..step+steps: starts the trace at the range, marks the call, stops
        after B."""
        if self.tracing and not self.running and self.first - 1 <= step < self.last:
            tf.profiler.experimental.start(self.logdir)
            self.running = True
            self.log(f"train: profiling steps {step + 1}..{self.last} into {self.logdir}")
        if not self.running:
            yield
            return
        with tf.profiler.experimental.Trace("train", step_num=step + 1, steps=steps, _r=1):
            yield
        if step + steps >= self.last:
            self.stop()

    def stop(self):
        if self.running:
            tf.profiler.experimental.stop()
            self.running = False
            self.log(f"train: profile written to {self.logdir} (TensorBoard's Profile tab)")


class _Window:
    """Accumulates steps, time and losses between two log lines."""

    def __init__(self):
        self.steps, self.seconds, self.wait, self.g_total, self.d_total = 0, 0.0, 0.0, 0.0, 0.0

    def add(self, steps, seconds, wait, g_total, d_total):
        self.steps += steps
        self.seconds += seconds
        self.wait += wait
        self.g_total += g_total
        self.d_total += d_total

    def scalars(self, global_batch):
        steps = max(self.steps, 1)
        seconds = max(self.seconds, 1e-9)
        return {"g_loss": self.g_total / steps, "d_loss": self.d_total / steps,
                "examples_per_sec": steps * global_batch / seconds,
                "input_wait_fraction": min(1.0, self.wait / seconds)}


def _until_multiple(step, every):
    return every - step % every


def _duration(seconds):
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _main_thread():
    """Python lets only the main thread install signal handlers (a Trainer may run in another, e.g. in tests)."""
    return threading.current_thread() is threading.main_thread()
