"""Image grids for people to look at: dataset previews now, gray | generated | real sample sheets in training."""

import io

import numpy as np
from PIL import Image
from PIL import ImageDraw

from colorgan.core import storage

_BACKGROUND = (255, 255, 255)
_TEXT = (0, 0, 0)
_TITLE_HEIGHT = 14
# The columns of every sample sheet, in training and in evaluation.
SAMPLE_TITLES = ("gray", "generated", "real")


def image_grid(rows, titles=(), padding=4):
    """Lays out rows of equally sized HxWx{1,3} uint8 arrays into one RGB PIL image, with optional column titles."""
    rows = [[_as_rgb(cell) for cell in row] for row in rows]
    if not rows or not rows[0]:
        raise ValueError("image_grid needs at least one image")
    height, width = rows[0][0].shape[:2]
    columns = max(len(row) for row in rows)
    right, bottom = cell_origin(len(rows), columns, (height, width), bool(titles), padding)
    canvas = Image.new("RGB", (right, bottom), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for c, title in enumerate(titles):
        draw.text((padding + c * (width + padding), padding), title, fill=_TEXT)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            if cell.shape[:2] != (height, width):
                raise ValueError(f"image_grid: cell ({r}, {c}) is {cell.shape[:2]}, expected {(height, width)}")
            canvas.paste(Image.fromarray(cell), cell_origin(r, c, (height, width), bool(titles), padding))
    return canvas


def cell_origin(row, column, cell_size, titled, padding=4):
    """(x, y) of a cell's top-left corner in an `image_grid` of (height, width) cells; for row and column one past
    the last, the grid's (width, height)."""
    height, width = cell_size
    top = _TITLE_HEIGHT + padding if titled else 0
    return padding + column * (width + padding), top + padding + row * (height + padding)


def row_sheet(images, titles, max_height):
    """One row of equally sized uint8 images side by side, shrunk (never enlarged) to at most `max_height` high."""
    height, width = np.asarray(images[0]).shape[:2]
    scale = min(1.0, max_height / height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    cells = [np.asarray(Image.fromarray(np.asarray(image)).resize(size, Image.Resampling.LANCZOS)) for image in images]
    return image_grid([cells], titles=titles)


def with_points(image, xy, colours):
    """A uint8 image [h, w] or [h, w, 3] with colour hints drawn on it: a disc of each colour (sRGB in [0, 1]) at
    each (x, y), ringed black and white so it shows on any background; sized for the sheet it goes in."""
    canvas = Image.fromarray(_as_rgb(np.asarray(image)))
    draw = ImageDraw.Draw(canvas)
    radius = max(3, round(max(canvas.size) / 80))
    for (x, y), colour in zip(np.asarray(xy), np.asarray(colours)):
        fill = tuple(int(value) for value in np.round(np.clip(colour, 0, 1) * 255))
        draw.ellipse((x - radius - 1, y - radius - 1, x + radius + 1, y + radius + 1), fill=_TEXT)
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=fill, outline=_BACKGROUND)
    return np.asarray(canvas)


def to_u8(image):
    """Float images in [0, 1] -> uint8, rounded (what sheets show)."""
    return np.round(np.clip(np.asarray(image, np.float32), 0.0, 1.0) * 255.0).astype(np.uint8)


def _as_rgb(cell):
    cell = np.asarray(cell)
    if cell.dtype != np.uint8:
        raise ValueError(f"image_grid expects uint8 images, got {cell.dtype}")
    if cell.ndim == 3 and cell.shape[-1] == 1:
        cell = cell[..., 0]
    return np.stack([cell] * 3, axis=-1) if cell.ndim == 2 else cell


def save_png(image, path):
    """Saves atomically (`storage.write_atomic`), so a sheet being replaced is never seen half-written."""
    encoded = io.BytesIO()
    image.save(encoded, format="PNG")
    storage.makedirs(storage.parent(path))
    storage.write_atomic(path, encoded.getvalue())
