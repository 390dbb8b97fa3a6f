"""Tests of colorgan.training.gan in process: one step of the GAN on a fixed batch, under a one-device strategy."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from run_dirs import TINY

from colorgan.data import input_pipeline
from colorgan.modeling import example_noise
from colorgan.training import gan
from colorgan.training import train_config


def _gan(**overrides):
    """A freshly initialised tiny U-Net pair (the same weights in every call) and a fixed batch."""
    config = dataclasses.replace(train_config.TrainConfig(), data_dir="unused", model_dir="unused", generator="unet",
                                 batch_size=4, **{**TINY, **overrides})
    keras.utils.set_random_seed(0)
    tf.random.set_seed(None)  # as trainer.configure_process: a global seed breaks tf.data's tensor-seeded shuffle
    model = gan.Gan(config, tf.distribute.OneDeviceStrategy("/cpu:0"))
    # Logits of about 2, not about 0: at logit 0 binary cross-entropy is log 2 whatever the target.
    model.discriminator.get_layer("logits").bias.assign([2.0])
    rng = np.random.default_rng(1)
    inputs = tf.constant(rng.uniform(-1, 1, (4, 32, 32, 1)), tf.float32)
    targets = tf.constant(rng.uniform(-1, 1, (4, 32, 32, 2)), tf.float32)
    return model, inputs, targets


def _first_step(**overrides):
    """(g_loss, d_loss) of the first step on the fixed batch."""
    model, inputs, targets = _gan(**overrides)
    g_loss, d_loss, finite = tf.function(model.train_step)((inputs, targets))
    assert bool(finite) and int(model.batches_consumed.numpy()) == 1
    return float(g_loss), float(d_loss)


def test_noisy_labels_change_the_discriminator_loss_and_are_reproducible():
    """seed150.cfg depends on --noisy_labels: the flag must reach the loss (targets 0.9..1 / 0..0.1, not 1 / 0),
    and the same seed and data position must draw the same labels."""
    _, plain = _first_step()
    _, noisy = _first_step(noisy_labels=True)
    _, again = _first_step(noisy_labels=True)
    _, other_seed = _first_step(noisy_labels=True, seed=1)
    assert abs(noisy - plain) > 1e-3
    assert noisy == again
    assert other_seed != noisy


def test_dropout_reaches_the_generator_loss_and_is_reproducible():
    g_plain, _ = _first_step()
    g_dropout, _ = _first_step(dropout=0.5)
    assert abs(g_dropout - g_plain) > 1e-4
    assert _first_step(dropout=0.5)[0] == g_dropout


def test_the_hints_ramp_grows_the_share_of_examples_with_points_from_none_to_all():
    """--hints_ramp_steps: at step 0 no example gets points, so recolor and the hinted-pixel loss have nothing to act
    on; from the ramp's last step on, the points are drawn as without a ramp."""
    def first_step_at(step, **overrides):
        model, inputs, targets = _gan(hints=True, **overrides)
        model.step.assign(step)  # the draws follow batches_consumed (0 in every call), the ramp the applied step
        return float(tf.function(model.train_step)((inputs, targets))[0])

    strong = dict(hints_recolor=1.0, hints_loss_weight=3.0)
    assert first_step_at(0, hints_ramp_steps=100) == first_step_at(0, hints_ramp_steps=100, **strong)
    assert first_step_at(100, hints_ramp_steps=100, **strong) == first_step_at(0, **strong)
    assert first_step_at(0, hints_ramp_steps=100, **strong) != first_step_at(0, **strong)


def test_mixed_float16_gradients_are_those_of_the_scaled_loss():
    """Under mixed_float16, small float16 gradients underflow unless the loss is scaled before the backward pass:
    the gradients handed to the LossScaleOptimizer are the float32 ones times its current scale."""
    def gradients(model, inputs, targets):
        step_seed = example_noise.step_seed(0, 0)
        _, _, g_grads, d_grads = tf.function(model._compute_losses_and_gradients)(
            inputs, targets, step_seed, 0,
            dict(encoder_on=tf.constant(True), adversarial_on=tf.constant(True), hints_ramp=tf.constant(1.0)))
        return np.concatenate([tf.reshape(tf.cast(g, tf.float32), [-1]).numpy() for g in g_grads + d_grads])

    reference = gradients(*_gan())
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model, inputs, targets = _gan(precision="mixed_float16")
        scaled = gradients(model, inputs, targets)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    scale = float(model.g_optimizer.dynamic_scale.numpy())
    assert scale == 2.0 ** 15 == float(model.d_optimizer.dynamic_scale.numpy())
    sizeable = np.abs(reference) > 1e-3 * np.abs(reference).max()
    ratio = np.median(scaled[sizeable] / reference[sizeable])
    assert abs(ratio / scale - 1) < 0.02, ratio


def test_device_colour_maths_take_uint8_rgb_and_give_the_host_pipelines_numbers():
    """--color_maths=device: the step makes (inputs, targets) from the uint8 batch as the input pipeline would (the
    same ops), so the first step's losses are the host mode's to float32 rounding (the step's graph optimiser may
    order the conversion's arithmetic otherwise); auto is host on a CPU."""
    rgb = tf.constant(np.random.default_rng(2).integers(0, 256, (4, 32, 32, 3)), tf.uint8)
    losses = {}
    for mode in ("host", "device", "auto"):
        model, _, _ = _gan(color_maths=mode)
        batch = input_pipeline.model_pair(model.color_space, rgb) if mode != "device" else rgb
        assert model.color_maths_on_device == (mode == "device")
        losses[mode] = [float(value) for value in tf.function(model.train_step)(batch)[:2]]
    assert losses["host"] == losses["auto"]
    np.testing.assert_allclose(losses["device"], losses["host"], rtol=1e-6)


def test_xla_compiles_the_replica_pass_and_nothing_else():
    """--xla: the step's graph calls the forward/backward pass as a function marked for XLA compilation
    (_XlaMustCompile); without the flag no function is."""

    def must_compile(**overrides):
        model, inputs, targets = _gan(**overrides)
        graph = tf.function(model.train_step).get_concrete_function((inputs, targets)).graph
        library = graph.as_graph_def().library.function
        return sorted(f.signature.name for f in library if f.attr["_XlaMustCompile"].b)

    compiled = must_compile(xla=True)
    assert len(compiled) == 1 and "compute_losses_and_gradients" in compiled[0]
    assert must_compile() == []
