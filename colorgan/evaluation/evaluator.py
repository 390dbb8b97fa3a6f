"""How well a colorizer does: PSNR, SSIM, colorfulness and |delta colorfulness| against the real photos, and the
same for the gray copy, the baseline every colorizer must beat.

A colorizer here is any callable gray [b, h, w, 1] in [0, 1] -> sRGB [b, h, w, 3] in [0, 1]: the trainer passes its
generator at the training size, `inference.evaluate_job` (launch/evaluate.py) a loaded run or export going through
the full-resolution colorize path. Both use `Evaluator`, so the trainer's eval lines and evaluate.py's table mean the
same. Where the batches come from (a dataset, a folder of photos) is the caller's business, as in big_vision's
evaluators: nothing here reads files.
"""

import dataclasses

import tensorflow as tf

from colorgan.evaluation import image_metrics

# name -> (colorized metric, gray-copy metric), as metrics.jsonl and evaluate.py's JSON name them.
REPORTED = {
    "psnr": ("psnr", "psnr_gray_copy"),
    "ssim": ("ssim", "ssim_gray_copy"),
    "colorfulness": ("colorfulness", "colorfulness_gray_copy"),
    "colorfulness_delta": ("colorfulness_delta", "colorfulness_delta_gray_copy"),
}


def pair_metrics(generated, real, gray):
    """Per-example metrics [b] of a colorized batch and of the gray copy, all sRGB [0, 1] [b, h, w, 3]."""
    colorfulness_real = image_metrics.colorfulness(real)
    values = {"colorfulness_real": colorfulness_real}
    for suffix, images in (("", generated), ("_gray_copy", gray)):
        colorfulness = image_metrics.colorfulness(images)
        values.update({
            f"psnr{suffix}": image_metrics.psnr(images, real),
            f"ssim{suffix}": image_metrics.ssim(images, real),
            f"colorfulness{suffix}": colorfulness,
            f"colorfulness_delta{suffix}": tf.abs(colorfulness - colorfulness_real),
        })
    return values


def gray_as_rgb(gray):
    return tf.image.grayscale_to_rgb(tf.convert_to_tensor(gray, tf.float32))


@dataclasses.dataclass
class Result:
    """Means over `count` examples, and the first examples kept for sample sheets: a list of (gray, generated,
    real) numpy images, sRGB [0, 1] [h, w, 3]."""

    means: dict
    count: int
    samples: list = dataclasses.field(default_factory=list)


class Means:
    """Running sums of per-example metrics -> means."""

    def __init__(self):
        self.sums, self.count = {}, 0

    def add(self, sums, count):
        for name, value in sums.items():
            self.sums[name] = self.sums.get(name, 0.0) + float(value)
        self.count += count

    def means(self):
        return {name: total / self.count for name, total in self.sums.items()} if self.count else {}


class Evaluator:
    """Evaluates `colorize` on (gray, real) batches, under `strategy` (distributed batches) or on one device."""

    def __init__(self, colorize, strategy=None):
        self.colorize = colorize
        self.strategy = strategy or tf.distribute.get_strategy()
        self._batch_sums = tf.function(self._sums)

    def run(self, batches, num_batches=None, keep_samples=0):
        """Means over `num_batches` batches of the iterable `batches` (all it gives when None), keeping the first
        `keep_samples` examples (of this worker's first replica) for sample sheets."""
        means, samples = Means(), []
        for index, (gray, real) in enumerate(batches):
            if index == num_batches:
                break
            sums = self._batch_sums(gray, real)
            means.add(sums, int(sums.pop("count")))
            if len(samples) < keep_samples:
                gray, real = (self.strategy.experimental_local_results(x)[0] for x in (gray, real))
                samples.extend(zip(gray_as_rgb(gray).numpy(), self.colorize(gray).numpy(), real.numpy()))
                del samples[keep_samples:]
        return Result(means.means(), means.count, samples)

    def _sums(self, gray, real):
        def replica_sums(gray, real):
            values = pair_metrics(self.colorize(gray), real, gray_as_rgb(gray))
            sums = {name: tf.reduce_sum(value) for name, value in values.items()}
            sums["count"] = tf.cast(tf.shape(gray)[0], tf.float32)
            return sums

        sums = self.strategy.run(replica_sums, args=(gray, real))
        return {name: self.strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                for name, value in sums.items()}


def table(means, title=""):
    """A readable table: one row per metric, colorized against the gray copy."""
    lines = [title] if title else []
    lines.append(f"{'metric':<20}{'colorized':>12}{'gray copy':>12}")
    for name, (colorized, gray_copy) in REPORTED.items():
        lines.append(f"{name:<20}{means[colorized]:>12.4f}{means[gray_copy]:>12.4f}")
    lines.append(f"{'colorfulness (real)':<20}{means['colorfulness_real']:>12.4f}")
    return "\n".join(lines)
