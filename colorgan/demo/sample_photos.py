"""Real colour photographs for demos, tests and benchmarks, with no download: scikit-image's bundled photos.

Five photos are too few to train or time anything, so `write_photo_folder` adds random crops of them (random
scale, position and flip), which look like a folder of ordinary photos to every part of the system.
"""

import io
import os

import numpy as np
from PIL import Image

from colorgan.core import storage

# The bundled colour photographs (not the scientific images, nor those that need an optional download).
PHOTO_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle")
# Whole photos kept out of training where a model's generalisation is measured (the demo, bench_quality).
HELD_OUT_PHOTO_NAMES = ("chelsea", "coffee")
TRAINING_PHOTO_NAMES = tuple(name for name in PHOTO_NAMES if name not in HELD_OUT_PHOTO_NAMES)
# A real black-and-white photograph (512x512), for showing colorization where no colour original exists.
BLACK_AND_WHITE_PHOTO_NAME = "camera"


def black_and_white_photo():
    """scikit-image's 'camera', HxW uint8."""
    from skimage import data  # noqa: PLC0415

    return getattr(data, BLACK_AND_WHITE_PHOTO_NAME)()


def bundled_photos(names=PHOTO_NAMES):
    """{name: HxWx3 uint8} for `names` (PHOTO_NAMES by default)."""
    from skimage import data  # noqa: PLC0415 - an optional dependency (the demo/test extras).

    photos = {}
    for name in names:
        image = getattr(data, name)()
        photos[name] = np.ascontiguousarray((image[0] if isinstance(image, tuple) else image)[..., :3])
    return photos


def random_crops(count, size, seed=0, min_scale=0.3, upscale=1.0, names=PHOTO_NAMES):
    """Yields (name, HxWx3 uint8) crops of `size` (int or (w, h)) from random photos, at random scales and flips.

    `upscale` > 1 first enlarges the photos, to imitate camera-sized files from these small ones.
    """
    rng = np.random.default_rng(seed)
    photos = [Image.fromarray(p) for p in bundled_photos(names).values()]
    if upscale != 1.0:
        photos = [p.resize((round(p.width * upscale), round(p.height * upscale)), Image.Resampling.BICUBIC)
                  for p in photos]
    width, height = (size, size) if isinstance(size, int) else size
    for i in range(count):
        photo = photos[rng.integers(len(photos))]
        scale = rng.uniform(min_scale, 1.0)
        crop_w = max(8, min(photo.width, round(photo.width * scale)))
        crop_h = max(8, min(photo.height, round(crop_w * height / width)))
        left = rng.integers(photo.width - crop_w + 1)
        top = rng.integers(photo.height - crop_h + 1)
        crop = photo.resize((width, height), Image.Resampling.BICUBIC, box=(left, top, left + crop_w, top + crop_h))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        yield f"crop{i:06d}", np.asarray(crop)


def write_photo_folder(directory, num_crops=0, crop_size=256, seed=0, include_originals=True, upscale=1.0,
                       quality=92, names=PHOTO_NAMES):
    """Writes the bundled photos `names` and `num_crops` random crops of them as JPEG files; returns their paths,
    sorted."""
    storage.makedirs(directory)
    images = list(bundled_photos(names).items()) if include_originals else []
    images += list(random_crops(num_crops, crop_size, seed=seed, upscale=upscale, names=names))
    paths = []
    for name, pixels in images:
        path = os.path.join(directory, f"{name}.jpg")
        encoded = io.BytesIO()
        Image.fromarray(pixels).save(encoded, format="JPEG", quality=quality)
        storage.write_atomic(path, encoded.getvalue())
        paths.append(path)
    return sorted(paths)
