"""Pretrained encoders: the features each backbone hands the decoder, its batch normalization, its weights files."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from colorgan.modeling import backbones
from colorgan.modeling import models


@pytest.fixture(scope="module")
def weights_files(tmp_path_factory):
    """{backbone: a weights file of it without its top}, saved here from random weights (nothing downloads)."""
    folder = tmp_path_factory.mktemp("encoder_weights")
    files = {}
    for name, backbone in backbones.BACKBONES.items():
        application = backbone.application(include_top=False, weights=None, input_shape=(32, 32, 3))
        files[name] = str(folder / f"{name}.weights.h5")
        application.save_weights(files[name])
    return files


@pytest.mark.parametrize("name, sides", [("resnet50v2", [32, 16, 8, 4, 2]), ("convnext_tiny", [16, 8, 4, 2])])
def test_an_encoder_gives_its_features_at_each_scale_down_to_a_32nd(name, sides):
    encoder = backbones.encoder(name, 64)
    assert encoder.name == "encoder"
    assert [tuple(output.shape[1:3]) for output in encoder.outputs] == [(side, side) for side in sides]


def test_batch_normalization_is_synchronised_and_the_trainers_kind_can_freeze():
    for for_training, kind in ((True, backbones.FreezableBatchNormalization), (False, keras.layers.BatchNormalization)):
        norms = [layer for layer in backbones.encoder("resnet50v2", 32, for_training=for_training).layers
                 if isinstance(layer, keras.layers.BatchNormalization)]
        assert len(norms) > 30 and all(type(layer) is kind and layer.synchronized for layer in norms)
    # ConvNeXt: no batch statistics, no random draws (drop-path at rate 0 is an identity).
    layers = backbones.encoder("convnext_tiny", 32).layers
    assert not [layer for layer in layers if isinstance(layer, (keras.layers.BatchNormalization, keras.layers.Dropout))]


def test_frozen_batch_normalization_computes_and_keeps_the_moving_statistics():
    layer = backbones.FreezableBatchNormalization(synchronized=True)
    reference = keras.layers.BatchNormalization()
    x = tf.random.stateless_normal([4, 3, 3, 5], seed=[1, 2]) * 3.0 + 1.0
    layer.build(x.shape)
    reference.build(x.shape)
    layer.moving_mean.assign(tf.fill([5], 0.5))
    layer.moving_variance.assign(tf.fill([5], 2.0))
    reference.set_weights(layer.get_weights())
    before = [w.numpy() for w in layer.weights]
    with backbones.frozen(tf.constant(True)):
        frozen = layer(x, training=True)
    np.testing.assert_allclose(frozen, reference(x, training=False), atol=1e-5)
    for kept, weight in zip(before, layer.weights):
        np.testing.assert_array_equal(kept, weight.numpy())
    with backbones.frozen(tf.constant(False)):
        trained = layer(x, training=True)
    np.testing.assert_allclose(trained, reference(x, training=True), atol=1e-5)
    np.testing.assert_allclose(layer.moving_mean.numpy(), reference.moving_mean.numpy(), atol=1e-6)
    assert not np.allclose(layer.moving_mean.numpy(), before[2])


@pytest.mark.parametrize("name", sorted(backbones.BACKBONES))
def test_weights_load_from_a_file_and_a_wrong_file_is_one_line_naming_it(name, weights_files, tmp_path):
    encoder = backbones.encoder(name, 32, for_training=True)
    backbones.load_weights(encoder, name, weights_files[name])
    saved = backbones.BACKBONES[name].application(include_top=False, weights=weights_files[name],
                                                  input_shape=(32, 32, 3))
    assert len(encoder.weights) == len(saved.weights) > 50
    for loaded, expected in zip(encoder.weights, saved.weights):
        np.testing.assert_array_equal(loaded.numpy(), expected.numpy())
    other = next(file for backbone, file in weights_files.items() if backbone != name)
    garbage = tmp_path / "garbage.weights.h5"
    garbage.write_bytes(b"not an HDF5 file")
    for wrong in (other, str(garbage)):
        with pytest.raises(backbones.WeightsError, match=rf"^--encoder_weights={wrong}: ") as raised:
            backbones.load_weights(encoder, name, wrong)
        assert "\n" not in str(raised.value)


@pytest.mark.parametrize("name", sorted(backbones.BACKBONES))
def test_a_backbone_unet_maps_lightness_to_ab_and_takes_hints_beside_the_backbone(name):
    generator = models.build_generator("unet", 32, base_width=4, norm="instance", dropout=0.0, encoder=name,
                                       hints=True)
    assert [tuple(tensor.shape) for tensor in generator.inputs] == [(None, 32, 32, 1), (None, 32, 32, 3)]
    lightness = np.linspace(-1, 1, 2 * 32 * 32, dtype=np.float32).reshape(2, 32, 32, 1)
    alone = np.asarray(generator([lightness, np.zeros((2, 32, 32, 3), np.float32)]))
    hints = np.zeros((2, 32, 32, 3), np.float32)
    hints[:, 10:14, 10:14] = (0.8, -0.5, 1.0)
    hinted = np.asarray(generator([lightness, hints]))
    assert alone.shape == (2, 32, 32, 2) and np.abs(alone).max() <= 1.0 and not np.allclose(alone, hinted)
    # The backbone sees L* three times, in its own input range.
    rescaling = generator.get_layer("backbone_input")
    backbone = backbones.BACKBONES[name]
    assert (rescaling.scale, rescaling.offset) == (backbone.input_scale, backbone.input_offset)
    assert generator.get_layer("gray_rgb").output.shape[-1] == 3
    assert len(models.encoder_variables(generator)) > 50 and not models.encoder_variables(
        models.build_generator("unet", 32, base_width=4, depth=3))


def test_a_backbone_needs_a_multiple_of_32_and_a_lab_unet():
    with pytest.raises(ValueError, match="image size 48 is not a multiple of 32"):
        models.build_generator("unet", 48, base_width=4, encoder="convnext_tiny")
    for name in ("unet_rgb", "seed"):
        with pytest.raises(ValueError, match=f"generator '{name}' takes no pretrained encoder"):
            models.build_generator(name, 96, base_width=4, encoder="convnext_tiny")


def test_a_failed_imagenet_download_is_one_line_saying_what_to_do(monkeypatch):
    def offline(include_top, weights, input_shape):
        if weights == "imagenet":
            raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] "
                            "Temporary failure in name resolution")
        return backbones.BACKBONES["convnext_tiny"].application(include_top=include_top, weights=weights,
                                                                input_shape=input_shape)

    encoder = backbones.encoder("convnext_tiny", 32)
    monkeypatch.setitem(backbones.BACKBONES, "convnext_tiny",
                        dataclasses.replace(backbones.BACKBONES["convnext_tiny"], application=offline))
    with pytest.raises(backbones.WeightsError, match=r"^--encoder_weights=imagenet: Keras could not fetch the "
                                                     r"convnext_tiny weights \(URL fetch failure .*\); without "
                                                     r"internet, pass a weights file$"):
        backbones.load_weights(encoder, "convnext_tiny", "imagenet")
