"""EXIF orientation in pure TensorFlow graph ops, so an exported SavedModel serves phone photos upright.

TensorFlow's image decoders ignore EXIF orientation. Parsing here uses only core ops (decode_raw, gather, where,
while_loop, switch_case): no py_function and no Python-side parsing, so the exported model loads and runs with
TensorFlow alone. Every read goes through `graph_bytes.uint`, which clamps its indexes into the data and reads zeros
past the end, and every structure is bounds-checked before it is trusted, so malformed or truncated input gives
orientation 1 instead of an error. Supported containers: JPEG (APP1 'Exif\\0\\0' segment), PNG ('eXIf' chunk) and WebP
('EXIF' chunk); the Orientation tag must be a SHORT with count 1 in IFD0, as EXIF specifies.
"""

import tensorflow as tf

from colorgan.inference import graph_bytes

# Bounds on the walks, so that a hostile file cannot make a serving request loop for long.
MAX_SEGMENTS = 64
MAX_IFD_ENTRIES = 256

_ORIENTATION_TAG = 0x0112
_SHORT = 3
_EXIF_PREFIX = b"Exif\0\0"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MORE, _FOUND, _STOP = 0, 1, 2


def _jpeg_segment(data, pos, n):
    """Marker segment at `pos`: FF, marker, big-endian length that counts itself. Fill bytes (FF FF) are skipped;
    SOS/EOI end the header, where EXIF must already have been seen."""
    marker = graph_bytes.uint(data, pos + 1, 1)
    fill = tf.equal(marker, 0xFF)
    end = pos + 2 + graph_bytes.uint(data, pos + 2, 2)
    stop = ((graph_bytes.uint(data, pos, 1) != 0xFF) | (pos + 4 > n)
            | (~fill & ((marker == 0xD9) | (marker == 0xDA) | (end < pos + 4) | (end > n))))
    exif = (~fill & (marker == 0xE1) & (end >= pos + 4 + len(_EXIF_PREFIX))
            & graph_bytes.matches(data, pos + 4, _EXIF_PREFIX))
    return stop, exif, pos + 4, end, tf.where(fill, pos + 1, end)


def _png_chunk(data, pos, n):
    """Chunk at `pos`: big-endian data length, type, data, CRC (not checked). IEND ends the file."""
    kind = graph_bytes.uint(data, pos + 4, 4)
    end = pos + 8 + graph_bytes.uint(data, pos, 4)
    stop = (pos + 12 > n) | (end + 4 > n) | (kind == graph_bytes.fourcc(b"IEND"))
    return stop, tf.equal(kind, graph_bytes.fourcc(b"eXIf")), pos + 8, end, end + 4


def _webp_chunk(data, pos, n):
    """RIFF chunk at `pos`: type, little-endian data length, data padded to an even length."""
    size = graph_bytes.uint(data, pos + 4, 4, little=True)
    end = pos + 8 + size
    stop = (pos + 8 > n) | (end > n)
    return stop, tf.equal(graph_bytes.uint(data, pos, 4), graph_bytes.fourcc(b"EXIF")), pos + 8, end, end + size % 2


def _find_exif(data, n, first, segment):
    """[start, end) of the first EXIF payload that `segment` finds walking from `first`, or (0, 0)."""
    def body(pos, start, end, state):
        stop, exif, payload_start, payload_end, next_pos = segment(data, pos, n)
        state = tf.where(stop, _STOP, tf.where(exif, _FOUND, _MORE))
        return next_pos, payload_start, payload_end, state

    zero = tf.constant(0, tf.int64)
    _, start, end, state = tf.while_loop(lambda pos, start, end, state: tf.equal(state, _MORE), body,
                                         (tf.constant(first, tf.int64), zero, zero, tf.constant(_MORE)),
                                         maximum_iterations=MAX_SEGMENTS)
    found = tf.equal(state, _FOUND)
    return tf.where(found, start, zero), tf.where(found, end, zero)


def _tiff_orientation(data, start, end):
    """Orientation from the TIFF structure in [start, end): header, IFD0 entries; 1 unless everything checks out.

    One or two 'Exif\\0\\0' prefixes are skipped, as Pillow does. The whole IFD0 table must lie inside the payload;
    of its entries the first MAX_IFD_ENTRIES are searched (tags are sorted, and Orientation comes early), and the
    last Orientation entry counts, again as in Pillow.
    """
    for _ in range(2):
        prefixed = (start + len(_EXIF_PREFIX) <= end) & graph_bytes.matches(data, start, _EXIF_PREFIX)
        start = tf.where(prefixed, start + len(_EXIF_PREFIX), start)
    byte_order = graph_bytes.uint(data, start, 2)
    little = tf.equal(byte_order, graph_bytes.fourcc(b"II"))
    ifd = start + graph_bytes.uint(data, start + 4, 4, little)
    count = graph_bytes.uint(data, ifd, 2, little)
    valid = ((little | (byte_order == graph_bytes.fourcc(b"MM"))) & (start + 8 <= end)
             & (graph_bytes.uint(data, start + 2, 2, little) == 42) & (ifd + 2 + 12 * count <= end))

    entries = ifd + 2 + 12 * tf.range(tf.minimum(count, MAX_IFD_ENTRIES))
    is_orientation = tf.equal(graph_bytes.uint(data, entries, 2, little), _ORIENTATION_TAG)
    value = graph_bytes.uint(data, entries + 8, 2, little)
    usable = ((graph_bytes.uint(data, entries + 2, 2, little) == _SHORT)
              & (graph_bytes.uint(data, entries + 4, 4, little) == 1) & (value >= 1) & (value <= 8))
    last = tf.reduce_max(tf.where(is_orientation, tf.range(tf.size(entries, tf.int64)), -1))
    chosen = tf.equal(tf.range(tf.size(entries, tf.int64)), last) & usable
    orientation = tf.reduce_sum(tf.where(chosen, value, 0))
    return tf.cast(tf.where(valid & (orientation > 0), orientation, 1), tf.int32)


def exif_orientation(image_bytes):
    """tf.string scalar (an encoded JPEG, PNG, WebP, ...) -> tf.int32 scalar in 1..8: the EXIF Orientation tag of
    IFD0, or 1 when there is none, the container is not supported, or anything is malformed or truncated."""
    data, n = graph_bytes.padded(image_bytes)
    webp = graph_bytes.matches(data, 0, b"RIFF") & graph_bytes.matches(data, 8, b"WEBP")
    container = tf.where(graph_bytes.matches(data, 0, b"\xff\xd8"), 1,
                         tf.where(graph_bytes.matches(data, 0, _PNG_SIGNATURE), 2, tf.where(webp, 3, 0)))
    start, end = tf.switch_case(container, [
        lambda: (tf.constant(0, tf.int64), tf.constant(0, tf.int64)),
        lambda: _find_exif(data, n, 2, _jpeg_segment),
        lambda: _find_exif(data, n, len(_PNG_SIGNATURE), _png_chunk),
        lambda: _find_exif(data, n, 12, _webp_chunk),
    ])
    return _tiff_orientation(data, start, end)


def apply_orientation(image, orientation):
    """image [H, W, C] (any dtype), orientation int32 scalar -> the upright image, as PIL's
    ImageOps.exif_transpose makes it; H and W swap for 5..8, and values outside 1..8 leave the image as it is."""
    image = tf.convert_to_tensor(image)

    def transposed(flip_axes):
        return lambda: tf.transpose(tf.reverse(image, flip_axes), [1, 0, 2])

    return tf.switch_case(tf.convert_to_tensor(orientation, tf.int32) - 1, [
        lambda: image,
        lambda: tf.reverse(image, [1]),  # mirror left-right
        lambda: tf.reverse(image, [0, 1]),  # rotate 180
        lambda: tf.reverse(image, [0]),  # mirror top-bottom
        transposed([]),  # transpose
        transposed([0]),  # rotate 90 clockwise
        transposed([0, 1]),  # transverse
        transposed([1]),  # rotate 90 counter-clockwise
    ], default=lambda: image)


def decode_upright(image_bytes, channels=0, dtype=tf.uint8):
    """tf.io.decode_image (first frame of animations) turned upright by the EXIF orientation -> [H, W, C]."""
    image = tf.io.decode_image(image_bytes, channels=channels, dtype=dtype, expand_animations=False)
    return apply_orientation(image, exif_orientation(image_bytes))
