"""What the service accepts of an image, decided from its bytes alone before any decoder runs: a photo over
--max_pixels (`serve_config.ServeConfig`, the service's limits), anything but the formats we mean to decode."""

from colorgan.core import image_headers
from colorgan.serving.tf_serving_rest import ServingError


def check_image(data, limits):
    """Refuses, before any decoder runs (`image_headers`): what is not JPEG, PNG, GIF, BMP or WebP by its magic bytes,
    an animated or malformed WebP, a JPEG scan bomb (400), and more pixels than --max_pixels, every frame of a GIF
    counted (413). Returns the image_headers.Header."""
    try:
        header = image_headers.inspect(data)
    except image_headers.RefusedImage as e:
        raise ServingError(400, str(e)) from None
    if header.pixels > limits.max_pixels:
        frames = f" x {header.frames} frames" if header.frames > 1 else ""
        raise ServingError(413, f"too many pixels: {header.width}x{header.height}{frames} > "
                                f"--max_pixels={limits.max_pixels}")
    return header
