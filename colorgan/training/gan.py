"""The GAN's state and maths under a tf.distribute strategy: models, optimizers, EMA, counters, the step.

No file I/O and no clocks: `trainer` runs the loop around `train_step` (intervals, checkpoints, recovery). Losses are
per-example and averaged over the global batch (`tf.nn.compute_average_loss`), so results do not depend on the number of
replicas. Nor does the step's noise: every random draw (dropout, noisy labels, colour hints) comes from
`example_noise`, per example of the global batch, and batch norm is synchronised across replicas. The counters live
here because they are part of the checkpoint: `step` counts applied updates, `batches_consumed` the data position (it
runs ahead of `step` after a skipped non-finite batch) and the seed of the step's draws.
"""

import contextlib

import keras
import tensorflow as tf

from colorgan.data import input_pipeline
from colorgan.modeling import backbones
from colorgan.modeling import color_hints
from colorgan.modeling import example_noise
from colorgan.modeling import hint_patches
from colorgan.modeling import losses
from colorgan.modeling import models
from colorgan.training import distribute


class Gan:
    """Builds models, optimizers and state under `strategy`; `train_step` runs one global step in cross-replica
    context (inside a tf.function)."""

    def __init__(self, config, strategy):
        self.config, self.strategy = config, strategy
        self.num_replicas = strategy.num_replicas_in_sync
        self.global_batch = config.batch_size
        self.discriminator_spec = models.DISCRIMINATORS[config.discriminator]
        self.color_space = models.GENERATORS[config.generator].color_space
        # Training batches arrive as uint8 RGB and become the model's pair inside the step (`batch_pair`).
        self.color_maths_on_device = config.color_maths == "device" or (
            config.color_maths == "auto" and distribute.replicas_on_accelerators(strategy))
        hparams = config.model_hparams()
        with strategy.scope():
            self.generator = models.build_generator(config.generator, config.image_size, for_training=True,
                                                    **hparams)
            self.discriminator = models.build_discriminator(
                config.discriminator, config.image_size, color_space=self.color_space, **hparams)
            # A frozen-then-trained encoder has an Adam of its own, so that its bias correction starts when it
            # does; the rest of the generator keeps g_optimizer (checkpoints of runs without one are unchanged).
            encoder_ids = ({id(variable) for variable in models.encoder_variables(self.generator)}
                           if config.freeze_encoder_steps else set())
            self._in_encoder = [id(v) in encoder_ids for v in self.generator.trainable_variables]
            self.g_variables = [v for v, inside in zip(self.generator.trainable_variables, self._in_encoder)
                                if not inside]
            self.e_variables = [v for v, inside in zip(self.generator.trainable_variables, self._in_encoder) if inside]
            self.g_optimizer = self._optimizer(config.g_learning_rate, "g")
            self.d_optimizer = self._optimizer(config.d_learning_rate, "d")
            self.e_optimizer = self._optimizer(config.g_learning_rate, "e") if self.e_variables else None
            # keras-team/keras#23085: build optimizer slots in the scope, before the first distributed step.
            self.g_optimizer.build(self.g_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)
            if self.e_optimizer:
                self.e_optimizer.build(self.e_variables)
            self.ema_generator = None
            if config.ema_decay > 0:
                self.ema_generator = models.build_generator(config.generator, config.image_size, **hparams)
                self.ema_generator.set_weights(self.generator.get_weights())
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.batches_consumed = tf.Variable(0, dtype=tf.int64, trainable=False, name="batches_consumed")
            self.nan_restores = tf.Variable(0, dtype=tf.int64, trainable=False, name="nan_restores")
        # XLA compiles the replica's arithmetic only; all-reduce and optimizer updates stay outside the cluster,
        # which is what lets --xla run under every strategy (cf. tensorflow/models#10752). Without XLA the pass is
        # traced inline: synchronised batch norm all-reduces inside it, which a nested tf.function cannot hold
        # (merge_call), and why train_config refuses --xla with --norm=batch.
        self._losses_and_gradients = (tf.function(self._compute_losses_and_gradients, jit_compile=True)
                                      if config.xla else self._compute_losses_and_gradients)

    def checkpoint_objects(self):
        """What a checkpoint holds, by the names checkpoints have always used (older runs restore unchanged)."""
        objects = dict(generator=self.generator, discriminator=self.discriminator, g_optimizer=self.g_optimizer,
                       d_optimizer=self.d_optimizer, step=self.step, batches_consumed=self.batches_consumed,
                       nan_restores=self.nan_restores)
        if self.ema_generator is not None:
            objects["ema_generator"] = self.ema_generator
        if self.e_optimizer is not None:
            objects["e_optimizer"] = self.e_optimizer
        return objects

    def load_pretrained_encoder(self, log):
        """A new run's backbone encoder gets its --encoder_weights (a resumed one has them in its checkpoint)."""
        config = self.config
        if config.encoder not in backbones.BACKBONES or config.encoder_weights == "none":
            return
        backbones.load_weights(self.generator.get_layer("encoder"), config.encoder, config.encoder_weights)
        if self.ema_generator is not None:
            self.ema_generator.set_weights(self.generator.get_weights())
        log(f"train: {config.encoder} encoder weights from {config.encoder_weights}")

    @property
    def inference_generator(self):
        """The generator to evaluate and export: the EMA of the weights where the run keeps one."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def generate_rgb(self, gray):
        """The inference generator on gray [0, 1] [b, s, s, 1] -> sRGB [0, 1] (evaluation's callable; no hints)."""
        inputs = self.color_space.model_input(gray)
        generator = self.inference_generator
        return self.color_space.to_rgb(inputs, generator(models.generator_inputs(generator, inputs), training=False))

    def _optimizer(self, learning_rate, name):
        optimizer = keras.optimizers.Adam(learning_rate, beta_1=self.config.beta_1, beta_2=self.config.beta_2,
                                          name=f"{name}_adam")
        if self.config.precision == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer, name=f"{name}_loss_scale")
        return optimizer

    # ---------------------------------------------------------------------------------------------- the step

    def train_step(self, batch):
        """One GAN step over the global batch (the input pipeline's element: an (inputs, targets) pair, or uint8 RGB
        with the colour maths on the device), in cross-replica context; returns (g_loss, d_loss, finite) and
        advances the counters (and the EMA when the step was applied).

        A non-finite loss on any replica skips the update everywhere. The branch is taken in cross-replica context
        because Keras's optimizer.apply synchronises (merge_call), which a cond inside a replica may not hold."""
        config = self.config
        step_seed = example_noise.step_seed(config.seed, self.batches_consumed)
        # The schedule, by applied step: the encoder frozen, the adversarial phase not begun, the share of examples
        # that get hints.
        encoder_on = self.step >= config.freeze_encoder_steps
        adversarial_on = self.step >= config.pretrain_steps
        hints_ramp = (tf.minimum(1.0, tf.cast(self.step, tf.float32) / config.hints_ramp_steps)
                      if config.hints_ramp_steps else tf.constant(1.0))
        schedule = dict(encoder_on=encoder_on, adversarial_on=adversarial_on, hints_ramp=hints_ramp)
        g_loss, d_loss, non_finite, g_grads, d_grads = self.strategy.run(
            self._replica_gradients, args=(batch, step_seed, schedule))
        finite = self.strategy.reduce(tf.distribute.ReduceOp.SUM, non_finite, axis=None) < 0.5

        def apply(function, *args):
            def run():
                self.strategy.run(function, args=args)
                return tf.constant(True)

            return run

        # Each update under its own cond in cross-replica context, as the skip of a non-finite step is: skipped
        # updates leave an optimizer's step count, and so its bias correction, where it was.
        if self.e_optimizer is None:
            tf.cond(finite, apply(self._replica_apply_generator, g_grads, False), lambda: tf.constant(False))
        else:
            tf.cond(finite & encoder_on, apply(self._replica_apply_generator, g_grads, True),
                    lambda: tf.cond(finite, apply(self._replica_apply_generator, g_grads, False),
                                    lambda: tf.constant(False)))
        # Without a pretraining phase the discriminator's cond is the generator's (a predicate that is always true
        # changes the graph enough for TF 2.21's remapper to fail on the seed150 test config's LeakyRelu fusion).
        tf.cond(finite & adversarial_on if config.pretrain_steps else finite,
                apply(self._replica_apply_discriminator, d_grads), lambda: tf.constant(False))
        self.batches_consumed.assign_add(1)
        self.step.assign_add(tf.cast(finite, tf.int64))
        if self.ema_generator is not None:
            self._update_ema(finite)
        return (self.strategy.reduce(tf.distribute.ReduceOp.SUM, g_loss, axis=None),
                self.strategy.reduce(tf.distribute.ReduceOp.SUM, d_loss, axis=None), finite)

    def _discriminate(self, inputs, targets, training):
        if self.discriminator_spec.conditional:
            return self.discriminator([inputs, targets], training=training)
        return self.discriminator(targets, training=training)

    def batch_pair(self, batch):
        """(inputs, targets) of a training batch: the input pipeline's pair, or made here from uint8 RGB."""
        return input_pipeline.model_pair(self.color_space, batch) if self.color_maths_on_device else batch

    def _replica_gradients(self, batch, step_seed, schedule):
        """This replica's losses (its share of the global mean), whether they are non-finite, and gradients."""
        inputs, targets = self.batch_pair(batch)
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        first_example = tf.cast(replica, tf.int32) * tf.shape(inputs)[0]
        g_loss, d_loss, g_grads, d_grads = self._losses_and_gradients(inputs, targets, step_seed, first_example,
                                                                      schedule)
        non_finite = tf.cast(~(tf.math.is_finite(g_loss) & tf.math.is_finite(d_loss)), tf.float32)
        return g_loss, d_loss, non_finite, g_grads, d_grads

    def _replica_apply_generator(self, g_grads, with_encoder):
        """The generator's update: all of it, or all but a frozen encoder (gradients in trainable_variables'
        order)."""
        context = tf.distribute.get_replica_context()
        if self.e_optimizer is None:
            self._apply([(self.g_optimizer, self.g_variables)], g_grads, context)
            return
        by_kind = {True: [], False: []}
        for grad, inside in zip(g_grads, self._in_encoder):
            by_kind[inside].append(grad)
        updates = [(self.g_optimizer, self.g_variables, by_kind[False])]
        if with_encoder:
            updates.append((self.e_optimizer, self.e_variables, by_kind[True]))
        self._apply([(optimizer, variables) for optimizer, variables, _ in updates],
                    [grad for _, _, grads in updates for grad in grads], context)

    def _replica_apply_discriminator(self, d_grads):
        self._apply([(self.d_optimizer, self.discriminator.trainable_variables)], d_grads,
                    tf.distribute.get_replica_context())

    def _compute_losses_and_gradients(self, inputs, targets, step_seed, first_example, schedule):
        """Forward and backward pass of both networks on this replica's examples, which start at `first_example`
        of the global batch (optionally XLA-compiled). While the encoder is frozen its batch normalization keeps
        its moving statistics; before the adversarial phase the generator's loss is the pixel loss alone; the
        share of examples that get colour hints grows with the schedule's hints_ramp."""
        config = self.config
        freezing = (backbones.frozen(~schedule["encoder_on"]) if config.freeze_encoder_steps
                    else contextlib.nullcontext())
        adversarial = losses.adversarial_loss(config.adversarial_loss,
                                              from_logits=self.discriminator_spec.outputs_logits)
        with example_noise.example_noise(step_seed, first_example, self.global_batch) as draws, \
                freezing, \
                tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            real_labels = fake_labels = None
            if config.noisy_labels:
                score_shape = tf.concat([tf.shape(inputs)[:1], self.discriminator.output_shape[1:]], axis=0)
                real_labels, fake_labels = losses.noisy_labels(score_shape, draws)
            hints = None
            if config.hints:
                targets, hints = color_hints.simulated(targets, draws, config.image_size, config.hints_recolor,
                                                        hinted=schedule["hints_ramp"])
            generated = self.generator(models.generator_inputs(self.generator, inputs, hints), training=True)
            real_scores = self._discriminate(inputs, targets, training=True)
            fake_scores = self._discriminate(inputs, generated, training=True)
            d_per_example = adversarial.discriminator(real_scores, fake_scores, real_labels, fake_labels)
            g_adversarial = adversarial.generator(fake_scores)
            if config.pretrain_steps:
                g_adversarial = tf.where(schedule["adversarial_on"], g_adversarial, tf.zeros_like(g_adversarial))
            reconstruction = losses.reconstruction_loss(config.reconstruction_loss, targets, generated)
            if config.hints_loss_weight:
                reconstruction += config.hints_loss_weight * losses.reconstruction_loss(
                    config.reconstruction_loss, targets, generated, mask=hints[..., hint_patches.CHANNELS - 1:])
            g_per_example = g_adversarial + config.reconstruction_weight * reconstruction
            g_loss = tf.nn.compute_average_loss(g_per_example, global_batch_size=self.global_batch)
            d_loss = tf.nn.compute_average_loss(d_per_example, global_batch_size=self.global_batch)
            g_scaled, d_scaled = self._scale(self.g_optimizer, g_loss), self._scale(self.d_optimizer, d_loss)
        g_grads = g_tape.gradient(g_scaled, self.generator.trainable_variables)
        d_grads = d_tape.gradient(d_scaled, self.discriminator.trainable_variables)
        return g_loss, d_loss, g_grads, d_grads

    @staticmethod
    def _scale(optimizer, loss):
        return optimizer.scale_loss(loss) if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else loss

    def _apply(self, updates, grads, context):
        """Applies one model's gradients `grads`, in the order of `updates`' (optimizer, variables) pairs. Where a
        decision depends on them, they are all-reduced first, so every replica decides on the same numbers: the
        global norm of --clip_norm, over everything the model updates, and the loss scaler's finite check (Keras's
        LossScaleOptimizer looks at the first local replica's gradients before any all-reduce, so replicas could
        otherwise disagree, hang a multi-worker job or let an overflow through)."""
        loss_scaled = isinstance(updates[0][0], keras.optimizers.LossScaleOptimizer)
        if self.config.clip_norm > 0 or loss_scaled:
            grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
            if self.config.clip_norm > 0:
                grads, _ = tf.clip_by_global_norm(grads, self.config.clip_norm)
            # Keras sums gradients over replicas inside apply(): hand each replica an equal share.
            grads = [g / self.num_replicas for g in grads]
        start = 0
        for optimizer, variables in updates:
            optimizer.apply(grads[start:start + len(variables)], variables)
            start += len(variables)

    def _update_ema(self, finite):
        decay = tf.where(finite, self.config.ema_decay, 1.0)
        for average, weight in zip(self.ema_generator.weights, self.generator.weights):
            average.assign(decay * average + (1.0 - decay) * tf.cast(weight, average.dtype))
