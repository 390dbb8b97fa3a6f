"""The model zoo: the seed pair's exact parameter counts and sizes, the pix2pix pair's shapes and counts, float32
outputs under mixed precision, and the registry the trainer builds from."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from colorgan.core import color
from colorgan.modeling import blocks
from colorgan.modeling import example_noise
from colorgan.modeling import models

RNG = np.random.default_rng(0)
# The TensorFlow pix2pix tutorial's generator (3 input and 3 output channels, 256 px, width 64, depth 8) as its
# model.summary() prints it; it puts no bias on its first, unnormalized, convolution.
PIX2PIX_TUTORIAL_GENERATOR_PARAMS = 54_425_859
BATCH_NORM_PARAMS_PER_CHANNEL = 4  # gamma, beta, moving mean, moving variance
INSTANCE_NORM_PARAMS_PER_CHANNEL = 2  # gamma, beta


def _images(batch, size, channels, low=0.0, high=1.0):
    return RNG.uniform(low, high, (batch, size, size, channels)).astype("float32")


def _unet_params(base_width, depth, in_channels, out_channels, norm_params, first_bias=True):
    """The pix2pix U-Net's parameter count, worked out block by block independently of the model code."""
    widths = [base_width * multiplier for multiplier in (1, 2, 4, 8, 8, 8, 8, 8)[:depth]]
    total = 16 * in_channels * widths[0] + (widths[0] if first_bias else 0)
    for previous, width in zip(widths, widths[1:]):
        total += 16 * previous * width + norm_params * width
    incoming = widths[-1]
    for width in reversed(widths[:-1]):
        total += 16 * incoming * width + norm_params * width
        incoming = 2 * width  # Joined with the mirrored encoder activation.
    return total + 16 * incoming * out_channels + out_channels


@pytest.fixture(params=["mixed_float16", "mixed_bfloat16"])
def mixed_policy(request):
    keras.mixed_precision.set_global_policy(request.param)
    try:
        yield request.param
    finally:
        keras.mixed_precision.set_global_policy("float32")


# ------------------------------------------------------------------------------------------------ seed pair


def test_seed_generator_has_the_original_parameter_count_at_any_size():
    for size in (150, 96):
        assert models.seed_generator(size).count_params() == 1_406_403


def test_seed_generator_maps_gray_to_non_negative_rgb_of_the_same_size():
    for batch, size in ((1, 150), (2, 96)):
        output = np.asarray(models.seed_generator(size)(_images(batch, size, 1)))
        assert output.shape == (batch, size, size, 3)
        assert output.min() >= 0.0


def test_seed_generator_rejects_sizes_its_valid_convolutions_cannot_take():
    assert models.seed_generator(25).output.shape == (None, 25, 25, 3)
    with pytest.raises(ValueError, match="seed generator: image size 24 .* minimum of 25"):
        models.seed_generator(24)


def test_seed_discriminator_has_the_original_parameter_count_at_150():
    model = models.seed_discriminator(150)
    assert model.count_params() == 3_480_769
    assert model.output.shape == (None, 1)


def test_seed_discriminator_smallest_size_is_92():
    assert models.SEED_DISCRIMINATOR_MIN_SIZE == 92
    assert models.seed_discriminator(92).get_layer("flatten").output.shape == (None, 256)
    with pytest.raises(ValueError, match="seed discriminator: image size 91 .* minimum of 92"):
        models.seed_discriminator(91)


def test_seed_discriminator_training_view_is_the_logit_of_the_faithful_model_on_the_same_weights():
    faithful = models.seed_discriminator(92)
    view = models.seed_discriminator_logits(faithful)
    assert len(view.weights) == len(faithful.weights) == 24
    assert all(a is b for a, b in zip(view.weights, faithful.weights))
    # A shifted score: the comparison then holds away from 0, where the sigmoid is far from linear.
    faithful.get_layer("score").bias.assign([3.0])
    images = _images(4, 92, 3)
    logits = np.asarray(view(images))
    assert logits.shape == (4, 1)
    assert logits.min() > 2.0
    np.testing.assert_allclose(1.0 / (1.0 + np.exp(-logits)), np.asarray(faithful(images)), rtol=1e-5, atol=1e-6)


def test_seed_discriminator_in_the_registry_is_the_training_view_and_rgb_only():
    spec = models.DISCRIMINATORS["seed"]
    assert (spec.conditional, spec.outputs_logits) == (False, True)
    model = models.build_discriminator("seed", 92)
    assert model.output.shape == (None, 1)
    assert [layer.name for layer in model.layers][-1] == "score"
    with pytest.raises(ValueError, match="seed discriminator: color space 'lab'"):
        models.build_discriminator("seed", 92, color_space="lab")


# ------------------------------------------------------------------------------------------------ U-Net


def test_unet_depth_takes_as_many_halvings_as_the_size_allows_up_to_8():
    assert [models.unet_depth(size) for size in (512, 256, 150, 96, 64, 2)] == [8, 8, 1, 5, 6, 1]
    assert models.unet_depth(64, 3) == 3
    with pytest.raises(ValueError, match="unet: image size 75 is odd"):
        models.unet_depth(75)
    with pytest.raises(ValueError, match=r"unet: image size 36 is not divisible by 2\*\*3 = 8"):
        models.unet_depth(36, 3)
    with pytest.raises(ValueError, match="unet: depth 9 is outside 1..8"):
        models.unet_depth(512, 9)


def test_unet_lab_predicts_ab_in_tanh_range():
    model = models.unet_generator(32, color_space="lab", base_width=4, depth=3)
    output = np.asarray(model(_images(2, 32, 1, -1.0, 1.0), training=True))
    assert output.shape == (2, 32, 32, 2)
    assert -1.0 <= output.min() and output.max() <= 1.0
    assert "down3_conv" in [layer.name for layer in model.layers]
    assert "down4_conv" not in [layer.name for layer in model.layers]


def test_unet_automatic_depth_at_64_is_6():
    model = models.unet_generator(64, base_width=2)
    names = [layer.name for layer in model.layers]
    assert "down6_conv" in names and "down7_conv" not in names
    assert model(_images(1, 64, 1, -1.0, 1.0)).shape == (1, 64, 64, 2)


def test_unet_rgb_predicts_three_channels_in_zero_one():
    model = models.unet_generator(32, color_space="rgb", base_width=4, depth=3)
    output = np.asarray(model(_images(2, 32, 1)))
    assert output.shape == (2, 32, 32, 3)
    assert 0.0 <= output.min() and output.max() <= 1.0


def test_unet_parameter_count_matches_the_pix2pix_tutorial():
    model = models.unet_generator(256, color_space="rgb", base_width=64, depth=8)
    # Ours sees 1 gray channel, not 3, and keeps the bias of the unnormalized first convolution.
    assert model.count_params() == PIX2PIX_TUTORIAL_GENERATOR_PARAMS - 16 * 2 * 64 + 64 == _unet_params(
        64, 8, 1, 3, BATCH_NORM_PARAMS_PER_CHANNEL)
    assert model.output.shape == (None, 256, 256, 3)


@pytest.mark.parametrize("size, base_width, depth, color_space, norm, norm_params", [
    (32, 4, 3, "lab", "batch", BATCH_NORM_PARAMS_PER_CHANNEL),
    (64, 8, 5, "rgb", "batch", BATCH_NORM_PARAMS_PER_CHANNEL),
    (64, 8, 5, "lab", "instance", INSTANCE_NORM_PARAMS_PER_CHANNEL),
])
def test_unet_parameter_count_scales_with_width_and_depth(size, base_width, depth, color_space, norm, norm_params):
    model = models.unet_generator(size, color_space=color_space, base_width=base_width, depth=depth, norm=norm)
    channels = color.color_space(color_space).channels
    assert model.count_params() == _unet_params(base_width, depth, 1, channels, norm_params)


def test_unet_normalization_choices():
    def norm_layers(norm, size=16, depth=4):
        model = models.unet_generator(size, base_width=2, depth=depth, norm=norm)
        return {layer.name: type(layer).__name__ for layer in model.layers if layer.name.endswith("_norm")}

    batch = norm_layers("batch")
    assert "down1_norm" not in batch and batch["down4_norm"] == "BatchNormalization"
    instance = norm_layers("instance")
    assert instance["down3_norm"] == "GroupNormalization"
    # The innermost activation is 1x1 there: instance norm would make it a constant.
    assert "down4_norm" not in instance
    assert norm_layers("none") == {}
    with pytest.raises(ValueError, match="norm 'layer'"):
        norm_layers("layer")


def test_unet_dropout_on_the_three_innermost_decoder_blocks_only():
    model = models.unet_generator(64, base_width=2, depth=6)
    dropouts = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropouts == ["up1_dropout", "up2_dropout", "up3_dropout"]


def test_training_leaky_relu_has_keras_values_and_gradients():
    """Its gradient reads the output instead of the input (so Grappler's fusion succeeds): the same numbers."""
    x = tf.constant(np.random.default_rng(0).normal(size=(2, 5, 5, 3)), tf.float32)
    upstream = tf.constant(np.random.default_rng(1).normal(size=(2, 5, 5, 3)), tf.float32)
    results = []
    for layer in (keras.layers.LeakyReLU(negative_slope=0.2), blocks.TrainingLeakyReLU(negative_slope=0.2)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
        results.append((y.numpy(), tape.gradient(y, x, output_gradients=upstream).numpy()))
    np.testing.assert_array_equal(results[1][0], results[0][0])
    np.testing.assert_array_equal(results[1][1], results[0][1])
    np.testing.assert_allclose(np.unique((results[1][1] / upstream.numpy()).round(5)), [0.2, 1.0])


def test_trainer_dropout_masks_each_example_by_its_index_in_the_global_batch():
    """In the training step, an example's dropout mask depends on (seed, data position, its global index) only:
    the same rows on one replica holding 4 examples or two holding 2 each; another position, other masks."""
    model = models.unet_generator(32, base_width=4, depth=3, norm="none", for_training=True)
    assert [type(layer) for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [
        blocks.ExampleDropout] * 2
    layer = blocks.ExampleDropout(0.5, name="up1_dropout")
    ones = tf.ones([4, 3, 3, 8])

    def drop(position, first_example, rows):
        with example_noise.example_noise(example_noise.step_seed(5, position), first_example, 4):
            return layer(ones[rows], training=True).numpy()

    whole = drop(7, 0, slice(0, 4))
    assert set(np.unique(whole)) == {0.0, 2.0} and 0.3 < np.mean(whole == 0) < 0.7
    np.testing.assert_array_equal(np.concatenate([drop(7, 0, slice(0, 2)), drop(7, 2, slice(2, 4))]), whole)
    np.testing.assert_array_equal(drop(7, 0, slice(0, 4)), whole)
    assert np.mean(drop(8, 0, slice(0, 4)) != whole) > 0.3
    assert not np.array_equal(whole[0], whole[1])  # each example its own mask
    np.testing.assert_array_equal(layer(ones, training=False).numpy(), ones.numpy())


# ------------------------------------------------------------------------------------------------ PatchGAN


def test_patchgan_at_256_scores_30x30_patches_with_the_pix2pix_parameter_count():
    model = models.patchgan_discriminator(256)
    assert model.output.shape == (None, 30, 30, 1)
    expected = (16 * 4 * 64 + 64  # gray + RGB in, no norm, bias
                + 16 * 64 * 128 + 4 * 128 + 16 * 128 * 256 + 4 * 256 + 16 * 256 * 512 + 4 * 512 + 16 * 512 + 1)
    assert model.count_params() == expected == 2_768_449


@pytest.mark.parametrize("size, side", [(17, 1), (32, 2), (40, 3), (64, 6)])
@pytest.mark.parametrize("color_space", ["rgb", "lab"])
def test_patchgan_judges_pairs_in_either_color_space(size, side, color_space):
    model = models.patchgan_discriminator(size, color_space=color_space, base_width=2)
    channels = color.color_space(color_space).channels
    logits = model([_images(2, size, 1), _images(2, size, channels)], training=True)
    assert logits.shape == (2, side, side, 1)


def test_patchgan_rejects_too_small_images():
    with pytest.raises(ValueError, match="patchgan: image size 16 is below its minimum of 17"):
        models.patchgan_discriminator(16)


# ------------------------------------------------------------------------------------------- mixed precision


@pytest.mark.parametrize("name, size", [("seed", 32), ("unet", 32), ("unet_rgb", 32)])
def test_generators_output_float32_under_mixed_precision(mixed_policy, name, size):
    model = models.build_generator(name, size, base_width=2)
    assert model.layers[1].compute_dtype == mixed_policy.removeprefix("mixed_")
    assert model(_images(1, size, 1)).dtype == "float32"


@pytest.mark.parametrize("name, size", [("seed", 92), ("patchgan", 32)])
def test_discriminators_output_float32_under_mixed_precision(mixed_policy, name, size):
    model = models.build_discriminator(name, size, base_width=2)
    assert model.layers[-2].compute_dtype == mixed_policy.removeprefix("mixed_")
    targets = _images(1, size, 3)
    scores = model([_images(1, size, 1), targets]) if models.DISCRIMINATORS[name].conditional else model(targets)
    assert scores.dtype == "float32"


def test_seed_discriminator_probability_is_float32_under_mixed_precision(mixed_policy):
    assert models.seed_discriminator(92)(_images(1, 92, 3)).dtype == "float32"


# ------------------------------------------------------------------------------------------------ registry


def test_registry_names_and_color_spaces():
    assert {name: spec.color_space.name for name, spec in models.GENERATORS.items()} == {
        "seed": "rgb", "unet": "lab", "unet_rgb": "rgb"}
    assert sorted(models.DISCRIMINATORS) == ["patchgan", "seed"]


@pytest.mark.parametrize("generator, discriminator, size", [
    ("seed", "seed", 92), ("seed", "patchgan", 32), ("unet", "patchgan", 32), ("unet_rgb", "patchgan", 32),
    ("unet_rgb", "seed", 96)])
def test_every_registered_pair_builds_and_scores_the_generator_output_as_the_trainer_does(
        generator, discriminator, size):
    hparams = dict(base_width=2, depth=0, norm="instance", unrelated_setting=True)
    color_space = models.GENERATORS[generator].color_space
    inputs = keras.ops.convert_to_tensor(_images(2, size, 1))
    generated = models.build_generator(generator, size, **hparams)(inputs, training=True)
    assert generated.shape == (2, size, size, color.color_space(color_space).channels)
    critic = models.build_discriminator(discriminator, size, color_space=color_space, **hparams)
    scores = critic([inputs, generated]) if models.DISCRIMINATORS[discriminator].conditional else critic(generated)
    assert scores.shape[0] == 2 and np.all(np.isfinite(np.asarray(scores)))


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown generator 'resnet': expected one of \['seed', 'unet', 'unet_rgb'\]"):
        models.build_generator("resnet", 64)
    with pytest.raises(ValueError, match=r"unknown discriminator 'critic': expected one of \['patchgan', 'seed'\]"):
        models.build_discriminator("critic", 64)


def test_a_hints_unet_takes_lightness_and_hints_and_the_hints_change_its_output():
    generator = models.build_generator("unet", 32, base_width=4, depth=3, norm="none", dropout=0.0, hints=True)
    assert [tuple(tensor.shape) for tensor in generator.inputs] == [(None, 32, 32, 1), (None, 32, 32, 3)]
    assert models.takes_hints(generator)
    lightness = keras.ops.convert_to_tensor(_images(2, 32, 1) * 2 - 1)
    alone = np.asarray(generator(models.generator_inputs(generator, lightness)))
    hints = np.zeros((2, 32, 32, 3), np.float32)
    hints[:, 10:14, 10:14] = (0.8, -0.5, 1.0)
    hinted = np.asarray(generator(models.generator_inputs(generator, lightness, hints)))
    assert alone.shape == hinted.shape == (2, 32, 32, 2) and not np.allclose(alone, hinted)
    plain = models.build_generator("unet", 32, base_width=4, depth=3, norm="none", dropout=0.0)
    assert not models.takes_hints(plain) and models.generator_inputs(plain, lightness) is lightness
    # The first convolution sees the three hint channels and three per spread scale (the image, 4 and 16 cells a
    # side); nothing else changes.
    assert generator.count_params() - plain.count_params() == 4 * 4 * (3 + 3 * 3) * 4


def test_a_hints_unet_spreads_the_points_colours_over_the_image_with_keras_layers_only():
    generator = models.build_generator("unet", 32, base_width=4, depth=3, norm="none", dropout=0.0, hints=True)
    hints = np.zeros((1, 32, 32, 3), np.float32)
    hints[0, 1:3, 1:3] = (0.6, -0.3, 1.0)  # in the top-left cell of 8x8 px (4 cells a side)
    hints[0, 28:30, 28:30] = (0.2, 0.1, 1.0)  # in the bottom-right one
    names = ["hints_colour_global", "hints_colour_4", "hints_colour_16"]
    spread = keras.Model(generator.inputs, [generator.get_layer(name).output for name in names])
    whole, cells4, _ = (np.asarray(values)[0] for values in spread([np.zeros((1, 32, 32, 1), np.float32), hints]))

    def unit(a, b):
        return np.array([a, b, 1.0]) / np.linalg.norm([a, b, 1.0])

    # Everywhere: the mean colour of both points, whatever their weight.
    np.testing.assert_allclose(whole, np.broadcast_to(unit(0.4, -0.1), whole.shape), atol=1e-5)
    # Near a point: that point's colour; in cells no point reaches: nothing.
    np.testing.assert_allclose(cells4[3, 4], unit(0.6, -0.3), atol=1e-5)
    np.testing.assert_allclose(cells4[27, 27], unit(0.2, 0.1), atol=1e-5)
    np.testing.assert_allclose(cells4[12:20, 16:20], 0.0, atol=1e-6)
    # generator.keras must load without colorgan.
    assert {type(layer).__module__.split(".")[0] for layer in generator.layers} == {"keras"}


def test_hints_with_a_generator_that_cannot_take_them_are_refused():
    for name in ("seed", "unet_rgb"):
        with pytest.raises(ValueError, match=f"generator '{name}' takes no colour hints"):
            models.build_generator(name, 96, base_width=2, hints=True)
