"""ColorGAN: GAN colorization of grayscale photos with TensorFlow."""
