"""Decoding untrusted image bytes inside a graph (the export's `serving_default`), after deciding from the bytes
alone that they are safe to decode: `core.image_headers`' rules as graph ops, so that TensorFlow Serving running the
export refuses what would crash it or exhaust it with an InvalidArgumentError naming the reason, before any decoder
runs. The rules: a format from the allowlist of magic bytes; no animated or malformed WebP (TF 2.21's decode_image
corrupts the heap on an animated one); at most MAX_JPEG_SCANS scans in a JPEG; a size in the header; and at most
`max_pixels` decoded pixels, counting every frame of a GIF (TensorFlow decodes them all).
"""

import functools

import tensorflow as tf

from colorgan.core import image_headers
from colorgan.inference import exif_orientation
from colorgan.inference import graph_bytes

FORMATS = tuple(image_headers.MAGIC)  # switch_case's branch order
# Bounds on the walks (~20 us a step), so a hostile file cannot make a request loop for long: a still WebP has a
# handful of chunks, a JPEG tens of segments. A GIF's blocks are followed without a loop per block.
MAX_WEBP_CHUNKS = 64
MAX_JPEG_SEGMENTS = 1000


def _result(reason="", width=0, height=0, frames=1):
    """What every format's branch returns: (reason or "", width, height, frames)."""
    return (tf.constant(reason) if isinstance(reason, str) else reason, tf.cast(width, tf.int64),
            tf.cast(height, tf.int64), tf.cast(frames, tf.int64))


def inspect(image_bytes):
    """`image_headers.inspect` in graph ops: (reason, width, height, frames), reason "" when the bytes may be
    decoded. Reasons are image_headers' words where the rule is the same."""
    data, n = graph_bytes.padded(image_bytes)
    matched = [graph_bytes.matches(data, 0, b"RIFF") & graph_bytes.matches(data, 8, b"WEBP") if name == "WEBP" else
               tf.reduce_any([graph_bytes.matches(data, 0, prefix) for prefix in image_headers.MAGIC[name]])
               for name in FORMATS]
    index = tf.where(tf.reduce_any(matched), tf.argmax(tf.cast(tf.stack(matched), tf.int32), output_type=tf.int32),
                     len(FORMATS))
    readers = {"JPEG": _jpeg, "PNG": _png, "GIF": _gif, "BMP": _bmp, "WEBP": _webp}
    branches = [functools.partial(readers[name], data, n) for name in FORMATS] + [lambda: _result("not an image")]
    reason, width, height, frames = tf.switch_case(index, branches)
    no_size = tf.strings.join(["corrupt image: no ", tf.gather(tf.constant(FORMATS + ("",)), index),
                               " size in its header"])
    reason = tf.where(tf.equal(reason, "") & ((width <= 0) | (height <= 0)), no_size, reason)
    return reason, width, height, frames


def refusal(image_bytes, max_pixels):
    """tf.string scalar: why these encoded bytes must not be decoded, or "" when they may."""
    reason, width, height, frames = inspect(image_bytes)
    too_many = tf.strings.join(["too many pixels: ", tf.strings.as_string(width), "x", tf.strings.as_string(height),
                                " x ", tf.strings.as_string(frames), f" frames > max_pixels={max_pixels}"])
    return tf.where(tf.equal(reason, "") & (width * height * frames > max_pixels), too_many, reason)


def decode_upright(image_bytes, max_pixels):
    """`exif_orientation.decode_upright` of bytes that `refusal` lets through; InvalidArgumentError ("image refused:
    <reason>") for the others, raised before any decoder runs."""
    reason = refusal(image_bytes, max_pixels)
    check = tf.debugging.Assert(tf.equal(reason, ""), [tf.strings.join(["image refused: ", reason])])
    with tf.control_dependencies([check]):
        return exif_orientation.decode_upright(tf.identity(image_bytes))


def _png(data, n):
    has_header = graph_bytes.matches(data, 12, b"IHDR") & (n >= 24)
    return _result(width=tf.where(has_header, graph_bytes.uint(data, 16, 4), 0), height=graph_bytes.uint(data, 20, 4))


def _bmp(data, n):
    width, height = (_int32(graph_bytes.uint(data, position, 4, little=True)) for position in (18, 22))
    return _result(width=tf.where(n >= 26, width, 0), height=tf.abs(height))  # a negative height stores rows top-down


def _int32(unsigned):
    return tf.where(unsigned >= 2**31, unsigned - 2**32, unsigned)


def _gif(data, n):
    """The canvas size and image_headers.gif_frames' count, for every block at once: a while_loop of one block or
    sub-block a step costs ~20 us a step, and a GIF of one-byte sub-blocks has a step per two bytes, so the chains
    are followed by pointer doubling instead (log2(n) rounds of vectorized gathers, ~24 bytes of memory per byte)."""
    length = tf.size(data, tf.int32)  # n + 1: the padding zero at n ends every chain
    positions = tf.range(length)
    padded = tf.pad(tf.cast(data, tf.int32), [[0, 16]])

    def at(offset):
        return padded[offset:offset + length]

    def ends(following):
        """Where following `following` (a chain; self at its ends) from each position stops."""
        return tf.while_loop(lambda chain: tf.reduce_any(tf.gather(chain, chain) != chain),
                             lambda chain: [tf.gather(chain, chain)], [following])[0]

    def colour_table(packed):
        return tf.where(tf.bitwise.bitwise_and(packed, 0x80) > 0,
                        3 * tf.bitwise.left_shift(2, tf.bitwise.bitwise_and(packed, 0x07)), 0)

    # Sub-blocks: a size byte, then that many bytes; a zero size (or the end) ends them. Skipping them from p lands
    # one past that zero.
    byte = at(0)
    sub_block_end = ends(tf.where(byte > 0, tf.minimum(positions + 1 + byte, length - 1), positions))
    past_sub_blocks = tf.minimum(tf.gather(sub_block_end, tf.minimum(positions, length - 1)) + 1, length - 1)

    def skip_from(start):
        return tf.gather(past_sub_blocks, tf.minimum(start, length - 1))

    # Blocks: an extension (label, then sub-blocks), an image (descriptor, local colour table, LZW minimum code size,
    # sub-blocks); the trailer, anything else or the end stops the walk (the block points at itself).
    real = positions < length - 1
    image = real & (byte == 0x2C) & (positions + 10 <= length - 1)
    following = tf.where(image, skip_from(positions + 11 + colour_table(at(9))),
                         tf.where(real & (byte == 0x21), skip_from(positions + 2), positions))

    def double(chain, frames):  # frames[p]: images from p up to (not including) chain[p]
        return tf.gather(chain, chain), frames + tf.where(chain != positions, tf.gather(frames, chain), 0)

    start = tf.minimum(13 + colour_table(padded[10]), length - 1)
    _, frames = tf.while_loop(lambda chain, frames: tf.reduce_any(tf.gather(chain, chain) != chain), double,
                              [following, tf.cast(image, tf.int32)])
    frames = tf.where(length > 13, frames[start], 0)
    width = tf.where(n >= 10, graph_bytes.uint(data, 6, 2, little=True), 0)
    height = graph_bytes.uint(data, 8, 2, little=True)
    # A missing size is named first, as image_headers does.
    return _result(tf.where((frames == 0) & (width > 0) & (height > 0), "corrupt image: a GIF without an image", ""),
                   width, height, frames)


def _jpeg(data, n):
    """image_headers' two JPEG walks in one: the size in the first start-of-frame before any scan, and the scans up
    to the end of the first image, each scan's entropy-coded data skipped to the marker after it."""
    following = data[1:]
    is_marker = ((data[:-1] == 0xFF) & (following != 0x00) & (following != 0xFF)
                 & ~((following >= 0xD0) & (following <= 0xD7)))
    markers = tf.concat([tf.where(is_marker)[:, 0], [tf.int64.max]], 0)  # sorted positions, then a sentinel

    def step(position, scans, width, height, walking, steps):
        marker = graph_bytes.uint(data, position + 1, 1)
        valid = (position + 4 <= n) & (graph_bytes.uint(data, position, 1) == 0xFF) & (marker != 0xD9)
        fill = marker == 0xFF
        no_length = (marker == 0x01) | ((marker >= 0xD0) & (marker <= 0xD7))
        segment_end = position + 2 + graph_bytes.uint(data, position + 2, 2)
        frame = (valid & (width < 0) & (scans == 0) & (marker >= 0xC0) & (marker <= 0xCF)
                 & (marker != 0xC4) & (marker != 0xC8) & (marker != 0xCC))  # SOFn, not DHT, JPG or DAC
        scan = valid & (marker == 0xDA)
        next_marker = tf.gather(markers, tf.searchsorted(markers, [segment_end])[0])
        scans += tf.cast(scan, tf.int64)
        return (tf.where(fill, position + 1, tf.where(no_length, position + 2,
                                                      tf.where(scan, next_marker, segment_end))),
                scans, tf.where(frame, graph_bytes.uint(data, position + 7, 2), width),
                tf.where(frame, graph_bytes.uint(data, position + 5, 2), height),
                valid & ~(scan & (next_marker == tf.int64.max)) & (scans <= image_headers.MAX_JPEG_SCANS), steps + 1)

    unread = tf.constant(-1, tf.int64)
    _, scans, width, height, walking, _ = tf.while_loop(
        lambda position, scans, width, height, walking, steps: walking & (steps < MAX_JPEG_SEGMENTS), step,
        (tf.constant(2, tf.int64), tf.constant(0, tf.int64), unread, unread, tf.constant(True), tf.constant(0)))
    reason = tf.where(scans > image_headers.MAX_JPEG_SCANS,
                      f"a JPEG of more than {image_headers.MAX_JPEG_SCANS} scans",
                      tf.where(walking, f"malformed JPEG: more than {MAX_JPEG_SEGMENTS} segments", ""))
    return _result(reason, tf.maximum(width, 0), tf.maximum(height, 0))


_WEBP_REASONS = ("", "malformed WebP: chunk sizes do not add up", "animated WebP",
                 f"malformed WebP: more than {MAX_WEBP_CHUNKS} chunks", "malformed WebP: no image chunk first")
_WEBP_OK, _WEBP_INCONSISTENT, _WEBP_ANIMATED, _WEBP_TOO_MANY, _WEBP_NOT_FIRST = range(len(_WEBP_REASONS))
_WALKING = -1


def _webp(data, n):
    """image_headers.webp_problem's checks (the RIFF size is the file's, the first chunk an image, no chunk runs past
    the end, no animation: the VP8X flag, ANIM or ANMF chunks), then the size from the first chunk."""
    first = graph_bytes.uint(data, 12, 4)
    first_is_image = tf.reduce_any([tf.equal(first, graph_bytes.fourcc(code)) for code in (b"VP8 ", b"VP8L", b"VP8X")])

    def chunk(position, state, visited):
        kind = graph_bytes.uint(data, position, 4)
        size = graph_bytes.uint(data, position + 4, 4, little=True)
        following = position + 8 + size + size % 2
        animated = (tf.equal(kind, graph_bytes.fourcc(b"ANIM")) | tf.equal(kind, graph_bytes.fourcc(b"ANMF"))
                    | (tf.equal(kind, graph_bytes.fourcc(b"VP8X")) & (size > 0)
                       & (tf.bitwise.bitwise_and(graph_bytes.uint(data, position + 8, 1), 0x02) > 0)))
        state = tf.where((position + 8 > n) | (following > n), _WEBP_INCONSISTENT,
                         tf.where(animated, _WEBP_ANIMATED, _WALKING))
        state = tf.where((state == _WALKING) & (following >= n), _WEBP_OK, state)
        return following, state, visited + 1

    _, state, _ = tf.while_loop(
        lambda position, state, visited: (state == _WALKING) & (visited < MAX_WEBP_CHUNKS), chunk,
        (tf.constant(12, tf.int64), tf.constant(_WALKING), tf.constant(0)))
    state = tf.where(state == _WALKING, _WEBP_TOO_MANY, state)
    riff_end = 8 + graph_bytes.uint(data, 4, 4, little=True)
    state = tf.where(~tf.equal(riff_end, n) | (n < 20), _WEBP_INCONSISTENT,
                     tf.where(first_is_image, state, _WEBP_NOT_FIRST))
    # Sizes: VP8X's canvas (24 bits each, minus one); VP8L's signature 0x2f then 14 bits each, minus one; a VP8 key
    # frame's start code then 14 bits each.
    lossless_bits = graph_bytes.uint(data, 21, 4, little=True)
    key_frame = graph_bytes.matches(data, 23, b"\x9d\x01\x2a")
    width, height = tf.switch_case(
        tf.argmax(tf.cast(tf.stack([first == graph_bytes.fourcc(code) for code in (b"VP8X", b"VP8L", b"VP8 ")]),
                          tf.int32), output_type=tf.int32),
        [lambda: (graph_bytes.uint(data, 24, 3, little=True) + 1, graph_bytes.uint(data, 27, 3, little=True) + 1),
         lambda: (tf.where(graph_bytes.uint(data, 20, 1) == 0x2F, tf.bitwise.bitwise_and(lossless_bits, 0x3FFF) + 1, 0),
                  tf.bitwise.bitwise_and(tf.bitwise.right_shift(lossless_bits, 14), 0x3FFF) + 1),
         lambda: (tf.where(key_frame, tf.bitwise.bitwise_and(graph_bytes.uint(data, 26, 2, little=True), 0x3FFF), 0),
                  tf.bitwise.bitwise_and(graph_bytes.uint(data, 28, 2, little=True), 0x3FFF))])
    return _result(tf.gather(tf.constant(_WEBP_REASONS), state), width, height)
