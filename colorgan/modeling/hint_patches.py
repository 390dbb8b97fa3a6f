"""The geometry of colour hints, without TensorFlow: how many channels they take and how large a point's patch is.
Shared by training's simulated hints (`color_hints`), the canvases of a person's points (`inference.rendering`,
`inference.numpy_stages`) and the points evaluation reveals (`inference.hint_points`)."""

CHANNELS = 3  # a*, b*, mask
PATCH_SIDES_AT_256 = tuple(range(1, 10))
POINT_SIDE_AT_256 = 6  # a person's point, and the paper's evaluation patch


def patch_side(side_at_256, image_size):
    """A patch side given at a 256 px image, at `image_size` (at least 1 px)."""
    return max(1, round(side_at_256 * image_size / 256))
