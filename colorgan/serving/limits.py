"""What the service accepts, decided before any work: the flags' limits, and the image checks made from the bytes
alone, before any decoder runs (a photo over --max_pixels, anything but the formats we mean to decode)."""

import dataclasses

from colorgan.core import image_headers
from colorgan.serving.tf_serving_rest import ServingError


@dataclasses.dataclass(frozen=True)
class Limits:
    """launch/serve.py's flags of the same names."""

    max_upload_mb: float
    max_pixels: int
    max_queue: int  # requests admitted at once (reading, waiting or being colorized)
    max_batch: int  # photos per call of the chroma signature; 1 turns batching off
    batch_timeout_ms: float  # how long the first photo of a batch waits for others
    body_timeout_s: float = 30.0  # a request's whole body must arrive within this (else 408)
    max_connections: int = 128  # open connections at once (uvicorn's limit_concurrency): bounds slow clients
    max_pixels_in_flight: int = 100_000_000  # decoded pixels of the photos being colorized at once

    @property
    def max_upload_bytes(self):
        return int(self.max_upload_mb * 2**20)


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
