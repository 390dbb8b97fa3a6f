"""The distributed GAN trainer: strategy-agnostic compiled steps, exact resume, NaN guard, evaluation and samples.

One `Trainer` runs under any tf.distribute strategy. Losses are per-example and averaged over the global batch
(`tf.nn.compute_average_loss`), so results do not depend on the number of replicas. The data position is part of the
checkpoint (`batches_consumed`) and the input stream is a pure function of (seed, position), so a restored run
continues with exactly the batches an uninterrupted run would have seen; no DistributedIterator is checkpointed.
"""

import math
import os
import shutil
import signal
import threading
import time

import keras
import tensorflow as tf

from colorgan import color
from colorgan import distribute
from colorgan import input_pipeline
from colorgan import losses
from colorgan import metrics
from colorgan import metrics_log
from colorgan import models
from colorgan import train_config

FLAGFILE_NAME = "flags.cfg"


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. too many non-finite losses); the message says why."""


class Trainer:
    """Builds models, optimizers and state under `strategy`, and trains them from `config`."""

    def __init__(self, config, strategy, log=print):
        self.config, self.strategy, self.log = config, strategy, log
        self.num_replicas = strategy.num_replicas_in_sync
        self.is_chief = distribute.is_chief(strategy)
        self.global_batch = config.batch_size
        self.per_replica_batch = config.batch_size // self.num_replicas
        keras.mixed_precision.set_global_policy(config.precision)
        keras.utils.set_random_seed(config.seed)
        # Every random op here has its own seed (Keras's seed generators, the input pipeline, the label noise). TF's
        # global seed is left unset: with it at 0, tf.data's shuffle fails on a tensor seed, as random_seed.get_seed
        # then compares (0, tensor) == (0, 0).
        tf.random.set_seed(None)
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        hparams = dict(base_width=config.base_width, depth=config.depth, norm=config.norm, dropout=config.dropout)
        self.discriminator_spec = models.DISCRIMINATORS[config.discriminator]
        self.target_space = models.GENERATORS[config.generator].color_space
        with strategy.scope():
            self.generator = models.build_generator(config.generator, config.image_size, **hparams)
            self.discriminator = models.build_discriminator(
                config.discriminator, config.image_size, color_space=self.target_space, **hparams)
            self.g_optimizer = self._optimizer(config.g_learning_rate, "g")
            self.d_optimizer = self._optimizer(config.d_learning_rate, "d")
            # keras-team/keras#23085: build optimizer slots in the scope, before the first distributed step.
            self.g_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
            self.ema_generator = None
            if config.ema_decay > 0:
                self.ema_generator = models.build_generator(config.generator, config.image_size, **hparams)
                self.ema_generator.set_weights(self.generator.get_weights())
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.batches_consumed = tf.Variable(0, dtype=tf.int64, trainable=False, name="batches_consumed")
            self.nan_restores = tf.Variable(0, dtype=tf.int64, trainable=False, name="nan_restores")
            self.label_noise = tf.random.Generator.from_seed(config.seed + 1)
        state = dict(generator=self.generator, discriminator=self.discriminator, g_optimizer=self.g_optimizer,
                     d_optimizer=self.d_optimizer, step=self.step, batches_consumed=self.batches_consumed,
                     nan_restores=self.nan_restores, label_noise=self.label_noise)
        if self.ema_generator is not None:
            state["ema_generator"] = self.ema_generator
        self.checkpoint = tf.train.Checkpoint(**state)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, distribute.worker_checkpoint_dir(config.model_dir, strategy),
            max_to_keep=config.keep_checkpoints)
        self.metrics = metrics_log.MetricsLogger(config.model_dir, enabled=self.is_chief)
        self._train_loop = tf.function(self._loop, reduce_retracing=True)
        # XLA compiles the replica's arithmetic only; all-reduce and optimizer updates stay outside the cluster,
        # which is what lets --xla run under every strategy (cf. tensorflow/models#10752).
        self._losses_and_gradients = tf.function(self._compute_losses_and_gradients, jit_compile=config.xla)
        self._eval_step = tf.function(self._eval_sums)
        self._stop_requested = False
        self._last_saved_step = None

    # ----------------------------------------------------------------------------------------------- building

    def _optimizer(self, learning_rate, name):
        optimizer = keras.optimizers.Adam(learning_rate, beta_1=self.config.beta_1, beta_2=self.config.beta_2,
                                          name=f"{name}_adam")
        if self.config.precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name=f"{name}_loss_scale")
        return optimizer

    def _dataset(self, training, start_position=0):
        def dataset_fn(context):
            return input_pipeline.make_dataset(
                self.config.data_dir, "train" if training else "val", context.get_per_replica_batch_size(
                    self.global_batch), self.config.image_size, input_context=context, training=training,
                target_space=self.target_space, seed=self.config.seed, deterministic=self.config.deterministic,
                start_position=start_position, shuffle_buffer=self.config.shuffle_buffer)

        return self.strategy.distribute_datasets_from_function(dataset_fn)

    # ---------------------------------------------------------------------------------------------- the step

    def _discriminate(self, inputs, targets, training):
        if self.discriminator_spec.conditional:
            return self.discriminator([inputs, targets], training=training)
        return self.discriminator(targets, training=training)

    def _step(self, inputs, targets, data_ready):
        """One GAN step over the global batch, in cross-replica context; returns (g_loss, d_loss, finite).

        A non-finite loss on any replica skips the update everywhere. The branch is taken in cross-replica context
        because Keras's optimizer.apply synchronises (merge_call), which a cond inside a replica may not hold."""
        g_loss, d_loss, non_finite, g_grads, d_grads = self.strategy.run(self._replica_gradients,
                                                                         args=(inputs, targets, data_ready))
        finite = self.strategy.reduce(tf.distribute.ReduceOp.SUM, non_finite, axis=None) < 0.5

        def apply():
            self.strategy.run(self._replica_apply, args=(g_grads, d_grads))
            return tf.constant(True)

        tf.cond(finite, apply, lambda: tf.constant(False))
        return (self.strategy.reduce(tf.distribute.ReduceOp.SUM, g_loss, axis=None),
                self.strategy.reduce(tf.distribute.ReduceOp.SUM, d_loss, axis=None), finite)

    def _replica_gradients(self, inputs, targets, data_ready):
        """This replica's losses (its share of the global mean), whether they are non-finite, and gradients.
        `data_ready` (the clock reading after get_next) must come first, or the input wait would count compute."""
        with tf.control_dependencies([data_ready]):
            inputs, targets = tf.identity(inputs), tf.identity(targets)
        labels = ()
        if self.config.noisy_labels:
            # Drawn outside the (possibly XLA-compiled) gradient function, which should hold no RNG state.
            score_shape = tf.concat([tf.shape(inputs)[:1], self.discriminator.output_shape[1:]], axis=0)
            labels = losses.noisy_labels(score_shape, self.label_noise)
        g_loss, d_loss, g_grads, d_grads = self._losses_and_gradients(inputs, targets, labels)
        non_finite = tf.cast(~(tf.math.is_finite(g_loss) & tf.math.is_finite(d_loss)), tf.float32)
        return g_loss, d_loss, non_finite, g_grads, d_grads

    def _replica_apply(self, g_grads, d_grads):
        context = tf.distribute.get_replica_context()
        self._apply(self.g_optimizer, g_grads, self.generator.trainable_variables, context)
        self._apply(self.d_optimizer, d_grads, self.discriminator.trainable_variables, context)

    def _compute_losses_and_gradients(self, inputs, targets, labels):
        """Forward and backward pass of both networks on this replica's examples (optionally XLA-compiled)."""
        config = self.config
        adversarial = losses.adversarial_loss(config.adversarial_loss,
                                              from_logits=self.discriminator_spec.outputs_logits)
        real_labels, fake_labels = labels if labels else (None, None)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            generated = self.generator(inputs, training=True)
            real_scores = self._discriminate(inputs, targets, training=True)
            fake_scores = self._discriminate(inputs, generated, training=True)
            d_per_example = adversarial.discriminator(real_scores, fake_scores, real_labels, fake_labels)
            g_per_example = adversarial.generator(fake_scores) + config.reconstruction_weight * (
                losses.reconstruction_loss(config.reconstruction_loss, targets, generated))
            g_loss = tf.nn.compute_average_loss(g_per_example, global_batch_size=self.global_batch)
            d_loss = tf.nn.compute_average_loss(d_per_example, global_batch_size=self.global_batch)
            g_scaled, d_scaled = self._scale(self.g_optimizer, g_loss), self._scale(self.d_optimizer, d_loss)
        g_grads = g_tape.gradient(g_scaled, self.generator.trainable_variables)
        d_grads = d_tape.gradient(d_scaled, self.discriminator.trainable_variables)
        return g_loss, d_loss, g_grads, d_grads

    @staticmethod
    def _scale(optimizer, loss):
        return optimizer.scale_loss(loss) if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else loss

    def _apply(self, optimizer, grads, variables, context):
        """Applies gradients. Where a decision depends on them, they are all-reduced first, so every replica
        decides on the same numbers: the global norm of --clip_norm, and the loss scaler's finite check (Keras's
        LossScaleOptimizer looks at the first local replica's gradients before any all-reduce, so replicas could
        otherwise disagree, hang a multi-worker job or let an overflow through)."""
        loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        if self.config.clip_norm > 0 or loss_scaled:
            grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
            if self.config.clip_norm > 0:
                grads, _ = tf.clip_by_global_norm(grads, self.config.clip_norm)
            # Keras sums gradients over replicas inside apply(): hand each replica an equal share.
            grads = [g / self.num_replicas for g in grads]
        optimizer.apply(grads, variables)

    def _loop(self, iterator, steps):
        """`steps` training steps inside one compiled call; returns summed losses, the count of finite steps and
        the seconds spent waiting for input: host-clock readings around each get_next, ordered by control
        dependencies so that the first follows the previous step and the step's arithmetic follows the second."""
        g_total = tf.constant(0.0)
        d_total = tf.constant(0.0)
        wait = tf.constant(0.0, tf.float64)
        finite_steps = tf.constant(0, tf.int64)
        for _ in tf.range(steps):
            with tf.control_dependencies([g_total, d_total, finite_steps]):
                before = _host_clock()
            with tf.control_dependencies([before]):
                inputs, targets = next(iterator)
            with tf.control_dependencies(tf.nest.flatten(self.strategy.experimental_local_results((inputs, targets)))):
                after = _host_clock()
            wait += after - before
            g_loss, d_loss, all_finite = self._step(inputs, targets, after)
            g_total += g_loss
            d_total += d_loss
            finite_steps += tf.cast(all_finite, tf.int64)
            self.batches_consumed.assign_add(1)
            self.step.assign_add(tf.cast(all_finite, tf.int64))
            if self.ema_generator is not None:
                self._update_ema(all_finite)
        return g_total, d_total, finite_steps, wait

    def _update_ema(self, finite):
        decay = tf.where(finite, self.config.ema_decay, 1.0)
        for average, weight in zip(self.ema_generator.weights, self.generator.weights):
            average.assign(decay * average + (1.0 - decay) * tf.cast(weight, average.dtype))

    # ------------------------------------------------------------------------------------------- the loop

    def restore_or_initialize(self):
        """Restores the chief's latest checkpoint if there is one (every worker reads the same one); returns the step
        training continues from."""
        latest = tf.train.latest_checkpoint(self.config.model_dir)
        if latest:
            self._restore(latest)
            self.log(f"train: restored {latest} at step {int(self.step.numpy())}")
        step = int(self.step.numpy())
        self._last_saved_step = step if latest else None
        # Lines past the checkpoint describe weights that are gone; a run (re)starting at step 0 logs afresh.
        self.metrics.truncate_after(step if step else -1)
        return step

    def _restore(self, path):
        """Restores every object of this run from `path`, or fails in one line when the checkpoint was made by other
        models or settings (e.g. another --generator or --ema_decay in the same --model_dir)."""
        try:
            self.checkpoint.restore(path).assert_existing_objects_matched()
        except (AssertionError, ValueError) as e:
            raise TrainingError(f"{path}: does not match the models and settings asked for (compare "
                                f"{os.path.join(self.config.model_dir, FLAGFILE_NAME)}): "
                                f"{str(e).strip().splitlines()[0][:300]}") from None

    def request_stop(self, *_):
        """SIGTERM (preemption): finish the current call, checkpoint, exit."""
        self._stop_requested = True

    def _all_agree_to_stop(self):
        """True once any worker was asked to stop. Workers of a multi-worker job may get SIGTERM at different
        steps; agreeing through an all-reduce makes them all checkpoint at the same step (their saves are
        collective), as PreemptionCheckpointHandler would, but under every strategy."""
        if distribute.num_workers(self.strategy) == 1:
            return self._stop_requested
        return float(self._count_stop_votes(tf.constant(1.0 if self._stop_requested else 0.0))) > 0.0

    @tf.function
    def _count_stop_votes(self, vote):
        votes = self.strategy.run(tf.identity, args=(vote,))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None)

    def _save(self, step):
        """A checkpoint at `step` (all workers take part; only the chief's lands in model_dir). Whether it exists
        already is kept here, the same on every worker, not read from each worker's own directory."""
        if step == self._last_saved_step:
            return
        self.manager.save(checkpoint_number=step)
        self._last_saved_step = step
        if not self.is_chief:
            shutil.rmtree(self.manager.directory, ignore_errors=True)

    def train(self):
        """Trains up to config.train_steps; returns the final step (smaller when stopped by SIGTERM)."""
        config = self.config
        self.restore_or_initialize()
        if self.is_chief:
            os.makedirs(config.model_dir, exist_ok=True)
            train_config.write_flagfile(config, os.path.join(config.model_dir, FLAGFILE_NAME))
        previous_handler = signal.signal(signal.SIGTERM, self.request_stop) if _main_thread() else None
        try:
            return self._train(config)
        except tf.errors.DataLossError:
            raise input_pipeline.name_damaged_shard(config.data_dir, "train", "val") from None
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGTERM, previous_handler)
            self.metrics.close()

    def _train(self, config):
        iterator = iter(self._dataset(training=True, start_position=int(self.batches_consumed.numpy())))
        step = int(self.step.numpy())
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
                        _until_multiple(step, config.eval_every) if config.eval_every else config.steps_per_loop)
            call_start = time.monotonic()
            g_total, d_total, finite_steps, wait = self._train_loop(iterator, tf.constant(steps, tf.int64))
            if int(finite_steps) < steps:
                iterator = self._recover_from_non_finite(steps)
                step = int(self.step.numpy())
                window = _Window()  # the discarded call's losses are not finite
                start_step, start_time = step, time.monotonic()
                continue
            window.add(steps, time.monotonic() - call_start, float(wait), float(g_total), float(d_total))
            step = int(self.step.numpy())
            if step % config.log_every == 0 or step == config.train_steps:
                self._log_progress(step, window, start_step, start_time)
                window = _Window()
            if step % config.checkpoint_every == 0:
                self._save(step)
            if config.eval_every and step % config.eval_every == 0:
                self.evaluate()
            stopping = self._all_agree_to_stop()
        if stopping:
            self.log(f"train: stop requested (SIGTERM); checkpointing at step {step}")
        self._save(step)
        if not stopping and (not config.eval_every or step % config.eval_every):
            self.evaluate()
        return step

    def _recover_from_non_finite(self, call_steps):
        """A non-finite loss never reached the weights (its step was skipped in-graph). Restore the last checkpoint
        and continue the data stream after the call's batches, the offending one among them (the PaLM recipe:
        don't replay the bad stretch)."""
        restores = int(self.nan_restores.numpy()) + 1
        resume_position = int(self.batches_consumed.numpy())
        bad_stretch = f"data positions {resume_position - call_steps}..{resume_position - 1}"
        if restores > self.config.max_nan_restores:
            raise TrainingError(f"non-finite loss in {bad_stretch}: stopping after {self.config.max_nan_restores} "
                                f"restores (--max_nan_restores)")
        latest = tf.train.latest_checkpoint(self.config.model_dir)
        self._restore(latest)
        self.nan_restores.assign(restores)
        self.batches_consumed.assign(resume_position)
        self.metrics.truncate_after(int(self.step.numpy()))
        self.log(f"train: non-finite loss in {bad_stretch}; restored {latest}, continuing at data position "
                 f"{resume_position} ({restores}/{self.config.max_nan_restores})")
        self.metrics.event(int(self.step.numpy()), {"nan_restores": restores, "data_position": resume_position})
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

    def colorize(self, inputs, use_ema=True):
        """Generator output as RGB in [0, 1], whatever colour space the model works in."""
        generator = self.ema_generator if (use_ema and self.ema_generator is not None) else self.generator
        output = tf.cast(generator(inputs, training=False), tf.float32)
        if self.target_space == "lab":
            return color.model_lab_to_rgb(inputs, output)
        return tf.clip_by_value(output, 0.0, 1.0)

    def _as_rgb_pair(self, inputs, targets):
        """(gray as RGB, real RGB) in [0, 1] from a batch in the model's colour space."""
        if self.target_space == "lab":
            real = color.model_lab_to_rgb(inputs, targets)
            gray = color.model_lab_to_rgb(inputs, tf.zeros_like(targets))
        else:
            real, gray = targets, tf.image.grayscale_to_rgb(inputs)
        return gray, real

    def evaluate(self, baseline=False):
        """PSNR, SSIM and colorfulness on the val split (and the gray-copy baseline once); a sample sheet."""
        batches = self._eval_batches()
        if not batches:
            self.log("train: no val batches to evaluate (the val split is empty or smaller than one global batch)")
            return {}
        sums = {}
        count = 0
        first = None
        iterator = iter(self._dataset(training=False))
        for _ in range(batches):
            inputs, targets = next(iterator)
            for name, value in self._eval_step(inputs, targets).items():
                sums[name] = sums.get(name, 0.0) + float(value)
            count += self.global_batch
            if first is None:
                first = (self.strategy.experimental_local_results(inputs)[0],
                         self.strategy.experimental_local_results(targets)[0])
        means = {name: total / count for name, total in sums.items()}
        step = int(self.step.numpy())
        if baseline:
            self.metrics.baseline(step, {"psnr_gray_copy": means["psnr_gray_copy"],
                                         "ssim_gray_copy": means["ssim_gray_copy"]})
        result = {name: means[name] for name in ("psnr", "ssim", "colorfulness", "colorfulness_real")}
        self.metrics.eval(step, result)
        if self.is_chief:
            inputs, targets = first
            gray, real = self._as_rgb_pair(inputs, targets)
            self.metrics.sample_sheet(step, gray.numpy(), self.colorize(inputs).numpy(), real.numpy(),
                                      max_rows=self.config.sample_rows)
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

    def _eval_sums(self, inputs, targets):
        """Per-metric sums over the global batch (divided by the example count once all batches are in)."""

        def replica_sums(inputs, targets):
            generated = self.colorize(inputs)
            gray, real = self._as_rgb_pair(inputs, targets)
            per_example = {
                "psnr": metrics.psnr(generated, real),
                "ssim": metrics.ssim(generated, real),
                "colorfulness": metrics.colorfulness(generated),
                "colorfulness_real": metrics.colorfulness(real),
                "psnr_gray_copy": metrics.psnr(gray, real),
                "ssim_gray_copy": metrics.ssim(gray, real),
            }
            return {name: tf.reduce_sum(values) for name, values in per_example.items()}

        sums = self.strategy.run(replica_sums, args=(inputs, targets))
        return {name: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                for name, value in sums.items()}


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


def _host_clock():
    """Seconds on the host's monotonic clock, as an op. tf.timestamp would do, but op determinism forbids it."""
    return tf.ensure_shape(tf.py_function(time.perf_counter, [], tf.float64), [])


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
