"""What the service accepts, decided before any work: the flags' limits, and the image checks made from the
header alone (a body over --max_upload_mb, a photo over --max_pixels, anything TensorFlow's decoders do not read)."""

import dataclasses
import io
import warnings

from PIL import Image
from PIL import UnidentifiedImageError

from colorgan.serving.tf_serving_rest import ServingError

# What tf.io.decode_image reads (PIL's names); other formats PIL recognises are refused before decoding.
DECODABLE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")


@dataclasses.dataclass(frozen=True)
class Limits:
    """launch/serve.py's flags of the same names."""

    max_upload_mb: float
    max_pixels: int
    max_queue: int  # requests admitted at once (reading, waiting or being colorized)
    max_batch: int  # photos per call of the chroma signature; 1 turns batching off
    batch_timeout_ms: float  # how long the first photo of a batch waits for others

    @property
    def max_upload_bytes(self):
        return int(self.max_upload_mb * 2**20)


def check_image(data, limits):
    """Refuses, from the header alone, what is not an image, what TensorFlow cannot decode, and bombs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height, image_format = *image.size, image.format
        except UnidentifiedImageError:
            raise ServingError(400, "not an image") from None
        except Image.DecompressionBombError as e:
            raise ServingError(413, f"too many pixels: {e}") from None
        except Exception as e:  # noqa: BLE001 - a bad header may raise anything from SyntaxError to struct.error.
            raise ServingError(400, f"corrupt image: {e}") from None
    if width * height > limits.max_pixels:
        raise ServingError(413, f"too many pixels: {width}x{height} > --max_pixels={limits.max_pixels}")
    if image_format not in DECODABLE_FORMATS:
        raise ServingError(400, f"unsupported image format {image_format} (send {', '.join(DECODABLE_FORMATS)})")
