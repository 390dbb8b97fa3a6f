"""The names the model flags choose from, without TensorFlow: the trainer's flags and their --help are declared from
these before TensorFlow loads. models, backbones and losses build what each name means (tests/lib/modeling check
that their registries hold exactly these names)."""

NORMS = ("batch", "instance", "none")
PIX2PIX_ENCODER = "pix2pix"  # the U-Net's own encoder, trained from scratch
BACKBONES = ("resnet50v2", "convnext_tiny")  # Keras applications a U-Net encoder can be built on
ENCODERS = (PIX2PIX_ENCODER, *BACKBONES)
ADVERSARIAL_LOSSES = ("non_saturating", "lsgan", "hinge")
RECONSTRUCTION_LOSSES = ("l1", "mse")
