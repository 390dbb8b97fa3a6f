"""A person's colour hints for one photo: points in the photo's own pixels with their sRGB colours, read from a hints
file, or revealed from a colour original by Zhang et al. 2017's evaluation protocol.

A hints file (colorize.py --hints, or NAME.hints.json beside NAME.jpg):

  {"points": [{"x": 120, "y": 45, "color": "#2a5caa"}, ...]}

x, y: pixels from the top-left of the photo as displayed (after EXIF orientation), 0 <= x < width, 0 <= y < height;
color: "#rrggbb" or "#rgb". Only the colour's a*b* is used: the photo keeps its own lightness.
"""

import dataclasses
import json
import os
import re

import numpy as np

from colorgan.core import storage
from colorgan.modeling import hint_patches

SIDECAR_SUFFIX = ".hints.json"
MAX_POINTS = 256
MAX_FILE_BYTES = 1 << 20
_COLOR = re.compile(r"^#([0-9a-fA-F]{6}|[0-9a-fA-F]{3})$")


class HintsError(ValueError):
    """A hints file that cannot be used; the message is one line naming the file and what is wrong."""


@dataclasses.dataclass(frozen=True)
class Hints:
    """Points on one photo: xy float32 [k, 2] (x, y pixels), rgb float32 [k, 3] (sRGB in [0, 1])."""

    xy: np.ndarray
    rgb: np.ndarray

    def __len__(self):
        return len(self.xy)

    def arrays(self):
        """(xy, rgb, mask): what `Colorizer.colorize` and `rendering.canvas_hints` take for one photo."""
        return self.xy, self.rgb, np.ones(len(self.xy), np.float32)


NONE = Hints(np.zeros((0, 2), np.float32), np.zeros((0, 3), np.float32))  # a hints model colorizing alone


def sidecar_path(photo_path):
    """NAME.hints.json beside NAME.ext."""
    return os.path.splitext(photo_path)[0] + SIDECAR_SUFFIX


def parse_color(text):
    """"#rrggbb" or "#rgb" -> sRGB floats in [0, 1]; ValueError otherwise."""
    match = _COLOR.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"color {text!r} is not #rrggbb or #rgb")
    digits = match.group(1)
    if len(digits) == 3:
        digits = "".join(digit * 2 for digit in digits)
    return [int(digits[i:i + 2], 16) / 255.0 for i in (0, 2, 4)]


def parse(text, width=None, height=None):
    """Hints from a hints file's text, for a photo of `width` x `height` pixels (None: its size is not known yet,
    `check_inside` follows); ValueError saying what is wrong."""
    try:
        document = json.loads(text)
    except ValueError as e:
        raise ValueError(f"not JSON ({e})") from None
    points = document.get("points") if isinstance(document, dict) else None
    if not isinstance(points, list):
        raise ValueError('expected {"points": [{"x": ..., "y": ..., "color": "#rrggbb"}, ...]}')
    if len(points) > MAX_POINTS:
        raise ValueError(f"{len(points)} points: at most {MAX_POINTS}")
    xy, rgb = [], []
    for index, point in enumerate(points):
        if not isinstance(point, dict):
            raise ValueError(f"point {index}: expected an object with x, y and color")
        x, y = point.get("x"), point.get("y")
        if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in (x, y)):
            raise ValueError(f"point {index}: x and y must be numbers")
        try:
            rgb.append(parse_color(point.get("color")))
        except ValueError as e:
            raise ValueError(f"point {index}: {e}") from None
        xy.append((x, y))
    hints = Hints(np.asarray(xy, np.float32).reshape(-1, 2), np.asarray(rgb, np.float32).reshape(-1, 3))
    if width is not None:
        check_inside(hints, width, height)
    return hints


def from_arrays(xy, rgb, mask):
    """Hints from the export's serving_hints inputs for one photo: xy [k, 2] pixels, rgb [k, 3] in 0-255, mask [k]
    (points with mask 0 are padding, dropped); ValueError saying what is wrong."""
    try:
        xy, rgb, mask = (np.asarray(value, np.float64) for value in (xy, rgb, mask))
    except (TypeError, ValueError):
        raise ValueError("hint_xy, hint_rgb and hint_mask must be arrays of numbers") from None
    if xy.size == 0 and rgb.size == 0 and mask.size == 0:  # no points: [] for each
        xy, rgb = xy.reshape(0, 2), rgb.reshape(0, 3)
    if xy.ndim != 2 or xy.shape[1:] != (2,) or rgb.shape != (len(xy), 3) or mask.shape != (len(xy),):
        raise ValueError(f"hint_xy must be [k, 2], hint_rgb [k, 3] and hint_mask [k] (got {list(xy.shape)}, "
                         f"{list(rgb.shape)} and {list(mask.shape)})")
    if len(xy) > MAX_POINTS:
        raise ValueError(f"{len(xy)} points: at most {MAX_POINTS}")
    if not (np.all(np.isfinite(xy)) and np.all((rgb >= 0) & (rgb <= 255)) and np.all(np.isin(mask, (0, 1)))):
        raise ValueError("hint_xy must be finite, hint_rgb in 0..255 and hint_mask 0 or 1")
    kept = mask == 1
    return Hints(xy[kept].astype(np.float32), (rgb[kept] / 255.0).astype(np.float32))


def check_inside(hints, width, height):
    """ValueError naming the first point outside a `width` x `height` photo (0 <= x < width, 0 <= y < height)."""
    for index, (x, y) in enumerate(hints.xy.tolist()):
        if not (0 <= x < width and 0 <= y < height):
            raise ValueError(f"point {index}: ({x:g}, {y:g}) is outside the {width}x{height} photo")


def load(path, width, height):
    """Hints from the file at `path` for a `width` x `height` photo; HintsError naming the file otherwise."""
    if not storage.isfile(path):  # a FIFO or device would block the read, a folder cannot be one
        raise HintsError(f"{path}: not a regular file")
    try:
        size = storage.size(path)
        if size > MAX_FILE_BYTES:
            raise HintsError(f"{path}: {size} bytes, more than a hints file's {MAX_FILE_BYTES}")
        text = storage.read_bytes(path).decode("utf-8")
    except OSError as e:
        raise HintsError(f"{path}: cannot be read ({e.strerror or e})") from None
    except UnicodeDecodeError:
        raise HintsError(f"{path}: not UTF-8 text") from None
    try:
        return parse(text, width, height)
    except ValueError as e:
        raise HintsError(f"{path}: {e}") from None


def from_original(rgb_u8, count, rng):
    """`count` points revealed from a colour photo [h, w, 3] uint8 by the paper's protocol: a square patch of
    hint_patches.POINT_SIDE_AT_256 / 256 of the longer side (the patch a point becomes on the canvas), its corner
    normal around the centre (sigma a quarter of the free side, clipped inside), the point at the patch's centre
    with the patch's mean colour."""
    height, width = rgb_u8.shape[:2]
    side = hint_patches.patch_side(hint_patches.POINT_SIDE_AT_256, max(height, width))
    side_y, side_x = min(side, height), min(side, width)
    xy, colours = [], []
    for _ in range(count):
        corner = [int(np.clip(rng.normal((extent - patch + 1) / 2, (extent - patch + 1) / 4), 0, extent - patch))
                  for extent, patch in ((height, side_y), (width, side_x))]
        patch = rgb_u8[corner[0]:corner[0] + side_y, corner[1]:corner[1] + side_x].reshape(-1, 3)
        xy.append((corner[1] + (side_x - 1) / 2, corner[0] + (side_y - 1) / 2))
        colours.append(patch.mean(0) / 255.0)
    return Hints(np.asarray(xy, np.float32).reshape(-1, 2), np.asarray(colours, np.float32).reshape(-1, 3))
