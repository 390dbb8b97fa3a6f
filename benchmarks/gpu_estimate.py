"""GPU figures on paper for a training config, from arithmetic a reader can check. ESTIMATES, not measurements: no
machine of this project can run TensorFlow on a GPU.

  python benchmarks/gpu_estimate.py                      # launch/configs/unet256.cfg at its batch 32

1. Compute: the FLOPs of one training step, counted from the Keras models the trainer builds (every Conv2D,
   Conv2DTranspose and Dense layer: 2 x multiply-adds). A step runs the generator forward and backward (3 x G: the
   backward pass costs twice the forward, activations and weights) and the discriminator on the real and the
   generated batch, forward and backward for its own loss (2 x 3 x D), plus the activation gradients through its
   generated branch for the generator's loss (1 x D): 3 G + 7 D per example. Normalisation, activations, losses
   and the optimizers are left out of the FLOPs (element-wise: memory-bound, counted in 2.).
2. Memory traffic of the element-wise ops: every layer output is read and written by its normalisation and
   activation, forward and backward (about 8 passes over each activation), in bf16: bytes / HBM bandwidth.
   This is the time XLA's fusion can win back (it keeps most of those passes in registers).
3. Step time at 40% model FLOP utilisation in bf16 on an A100 (312 TFLOP/s dense bf16, 2.0 TB/s) and an H100 SXM
   (989 TFLOP/s dense bf16, 3.35 TB/s), the examples/s that gives, and the host cores the input pipeline needs to
   keep up: its examples/s, measured here on 256 px JPEG records over the whole machine, divided by its cores.
Ends with one JSON line.
"""

import json
import os
import tempfile
import time

from absl import app
from absl import flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CONFIG = flags.DEFINE_string("config", os.path.join(REPO_ROOT, "launch", "configs", "unet256.cfg"),
                              "Trainer flagfile whose models and batch are estimated.")
_MFU = flags.DEFINE_float("mfu", 0.40, "Model FLOP utilisation assumed.")
_PIPELINE_BATCHES = flags.DEFINE_integer("pipeline_batches", 40, "Batches timed when measuring the input pipeline.")
_CROPS = flags.DEFINE_integer("crops", 512, "256 px photo crops in the records the input pipeline reads.")

# Dense bf16 peak (no sparsity) and HBM bandwidth, from NVIDIA's data sheets.
GPUS = {"A100 (SXM, 80 GB)": (312e12, 2.0e12), "H100 (SXM)": (989e12, 3.35e12)}
ELEMENTWISE_PASSES = 8  # norm and activation, forward and backward, each reading and writing the activation
BF16_BYTES = 2


def leaf_layers(model):
    """The layers of a Keras model, nested models (a pretrained encoder, ConvNeXt's stages) opened up."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer


def layer_flops(model):
    """{layer name: FLOPs of one example's forward pass} for the convolution and dense layers of a Keras model."""
    import keras

    flops = {}
    for layer in leaf_layers(model):
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, height, width, channels_in = layer.input.shape
            kernel_h, kernel_w = layer.kernel_size
            flops[layer.name] = 2 * height * width * channels_in * kernel_h * kernel_w * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            _, height, width, channels_out = layer.output.shape
            kernel_h, kernel_w = layer.kernel_size
            flops[layer.name] = 2 * height * width * channels_out * kernel_h * kernel_w * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            flops[layer.name] = 2 * layer.input.shape[-1] * layer.units
    return flops


def activation_elements(model):
    """Elements of every layer output of one example (what element-wise ops stream through memory)."""
    total = 0
    for layer in leaf_layers(model):
        outputs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
        for output in outputs:
            size = 1
            for dim in output.shape[1:]:
                size *= dim
            total += size
    return total


def pipeline_examples_per_second(image_size, batch_size):
    """The training input pipeline's own rate on this machine: JPEG records of 256 px photo crops, random crops and
    flips, Lab targets, timed after a warm-up batch."""
    from colorgan.data import conversion
    from colorgan.data import conversion_config
    from colorgan.data import input_pipeline
    from colorgan.demo import sample_photos

    work = tempfile.mkdtemp(prefix="gpu_estimate_")
    photos, data = os.path.join(work, "photos"), os.path.join(work, "records")
    sample_photos.write_photo_folder(photos, num_crops=_CROPS.value, crop_size=image_size, include_originals=False,
                                     seed=2)
    conversion.run(conversion_config.ConversionConfig(output_dir=data, input_dirs=(photos,), image_size=image_size,
                                                      val_fraction=0.0), log=lambda _: None)
    dataset = input_pipeline.make_dataset(data, "train", batch_size, image_size, color_space="lab", seed=0)
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(_PIPELINE_BATCHES.value):
        next(iterator)
    return _PIPELINE_BATCHES.value * batch_size / (time.perf_counter() - start)


def main(argv):
    del argv
    from colorgan.modeling import models
    from colorgan.training import train_config

    config = train_config.read_flagfile(_CONFIG.value)
    hparams = config.model_hparams()
    generator = models.build_generator(config.generator, config.image_size, **hparams)
    color_space = models.GENERATORS[config.generator].color_space
    discriminator = models.build_discriminator(config.discriminator, config.image_size, color_space=color_space,
                                               **hparams)
    g_flops, d_flops = sum(layer_flops(generator).values()), sum(layer_flops(discriminator).values())
    step_flops = config.batch_size * (3 * g_flops + 7 * d_flops)
    # Activations streamed per step: G once, D twice (real and generated batches).
    elementwise_bytes = (config.batch_size * ELEMENTWISE_PASSES * BF16_BYTES
                         * (activation_elements(generator) + 2 * activation_elements(discriminator)))
    pipeline_rate = pipeline_examples_per_second(config.image_size, config.batch_size)
    cores = os.cpu_count()
    per_core = pipeline_rate / cores

    print(f"{os.path.basename(_CONFIG.value)}: {config.image_size} px, batch {config.batch_size}")
    print(f"parameters: generator {generator.count_params() / 1e6:.1f} M, discriminator "
          f"{discriminator.count_params() / 1e6:.1f} M")
    print(f"generator forward {g_flops / 1e9:.1f} GFLOP/example, discriminator forward {d_flops / 1e9:.1f}; "
          f"training step (3 G + 7 D) x {config.batch_size} = {step_flops / 1e12:.2f} TFLOP")
    print(f"element-wise traffic {elementwise_bytes / 1e9:.1f} GB per step (bf16, {ELEMENTWISE_PASSES} passes)")
    print(f"input pipeline here: {pipeline_rate:.0f} examples/s on {cores} cores = {per_core:.0f} per core")
    figures = {"config": os.path.basename(_CONFIG.value), "batch_size": config.batch_size,
               "image_size": config.image_size, "generator_params": generator.count_params(),
               "discriminator_params": discriminator.count_params(), "generator_gflop": g_flops / 1e9,
               "discriminator_gflop": d_flops / 1e9, "step_tflop": step_flops / 1e12,
               "elementwise_gb": elementwise_bytes / 1e9, "pipeline_examples_per_s": pipeline_rate,
               "pipeline_per_core": per_core, "mfu": _MFU.value, "gpus": {}}
    for name, (peak, bandwidth) in GPUS.items():
        step_s = step_flops / (_MFU.value * peak)
        memory_s = elementwise_bytes / bandwidth
        examples = config.batch_size / step_s
        print(f"{name}: {step_s * 1e3:.0f} ms/step at {_MFU.value:.0%} MFU -> {examples:.0f} examples/s, needing "
              f"{examples / per_core:.1f} host cores of input; element-wise traffic alone {memory_s * 1e3:.0f} ms")
        figures["gpus"][name] = {"step_ms": step_s * 1e3, "examples_per_s": examples,
                                 "host_cores": examples / per_core, "elementwise_ms": memory_s * 1e3}
    print(json.dumps(figures))


if __name__ == "__main__":
    app.run(main)
