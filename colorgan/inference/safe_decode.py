"""Decoding untrusted image bytes inside a graph (the export's `serving_default`), after deciding from the bytes
alone that they are safe to decode: `core.image_headers`' rules for the formats and for WebP, as graph ops, so that
TensorFlow Serving running the export refuses what would crash it (TF 2.21's `decode_image` corrupts the heap on an
animated WebP) with an InvalidArgumentError naming the reason, before any decoder runs.
"""

import tensorflow as tf

from colorgan.core import image_headers
from colorgan.inference import exif_orientation
from colorgan.inference import graph_bytes

# A WebP walk visits at most this many chunks (a still WebP has a handful); more is refused, so a hostile file
# cannot make a request loop for long.
MAX_WEBP_CHUNKS = 64
REASONS = ("", "not an image", "animated WebP", "malformed WebP: chunk sizes do not add up",
           f"malformed WebP: more than {MAX_WEBP_CHUNKS} chunks", "malformed WebP: no image chunk first")
_OK, _NOT_AN_IMAGE, _ANIMATED, _INCONSISTENT, _TOO_MANY, _NOT_FIRST = range(len(REASONS))
_WALKING = -1


def refusal(image_bytes):
    """tf.string scalar: why these encoded bytes must not be decoded, or "" when they may."""
    data, n = graph_bytes.padded(image_bytes)
    webp = graph_bytes.matches(data, 0, b"RIFF") & graph_bytes.matches(data, 8, b"WEBP")
    accepted = webp | tf.reduce_any([graph_bytes.matches(data, 0, prefix)
                                     for name, prefixes in image_headers.MAGIC.items() if name != "WEBP"
                                     for prefix in prefixes])
    code = tf.where(accepted, tf.where(webp, _webp_problem(data, n), _OK), _NOT_AN_IMAGE)
    return tf.gather(tf.constant(REASONS), code)


def _webp_problem(data, n):
    """image_headers.webp_problem's checks: the RIFF size is the file's, the first chunk an image, no chunk runs past
    the end, no animation (the VP8X flag, ANIM or ANMF chunks)."""
    first = graph_bytes.uint(data, 12, 4)
    first_is_image = tf.reduce_any([tf.equal(first, graph_bytes.fourcc(code)) for code in (b"VP8 ", b"VP8L", b"VP8X")])

    def chunk(position, state, visited):
        kind = graph_bytes.uint(data, position, 4)
        size = graph_bytes.uint(data, position + 4, 4, little=True)
        following = position + 8 + size + size % 2
        animated = (tf.equal(kind, graph_bytes.fourcc(b"ANIM")) | tf.equal(kind, graph_bytes.fourcc(b"ANMF"))
                    | (tf.equal(kind, graph_bytes.fourcc(b"VP8X")) & (size > 0)
                       & (tf.bitwise.bitwise_and(graph_bytes.uint(data, position + 8, 1), 0x02) > 0)))
        state = tf.where((position + 8 > n) | (following > n), _INCONSISTENT, tf.where(animated, _ANIMATED, _WALKING))
        state = tf.where((state == _WALKING) & (following >= n), _OK, state)
        return following, state, visited + 1

    _, state, _ = tf.while_loop(
        lambda position, state, visited: (state == _WALKING) & (visited < MAX_WEBP_CHUNKS), chunk,
        (tf.constant(12, tf.int64), tf.constant(_WALKING), tf.constant(0)))
    state = tf.where(state == _WALKING, _TOO_MANY, state)
    riff_end = 8 + graph_bytes.uint(data, 4, 4, little=True)
    return tf.where(~tf.equal(riff_end, n) | (n < 20), _INCONSISTENT, tf.where(first_is_image, state, _NOT_FIRST))


def decode_upright(image_bytes):
    """`exif_orientation.decode_upright` of bytes that `refusal` lets through; InvalidArgumentError ("image refused:
    <reason>") for the others, raised before any decoder runs."""
    reason = refusal(image_bytes)
    check = tf.debugging.Assert(tf.equal(reason, ""), [tf.strings.join(["image refused: ", reason])])
    with tf.control_dependencies([check]):
        return exif_orientation.decode_upright(tf.identity(image_bytes))
