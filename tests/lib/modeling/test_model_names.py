"""The TensorFlow-free names the trainer's flags offer are exactly what the registries build."""

from colorgan.modeling import backbones
from colorgan.modeling import losses
from colorgan.modeling import model_names
from colorgan.modeling import models


def test_the_flag_choices_are_the_registries_names():
    assert model_names.BACKBONES == tuple(backbones.BACKBONES)
    assert model_names.ENCODERS == (models.PIX2PIX_ENCODER, *backbones.BACKBONES)
    for name in model_names.ADVERSARIAL_LOSSES:
        assert losses.adversarial_loss(name).name == name
    assert set(model_names.NORMS) == {"batch", "instance", "none"}

