"""The generators and discriminators, by name: the seed's original pair and a pix2pix U-Net / PatchGAN pair.

The trainer picks models from GENERATORS and DISCRIMINATORS by flag name and builds them with one set of
hyperparameters (base_width, depth, norm); each model uses those it has. Every model's last layer computes in
float32, so outputs, and the losses taken on them, stay float32 under a mixed-precision policy.
"""

import dataclasses
import itertools
from typing import Callable

import keras
import tensorflow as tf

from colorgan.core import color
from colorgan.modeling import backbones
from colorgan.modeling import blocks
from colorgan.modeling import color_hints
from colorgan.modeling import hint_patches
from colorgan.modeling import model_names

NORMS = model_names.NORMS
PIX2PIX_ENCODER = model_names.PIX2PIX_ENCODER
ENCODERS = model_names.ENCODERS
MAX_UNET_DEPTH = 8

# The seed was written against tf.keras 2, whose LeakyReLU slope defaulted to 0.3 (Keras 3's leaky_relu activation
# defaults to 0.2): spelled out so the reproduction does not hang on a library default.
_SEED_LEAKY_SLOPE = 0.3
# (filters, kernel) of the seed generator's three encoder stages and of its three decoder stages, as in the original.
_SEED_ENCODER = (((16, 5), (32, 3), (32, 3)), ((32, 5), (64, 3), (64, 3)), ((64, 5), (128, 3), (128, 3)))
_SEED_DECODER = (((128, 3), (128, 3), (64, 5)), ((64, 3), (64, 3), (32, 5)), ((32, 3), (32, 3), (3, 5)))
# Valid convolutions shrink each side by kernel - 1; the decoder's transposed ones grow it back by as much.
_SEED_GENERATOR_SHRINK = sum(kernel - 1 for stage in _SEED_ENCODER for _, kernel in stage)
SEED_GENERATOR_MIN_SIZE = _SEED_GENERATOR_SHRINK + 1
# (filters, kernel) of the seed discriminator's four stages (two valid convolutions, then 2x2 max pooling each).
_SEED_DISCRIMINATOR_STAGES = ((32, 7), (64, 5), (128, 3), (256, 3))
_SEED_DISCRIMINATOR_DENSE = (512, 128, 16)

_UNET_WIDTH_MULTIPLIERS = (1, 2, 4, 8, 8, 8, 8, 8)
_UNET_DROPOUT_BLOCKS = 3
HINT_SPREAD_CELLS = (4, 16)  # cells per side of the scales hints are spread over, besides the whole image
_BACKBONE_DECODER_WIDTHS = (8, 4, 2, 1, 1)  # x base_width, decoding 1/32 -> 1/16, 1/8, 1/4, 1/2, 1/1
_PATCHGAN_WIDTH_MULTIPLIERS = (1, 2, 4)


@dataclasses.dataclass(frozen=True)
class GeneratorSpec:
    """builder(image_size, *, base_width, depth, norm, dropout, hints, encoder, for_training) -> keras.Model;
    color_space: what the model predicts; has_depth: its depth follows the image size unless set (the U-Net), so
    inference at another size must fix it; has_norm: it normalises as `norm` says; takes_hints: it can be built with
    colour hints as a second input (`color_hints`), a*b* colours, which only a Lab generator predicts;
    takes_encoder: it can be built on a pretrained backbone (`backbones`), which takes L*."""

    builder: Callable[..., keras.Model]
    color_space: color.ColorSpace
    has_depth: bool = False
    has_norm: bool = False
    takes_hints: bool = False
    takes_encoder: bool = False


@dataclasses.dataclass(frozen=True)
class DiscriminatorSpec:
    """builder(image_size, *, color_space, base_width, norm) -> keras.Model. conditional: it takes [inputs, targets]
    rather than targets alone; outputs_logits: its scores are logits, not probabilities; has_norm: it normalises as
    `norm` says."""

    builder: Callable[..., keras.Model]
    conditional: bool
    outputs_logits: bool
    has_norm: bool = False


# ------------------------------------------------------------------------------------------------ the seed pair


def seed_generator(image_size):
    """The seed's generator, layer for layer: gray [b, s, s, 1] in [0, 1] -> RGB [b, s, s, 3] (ReLU, as original)."""
    if image_size < SEED_GENERATOR_MIN_SIZE:
        raise ValueError(f"seed generator: image size {image_size} is below its minimum of {SEED_GENERATOR_MIN_SIZE} "
                         f"px (its valid convolutions take {_SEED_GENERATOR_SHRINK} px off each side)")
    gray = keras.Input((image_size, image_size, 1), name="gray")
    x = gray
    skips = []
    for stage, layers in enumerate(_SEED_ENCODER, start=1):
        for index, (filters, kernel) in enumerate(layers, start=1):
            x = keras.layers.Conv2D(filters, kernel, name=f"encoder{stage}_conv{index}")(x)
            x = keras.layers.LeakyReLU(negative_slope=_SEED_LEAKY_SLOPE, name=f"encoder{stage}_act{index}")(x)
        skips.append(x)
    x = keras.layers.Conv2D(128, 3, padding="same", activation="tanh", name="bottleneck")(x)
    last_stage = len(_SEED_DECODER)
    for stage, (layers, skip) in enumerate(zip(_SEED_DECODER, reversed(skips)), start=1):
        x = keras.layers.Concatenate(name=f"decoder{stage}_skip")([x, skip])
        for index, (filters, kernel) in enumerate(layers, start=1):
            is_output = stage == last_stage and index == len(layers)
            x = keras.layers.Conv2DTranspose(filters, kernel, activation="relu",
                                             dtype="float32" if is_output else None,
                                             name="rgb" if is_output else f"decoder{stage}_deconv{index}")(x)
    return keras.Model(gray, x, name="seed_generator")


def _seed_discriminator_feature_side(image_size):
    side = image_size
    for _, kernel in _SEED_DISCRIMINATOR_STAGES:
        side = (side - 2 * (kernel - 1)) // 2
    return side


SEED_DISCRIMINATOR_MIN_SIZE = next(size for size in itertools.count(1) if _seed_discriminator_feature_side(size) >= 1)


def seed_discriminator(image_size):
    """The seed's discriminator, as designed: RGB [b, s, s, 3] -> probability of being real [b, 1]. Its dense head
    makes the parameter count depend on the image size."""
    if image_size < SEED_DISCRIMINATOR_MIN_SIZE:
        raise ValueError(f"seed discriminator: image size {image_size} is below its minimum of "
                         f"{SEED_DISCRIMINATOR_MIN_SIZE} px (four stages of valid convolutions and 2x2 pooling)")
    rgb = keras.Input((image_size, image_size, 3), name="rgb")
    x = rgb
    for stage, (filters, kernel) in enumerate(_SEED_DISCRIMINATOR_STAGES, start=1):
        for index in (1, 2):
            x = keras.layers.Conv2D(filters, kernel, activation="relu", name=f"stage{stage}_conv{index}")(x)
        x = keras.layers.MaxPool2D(name=f"stage{stage}_pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for index, units in enumerate(_SEED_DISCRIMINATOR_DENSE, start=1):
        x = keras.layers.Dense(units, activation="relu", name=f"dense{index}")(x)
    score = keras.layers.Dense(1, dtype="float32", name="score")(x)
    probability = keras.layers.Activation("sigmoid", dtype="float32", name="probability")(score)
    return keras.Model(rgb, probability, name="seed_discriminator")


def seed_discriminator_logits(faithful):
    """The training view of a seed discriminator: the very same layers and weights, up to the "score" logits. The
    losses then take the numerically stable from-logits form instead of log(sigmoid(.)), which saturates."""
    return keras.Model(faithful.input, faithful.get_layer("score").output, name="seed_discriminator_logits")


# ---------------------------------------------------------------------------------------- the pix2pix pair


def _check_norm(norm):
    if norm not in NORMS:
        raise ValueError(f"norm {norm!r}: expected one of {NORMS}")


def unet_depth(image_size, depth=0):
    """The U-Net's down-sampling steps: `depth`, checked, or for 0 as many as `image_size` allows (at most 8)."""
    if depth == 0:
        depth = next((d for d in range(MAX_UNET_DEPTH, 0, -1) if image_size % 2 ** d == 0), 0)
        if depth == 0:
            raise ValueError(f"unet: image size {image_size} is odd; the U-Net must halve it at least once")
        return depth
    if not 1 <= depth <= MAX_UNET_DEPTH:
        raise ValueError(f"unet: depth {depth} is outside 1..{MAX_UNET_DEPTH} (0: automatic)")
    if image_size % 2 ** depth:
        raise ValueError(f"unet: image size {image_size} is not divisible by 2**{depth} = {2 ** depth} (depth {depth})")
    return depth


def unet_generator(image_size, *, color_space="lab", base_width=64, depth=0, norm="batch", dropout=0.5,
                   hints=False, encoder=PIX2PIX_ENCODER, for_training=False):
    """pix2pix U-Net (Isola et al. 2017). lab: L in [-1, 1] [b, s, s, 1] -> ab [b, s, s, 2], tanh; rgb: gray in
    [0, 1] -> RGB [b, s, s, 3], sigmoid, since RGB targets lie in [0, 1]. `dropout` is pix2pix's noise source in the
    innermost decoder blocks (0.5 there; 0 makes the generator deterministic); hints (lab only): a second input
    "hints" [b, s, s, 3] (`color_hints`) joined to L before the first convolution, as Zhang et al. 2017 feed theirs,
    with the same hints spread over the image (`_spread_hints`); encoder: a backbone of `backbones` (lab only; then
    `depth` is the backbone's own) rather than pix2pix's encoder (`_backbone_unet`); for_training: the trainer's
    model, with the trainer's dropout, LeakyReLU and batch normalization (`blocks`; others get Keras's own layers,
    which load without colorgan)."""
    space = _color_space("unet", color_space)
    _check_norm(norm)
    if encoder != PIX2PIX_ENCODER:
        if encoder not in backbones.BACKBONES:
            raise ValueError(f"unet: unknown encoder {encoder!r}: expected one of {list(ENCODERS)}")
        if space is not color.COLOR_SPACES["lab"]:
            raise ValueError(f"unet: a pretrained encoder takes L* (Lab); a generator predicting {space.name} "
                             f"does not have one")
        return _backbone_unet(image_size, encoder, base_width=base_width, norm=norm, dropout=dropout, hints=hints,
                              for_training=for_training)
    depth = unet_depth(image_size, depth)
    if hints and space is not color.COLOR_SPACES["lab"]:
        raise ValueError(f"unet: hints are a*b* colours; a generator predicting {space.name} does not take them")
    inputs = keras.Input((image_size, image_size, 1), name=space.input_name)
    x = inputs
    if hints:
        inputs = [inputs, keras.Input((image_size, image_size, hint_patches.CHANNELS), name="hints")]
        x = keras.layers.Concatenate(name="with_hints")([*inputs, *_spread_hints(inputs[1], image_size)])
    skips = []
    for index in range(depth):
        x = blocks.down_block(x, base_width * _UNET_WIDTH_MULTIPLIERS[index], norm if index else "none",
                              name=f"down{index + 1}",
                              activation_layer=blocks.TrainingLeakyReLU if for_training else keras.layers.LeakyReLU,
                              for_training=for_training)
        skips.append(x)
    # Each decoder block mirrors an encoder block: same width, then joined with that block's activation.
    for index, skip in enumerate(reversed(skips[:-1])):
        x = blocks.up_block(x, skip.shape[-1], norm, dropout if index < _UNET_DROPOUT_BLOCKS else 0.0,
                            blocks.ExampleDropout if for_training else keras.layers.Dropout, name=f"up{index + 1}",
                            for_training=for_training)
        x = keras.layers.Concatenate(name=f"up{index + 1}_skip")([x, skip])
    outputs = keras.layers.Conv2DTranspose(
        space.channels, 4, strides=2, padding="same", activation=space.output_activation,
        kernel_initializer=blocks.initializer(), dtype="float32", name=space.output_name)(x)
    return keras.Model(inputs, outputs, name=f"unet_{space.name}")


def _backbone_unet(image_size, encoder, *, base_width, norm, dropout, hints, for_training):
    """A U-Net on a pretrained backbone: L* copied to three channels in the backbone's input range -> its features
    at 1/2 .. 1/32 (`backbones.encoder`, a nested model "encoder"), decoded by pix2pix's up blocks, each joined with
    the backbone's feature at its scale and, at 1/2 and 1/1, with features made from the input. That input branch is
    where hints enter: a pretrained stem takes three channels, all of them L*."""
    backbone = backbones.BACKBONES[encoder]
    backbones.check_size(encoder, image_size)
    activation_layer = blocks.TrainingLeakyReLU if for_training else keras.layers.LeakyReLU
    lightness = keras.Input((image_size, image_size, 1), name=color.COLOR_SPACES["lab"].input_name)
    inputs, branch = lightness, lightness
    if hints:
        inputs = [lightness, keras.Input((image_size, image_size, hint_patches.CHANNELS), name="hints")]
        branch = keras.layers.Concatenate(name="with_hints")([*inputs, *_spread_hints(inputs[1], image_size)])
    gray_rgb = keras.layers.Concatenate(name="gray_rgb")([lightness] * 3)
    scaled = keras.layers.Rescaling(backbone.input_scale, backbone.input_offset, name="backbone_input")(gray_rgb)
    features = backbones.encoder(encoder, image_size, for_training=for_training)(scaled)
    skips = dict(zip((stride for stride, layer in zip(backbones.STRIDES, backbone.skips) if layer), features[:-1]))
    full = keras.layers.Conv2D(base_width, 3, padding="same", kernel_initializer=blocks.initializer(),
                               name="input_conv")(branch)
    full = activation_layer(negative_slope=blocks.LEAKY_SLOPE, name="input_act")(full)
    input_features = {1: full, 2: blocks.down_block(full, base_width, norm, name="input_down",
                                                    activation_layer=activation_layer, for_training=for_training)}
    x = features[-1]
    for index, (stride, width) in enumerate(zip((16, 8, 4, 2, 1), _BACKBONE_DECODER_WIDTHS)):
        x = blocks.up_block(x, base_width * width, norm, dropout if index < _UNET_DROPOUT_BLOCKS else 0.0,
                            blocks.ExampleDropout if for_training else keras.layers.Dropout, name=f"up{index + 1}",
                            for_training=for_training)
        joined = [x, *(source[stride] for source in (skips, input_features) if stride in source)]
        x = keras.layers.Concatenate(name=f"up{index + 1}_skip")(joined)
    space = color.COLOR_SPACES["lab"]
    outputs = keras.layers.Conv2D(space.channels, 3, padding="same", activation=space.output_activation,
                                  kernel_initializer=blocks.initializer(), dtype="float32", name=space.output_name)(x)
    return keras.Model(inputs, outputs, name=f"unet_{encoder}")


def _spread_hints(hints, image_size):
    """The sparse hints spread over the image at a few scales, with Keras's own layers (so generator.keras loads
    without colorgan): the whole image, and cells of HINT_SPREAD_CELLS per side, pooled and upsampled bilinearly,
    each unit-normalised. The hints' a*b* are zero off the mask, so a pooled (a*m, b*m, m) is w * (a, b, 1), with
    (a, b) the mean colour of the hints in reach and w their weight there; unit normalisation divides w out, leaving
    (a, b, 1) / |(a, b, 1)|, or zeros where no hint reaches. This normalised convolution (Knutsson & Westin 1993)
    hands the network a person's colours already carried as far as each scale reaches, so that it learns where they
    stop rather than how to carry them, which a small dataset teaches poorly (BUILD.md, "Colour hints")."""
    pooled = {"global": keras.layers.GlobalAveragePooling2D(keepdims=True, name="hints_global_pool")(hints)}
    for cells in HINT_SPREAD_CELLS:
        if image_size % cells == 0 and image_size > cells:
            pooled[cells] = keras.layers.AveragePooling2D(image_size // cells, name=f"hints_pool{cells}")(hints)
    spread = []
    for scale, values in pooled.items():
        upsampled = keras.layers.UpSampling2D(image_size // values.shape[1], interpolation="bilinear",
                                              name=f"hints_spread_{scale}")(values)
        spread.append(keras.layers.UnitNormalization(name=f"hints_colour_{scale}")(upsampled))
    return spread


def encoder_variables(generator):
    """The trainable variables of a generator's pretrained encoder (none for pix2pix's own)."""
    try:
        return generator.get_layer("encoder").trainable_variables
    except ValueError:
        return []


def _patchgan_output_side(image_size):
    side = image_size
    for _ in _PATCHGAN_WIDTH_MULTIPLIERS:
        side = -(-side // 2)
    return side - 2  # Two 4x4 valid convolutions, each after a 1-pixel zero padding.


def patchgan_discriminator(image_size, *, color_space="rgb", base_width=64, norm="batch"):
    """pix2pix's conditional 70x70 PatchGAN: [inputs [b, s, s, 1], targets [b, s, s, 3 or 2]] -> one real/fake
    logit per overlapping 70x70 patch, [b, s/8 - 2, s/8 - 2, 1] (30x30 at 256)."""
    space = _color_space("patchgan", color_space)
    _check_norm(norm)
    if _patchgan_output_side(image_size) < 1:
        minimum = next(size for size in itertools.count(1) if _patchgan_output_side(size) >= 1)
        raise ValueError(f"patchgan: image size {image_size} is below its minimum of {minimum} px")
    inputs = keras.Input((image_size, image_size, 1), name="inputs")
    targets = keras.Input((image_size, image_size, space.channels), name="targets")
    x = keras.layers.Concatenate(name="pair")([inputs, targets])
    for index, multiplier in enumerate(_PATCHGAN_WIDTH_MULTIPLIERS):
        # Only the trainer builds, and nothing exports, a PatchGAN: always its training layers.
        x = blocks.down_block(x, base_width * multiplier, norm if index else "none", name=f"down{index + 1}",
                              activation_layer=blocks.TrainingLeakyReLU, for_training=True)
    x = keras.layers.ZeroPadding2D(name="pad1")(x)
    x = keras.layers.Conv2D(base_width * 8, 4, use_bias=norm == "none", kernel_initializer=blocks.initializer(),
                            name="conv")(x)
    if norm != "none":
        x = blocks.normalization(norm, "conv_norm", for_training=True)(x)
    x = blocks.TrainingLeakyReLU(negative_slope=blocks.LEAKY_SLOPE, name="conv_act")(x)
    x = keras.layers.ZeroPadding2D(name="pad2")(x)
    logits = keras.layers.Conv2D(1, 4, kernel_initializer=blocks.initializer(), dtype="float32", name="logits")(x)
    return keras.Model([inputs, targets], logits, name="patchgan")


# ------------------------------------------------------------------------------------------------- registry


def _seed_generator_builder(image_size, **_):
    return seed_generator(image_size)  # A fixed design: no width, depth or norm to set.


def _unet_builder(color_space):
    def build(image_size, *, base_width, depth, norm, dropout, hints, encoder, for_training):
        return unet_generator(image_size, color_space=color_space, base_width=base_width, depth=depth, norm=norm,
                              dropout=dropout, hints=hints, encoder=encoder, for_training=for_training)

    return build


def _seed_discriminator_builder(image_size, *, color_space, **_):
    space = _color_space("seed discriminator", color_space)
    if space is not color.COLOR_SPACES["rgb"]:
        raise ValueError(f"seed discriminator: color space {space.name!r}: it judges RGB images only")
    return seed_discriminator_logits(seed_discriminator(image_size))


def _patchgan_builder(image_size, *, color_space, base_width, norm):
    return patchgan_discriminator(image_size, color_space=color_space, base_width=base_width, norm=norm)


GENERATORS = {
    "seed": GeneratorSpec(_seed_generator_builder, color_space=color.COLOR_SPACES["rgb"]),
    "unet": GeneratorSpec(_unet_builder("lab"), color_space=color.COLOR_SPACES["lab"], has_depth=True,
                          has_norm=True, takes_hints=True, takes_encoder=True),
    "unet_rgb": GeneratorSpec(_unet_builder("rgb"), color_space=color.COLOR_SPACES["rgb"], has_depth=True,
                              has_norm=True),
}
DISCRIMINATORS = {
    # The training view: logits, whose sigmoid is the faithful model's output (seed_discriminator).
    "seed": DiscriminatorSpec(_seed_discriminator_builder, conditional=False, outputs_logits=True),
    "patchgan": DiscriminatorSpec(_patchgan_builder, conditional=True, outputs_logits=True, has_norm=True),
}


def _color_space(model, name):
    try:
        return color.color_space(name)
    except ValueError as e:
        raise ValueError(f"{model}: {e}") from None


def _spec(registry, kind, name):
    if name not in registry:
        raise ValueError(f"unknown {kind} {name!r}: expected one of {sorted(registry)}")
    return registry[name]


def build_generator(name, image_size, *, base_width=64, depth=0, norm="batch", dropout=0.5, hints=False,
                    encoder=PIX2PIX_ENCODER, for_training=False, **unused):
    """The generator registered as `name`. `unused` takes the trainer's other settings, so one set of keyword
    arguments serves every model. for_training: the trainer's model (see unet_generator)."""
    spec = _spec(GENERATORS, "generator", name)
    if hints and not spec.takes_hints:
        raise ValueError(f"generator {name!r} takes no colour hints (a Lab U-Net does: unet)")
    if encoder != PIX2PIX_ENCODER and not spec.takes_encoder:
        raise ValueError(f"generator {name!r} takes no pretrained encoder (a Lab U-Net does: unet)")
    return spec.builder(image_size, base_width=base_width, depth=depth, norm=norm, dropout=dropout, hints=hints,
                        encoder=encoder, for_training=for_training)


def takes_hints(generator):
    """Whether a built generator has the colour hints input."""
    return len(generator.inputs) == 2


def generator_inputs(generator, model_input, hints=None):
    """What `generator` is called on: its input alone, or with `hints` ([b, s, s, 3]; None: no hints, so a hints
    generator colorizes alone)."""
    if not takes_hints(generator):
        if hints is not None:
            raise ValueError(f"{generator.name} takes no colour hints")
        return model_input
    return [model_input, color_hints.none_like(model_input) if hints is None else tf.cast(hints, model_input.dtype)]


def build_discriminator(name, image_size, *, color_space="rgb", base_width=64, depth=0, norm="batch", **unused):
    """The discriminator registered as `name`, judging targets in `color_space`. `depth` and `unused` are accepted
    for one shared set of keyword arguments; no discriminator has a depth to set."""
    return _spec(DISCRIMINATORS, "discriminator", name).builder(image_size, color_space=color_space,
                                                                base_width=base_width, norm=norm)
