"""EXIF orientation in pure TensorFlow graph ops, so an exported SavedModel serves phone photos upright.

TensorFlow's image decoders ignore EXIF orientation. Parsing here uses only core ops (decode_raw, gather, where,
while_loop, switch_case): no py_function and no Python-side parsing, so the exported model loads and runs with
TensorFlow alone. Every read goes through `_uint`, which clamps its indexes into the data and reads zeros past the
end, and every structure is bounds-checked before it is trusted, so malformed or truncated input gives orientation
1 instead of an error. Supported containers: JPEG (APP1 'Exif\\0\\0' segment), PNG ('eXIf' chunk) and WebP ('EXIF'
chunk); the Orientation tag must be a SHORT with count 1 in IFD0, as EXIF specifies.
"""

import tensorflow as tf

# Bounds on the walks, so that a hostile file cannot make a serving request loop for long.
MAX_SEGMENTS = 64
MAX_IFD_ENTRIES = 256

_ORIENTATION_TAG = 0x0112
_SHORT = 3
_EXIF_PREFIX = b"Exif\0\0"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_MORE, _FOUND, _STOP = 0, 1, 2


def _uint(data, pos, width, little=False):
    """Unsigned `width`-byte integers at int64 positions `pos` (any shape); bytes past the end read as 0.

    `data` ends with one padding zero, so clamping indexes into it is both in range and zero past the real end.
    """
    index = tf.expand_dims(tf.convert_to_tensor(pos, tf.int64), -1) + tf.range(width, dtype=tf.int64)
    raw = tf.cast(tf.gather(data, tf.clip_by_value(index, 0, tf.size(data, tf.int64) - 1)), tf.int64)
    powers = tf.constant([256**i for i in range(width)], tf.int64)
    return tf.reduce_sum(raw * tf.where(little, powers, tf.reverse(powers, [0])), -1)


def _matches(data, pos, expected):
    """Whether the bytes at `pos` are `expected`; callers bound the length, since data reads as zeros past its end."""
    return tf.reduce_all(tf.equal(_uint(data, pos + tf.range(len(expected), dtype=tf.int64), 1),
                                  tf.constant(list(expected), tf.int64)))


def _fourcc(code):
    return int.from_bytes(code, "big")


def _jpeg_segment(data, pos, n):
    """Marker segment at `pos`: FF, marker, big-endian length that counts itself. Fill bytes (FF FF) are skipped;
    SOS/EOI end the header, where EXIF must already have been seen."""
    marker = _uint(data, pos + 1, 1)
    fill = tf.equal(marker, 0xFF)
    end = pos + 2 + _uint(data, pos + 2, 2)
    stop = ((_uint(data, pos, 1) != 0xFF) | (pos + 4 > n)
            | (~fill & ((marker == 0xD9) | (marker == 0xDA) | (end < pos + 4) | (end > n))))
    exif = ~fill & (marker == 0xE1) & (end >= pos + 4 + len(_EXIF_PREFIX)) & _matches(data, pos + 4, _EXIF_PREFIX)
    return stop, exif, pos + 4, end, tf.where(fill, pos + 1, end)


def _png_chunk(data, pos, n):
    """Chunk at `pos`: big-endian data length, type, data, CRC (not checked). IEND ends the file."""
    kind = _uint(data, pos + 4, 4)
    end = pos + 8 + _uint(data, pos, 4)
    stop = (pos + 12 > n) | (end + 4 > n) | (kind == _fourcc(b"IEND"))
    return stop, tf.equal(kind, _fourcc(b"eXIf")), pos + 8, end, end + 4


def _webp_chunk(data, pos, n):
    """RIFF chunk at `pos`: type, little-endian data length, data padded to an even length."""
    size = _uint(data, pos + 4, 4, little=True)
    end = pos + 8 + size
    stop = (pos + 8 > n) | (end > n)
    return stop, tf.equal(_uint(data, pos, 4), _fourcc(b"EXIF")), pos + 8, end, end + size % 2


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
        prefixed = (start + len(_EXIF_PREFIX) <= end) & _matches(data, start, _EXIF_PREFIX)
        start = tf.where(prefixed, start + len(_EXIF_PREFIX), start)
    byte_order = _uint(data, start, 2)
    little = tf.equal(byte_order, _fourcc(b"II"))
    ifd = start + _uint(data, start + 4, 4, little)
    count = _uint(data, ifd, 2, little)
    valid = ((little | (byte_order == _fourcc(b"MM"))) & (start + 8 <= end)
             & (_uint(data, start + 2, 2, little) == 42) & (ifd + 2 + 12 * count <= end))

    entries = ifd + 2 + 12 * tf.range(tf.minimum(count, MAX_IFD_ENTRIES))
    is_orientation = tf.equal(_uint(data, entries, 2, little), _ORIENTATION_TAG)
    value = _uint(data, entries + 8, 2, little)
    usable = ((_uint(data, entries + 2, 2, little) == _SHORT) & (_uint(data, entries + 4, 4, little) == 1)
              & (value >= 1) & (value <= 8))
    last = tf.reduce_max(tf.where(is_orientation, tf.range(tf.size(entries, tf.int64)), -1))
    chosen = tf.equal(tf.range(tf.size(entries, tf.int64)), last) & usable
    orientation = tf.reduce_sum(tf.where(chosen, value, 0))
    return tf.cast(tf.where(valid & (orientation > 0), orientation, 1), tf.int32)


def exif_orientation(image_bytes):
    """tf.string scalar (an encoded JPEG, PNG, WebP, ...) -> tf.int32 scalar in 1..8: the EXIF Orientation tag of
    IFD0, or 1 when there is none, the container is not supported, or anything is malformed or truncated."""
    data = tf.pad(tf.io.decode_raw(tf.convert_to_tensor(image_bytes, tf.string), tf.uint8), [[0, 1]])
    n = tf.size(data, tf.int64) - 1
    container = tf.where(_matches(data, 0, b"\xff\xd8"), 1,
                         tf.where(_matches(data, 0, _PNG_SIGNATURE), 2,
                                  tf.where(_matches(data, 0, b"RIFF") & _matches(data, 8, b"WEBP"), 3, 0)))
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
