"""The training loop, the Orbit controller's job: compiled calls of several steps around the GAN step of `gan`,
periodic actions at their intervals (progress lines, checkpoints, evaluation; the profiler's range), recovery from
non-finite losses, and the stop vote. What checkpoints hold and how they are restored and saved is `checkpoints`'; the
config arrives resolved (`checkpoints.resolve_config`).

The data position is part of the checkpoint (`batches_consumed`) and the input stream is a pure function of (seed,
position), so a restored run continues with exactly the batches an uninterrupted run would have seen; no
DistributedIterator is checkpointed.
"""

import contextlib
import hashlib
import os
import signal
import threading
import time

import keras
import tensorflow as tf

from colorgan.core import flag_config
from colorgan.core import progress
from colorgan.core import storage
from colorgan.data import input_pipeline
from colorgan.data import records
from colorgan.evaluation import evaluator
from colorgan.training import checkpoints
from colorgan.training import distribute
from colorgan.training import gan
from colorgan.training import profiler
from colorgan.training import run_log
from colorgan.training import train_config

# What each eval logs (metrics.jsonl, TensorBoard's eval/NAME), and the metrics TensorBoard compares runs by.
EVAL_METRICS = ("psnr", "ssim", "colorfulness", "colorfulness_real", "colorfulness_delta")


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
        # Op determinism leaves Grappler's arithmetic optimizer on, and its rewrites of the step's graph differ from
        # one process to the next: with --noisy_labels, 7 of 16 single-threaded runs of the same first step gave
        # D gradients a rounding apart (20 of 20 equal with it off), so a resumed run was not bit-exact.
        tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})


class PeriodicAction:
    """`action(step)` at every multiple of `every` steps, and at `final_step` if given (Orbit's periodic actions):
    the loop ends each compiled call at the next step an action is due, so none is ever late."""

    def __init__(self, every, action, final_step=None):
        self.every, self.action, self.final_step = every, action, final_step

    def steps_until_due(self, step):
        return self.every - step % self.every

    def __call__(self, step):
        if step % self.every == 0 or step == self.final_step:
            self.action(step)


class Trainer:
    """Trains a `gan.Gan` built under `strategy` from `config` (its --precision resolved)."""

    def __init__(self, config, strategy, log=print):
        if config.precision == "auto":
            raise ValueError("--precision=auto: resolve it first (checkpoints.resolve_config)")
        self.config, self.strategy, self.log = config, strategy, log
        self.num_replicas = strategy.num_replicas_in_sync
        self.is_chief = distribute.is_chief(strategy)
        self.global_batch = config.batch_size
        self.per_replica_batch = config.batch_size // self.num_replicas
        configure_process(config)
        self.gan = gan.Gan(config, strategy)
        self.checkpoints = checkpoints.RunCheckpoints(config, self.gan, strategy)
        self.metrics = run_log.MetricsLogger(config.model_dir, enabled=self.is_chief)
        self.evaluator = evaluator.Evaluator(self.gan.generate_rgb, strategy)
        self._train_loop = tf.function(self._loop, reduce_retracing=True)
        self.stop_signal = None  # the signal that asked this process to stop, if one did
        # Every worker splits its calls at the range (the calls' stop votes are collectives); the chief traces.
        self.profiler = profiler.StepProfiler(config, log, tracing=self.is_chief) if config.profile_steps else None
        self._window = self._pace = None

    def _dataset(self, training, start_position=0):
        """Training batches as the step takes them (`Gan.batch_pair`); evaluation batches as (gray, rgb), what
        evaluation takes."""
        color_space = "rgb"
        if training:
            color_space = None if self.gan.color_maths_on_device else self.gan.color_space

        # Every worker of this run, at this position, shares one job of the service (a restart makes a new one).
        job_name = f"colorgan-{hashlib.sha256(self.config.model_dir.encode()).hexdigest()[:16]}-{start_position}"
        if training and self.config.data_service:
            self.log(f"train: training input from the tf.data service at {self.config.data_service}, job {job_name} "
                     f"(no fixed order; it starts the epoch that holds data position {start_position})")

        def dataset_fn(context):
            return input_pipeline.make_dataset(
                self.config.data_dir, "train" if training else "val", context.get_per_replica_batch_size(
                    self.global_batch), self.config.image_size, input_context=context, training=training,
                color_space=color_space, seed=self.config.seed, deterministic=self.config.deterministic,
                start_position=start_position, shuffle_buffer=self.config.shuffle_buffer,
                data_service=self.config.data_service or None, job_name=job_name)

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    def _loop(self, iterator, first_batch, steps):
        """`steps` training steps inside one compiled call: the first on the batch the host fetched, the others on
        batches fetched in the loop, with nothing host-side between steps (on a GPU, no host round trip or sync per
        step). Every step runs the same loop body, so where a call starts cannot change a step's arithmetic (what
        keeps a resumed run exact). Returns summed losses and the count of finite steps."""
        g_total = tf.constant(0.0)
        d_total = tf.constant(0.0)
        finite_steps = tf.constant(0, tf.int64)
        for index in tf.range(steps):
            # A cond, not a loop variable: a multi-worker iterator's batches have no static batch size in the graph.
            batch = tf.cond(index == 0, lambda: first_batch, lambda: next(iterator))
            g_loss, d_loss, all_finite = self.gan.train_step(batch)
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
        batch = next(iterator)
        wait = time.monotonic() - fetch_start
        g_total, d_total, finite_steps = self._train_loop(iterator, batch, tf.constant(steps, tf.int64))
        return float(g_total), float(d_total), int(finite_steps), wait * steps

    # ------------------------------------------------------------------------------------------- the loop

    def restore_or_initialize(self):
        """Restores the newest intact checkpoint, if any (`checkpoints.RunCheckpoints`); returns the step training
        continues from. Lines of metrics.jsonl past it describe weights that are gone: dropped."""
        step = self.checkpoints.restore_or_initialize(self.log)
        self._truncate_metrics(step if step else -1)  # a run (re)starting at step 0 logs afresh
        return step

    def _truncate_metrics(self, step):
        dropped = self.metrics.truncate_after(step)
        if dropped:
            self.log(f"train: {self.metrics.path}: dropped line(s) {dropped}, not JSON objects")

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
        """The checkpoint action (and the stop's checkpoint)."""
        self.checkpoints.save(step)

    def train(self):
        """Trains up to config.train_steps; returns the final step (smaller when stopped by SIGTERM or Ctrl-C)."""
        config = self.config
        self.restore_or_initialize()
        if self.is_chief:
            storage.makedirs(config.model_dir)
            train_config.write_flagfile(config, os.path.join(config.model_dir, train_config.FLAGFILE_NAME))
            self.metrics.run_settings(train_config.to_flagfile_text(config), flag_config.flag_values(config),
                                      [f"eval/{name}" for name in EVAL_METRICS])
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

    def _actions(self):
        config = self.config
        actions = [PeriodicAction(config.log_every, self._log_progress, final_step=config.train_steps),
                   PeriodicAction(config.checkpoint_every, self._save)]
        if config.eval_every:
            actions.append(PeriodicAction(config.eval_every, lambda _: self.evaluate()))
        return actions

    def _train(self, config):
        iterator = iter(self._dataset(training=True, start_position=int(self.gan.batches_consumed.numpy())))
        step = int(self.gan.step.numpy())
        if step == 0:
            self._save(0)  # something to go back to if the first steps meet a non-finite loss
            if config.eval_every:
                self.evaluate(baseline=True)
        actions = self._actions()
        self._restart_pace(step)
        stopping = False
        while step < config.train_steps and not stopping:
            steps = min(config.steps_per_loop, config.train_steps - step,
                        *(action.steps_until_due(step) for action in actions),
                        self.profiler.steps_until_edge(step) if self.profiler else config.steps_per_loop)
            call_start = time.monotonic()
            with self.profiler.call(step, steps) if self.profiler else contextlib.nullcontext():
                g_total, d_total, finite_steps, wait = self._run_steps(iterator, steps)
            if finite_steps < steps:
                iterator = self._recover_from_non_finite(steps)
                step = int(self.gan.step.numpy())
                self._restart_pace(step)  # the discarded call's losses are not finite
                continue
            self._window.add(steps, time.monotonic() - call_start, wait, g_total, d_total)
            step = int(self.gan.step.numpy())
            for action in actions:
                action(step)
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
            raise checkpoints.TrainingError(f"non-finite loss in {bad_stretch}: stopping after "
                                            f"{self.config.max_nan_restores} restores (--max_nan_restores)")
        latest = self.checkpoints.restore_latest()
        self.gan.nan_restores.assign(restores)
        self.gan.batches_consumed.assign(resume_position)
        self._truncate_metrics(int(self.gan.step.numpy()))
        self.log(f"train: non-finite loss in {bad_stretch}; restored {latest}, continuing at data position "
                 f"{resume_position} ({restores}/{self.config.max_nan_restores})")
        self.metrics.event(int(self.gan.step.numpy()), {"nan_restores": restores, "data_position": resume_position})
        return iter(self._dataset(training=True, start_position=resume_position))

    def _restart_pace(self, step):
        self._window, self._pace = _Window(), (step, time.monotonic())

    def _log_progress(self, step):
        start_step, start_time = self._pace
        elapsed = time.monotonic() - start_time
        rate = (step - start_step) / elapsed if elapsed > 0 else 0.0
        eta = (self.config.train_steps - step) / rate if rate > 0 else float("nan")
        scalars = self._window.scalars(self.global_batch)
        self._window = _Window()
        self.metrics.train(step, scalars)
        if self.is_chief:
            self.log(f"train: step {step}/{self.config.train_steps} g_loss {scalars['g_loss']:.4f} "
                     f"d_loss {scalars['d_loss']:.4f} {scalars['examples_per_sec']:.1f} examples/s "
                     f"ETA {progress.format_duration(eta)}")

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
        result = {name: means[name] for name in EVAL_METRICS}
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


def _main_thread():
    """Python lets only the main thread install signal handlers (a Trainer may run in another, e.g. in tests)."""
    return threading.current_thread() is threading.main_thread()
