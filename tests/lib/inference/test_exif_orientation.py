"""Tests of colorgan.inference.exif_orientation: the graph-op EXIF parser against Pillow, on real encodings and
malformed ones."""

import io
import os
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from PIL import ImageOps
from tensorflow.core.protobuf import saved_model_pb2

from colorgan.inference import exif_orientation

ORIENTATION_TAG = 0x0112
ORIENTATIONS = range(1, 9)
BYTE_ORDERS = ("II", "MM")
# 5 rows x 7 columns with every value distinct, so each of the 8 orientations gives a different upright array.
PIXELS = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
# JPEG blurs a gradient towards symmetry; seeded noise stays asymmetric whatever the decoder does.
NOISE = np.random.default_rng(0).integers(0, 256, size=(16, 24, 3), dtype=np.uint8)

_STRING = tf.TensorSpec([], tf.string)
exif_orientation_graph = tf.function(exif_orientation.exif_orientation, input_signature=[_STRING])
decode_upright_graph = tf.function(exif_orientation.decode_upright, input_signature=[_STRING])


def _little_endian_exif(value):
    """What Pillow writes: 'II' byte order, entries sorted: Make, Model, Orientation, ResolutionUnit (a SHORT)."""
    exif = Image.Exif()
    exif[0x010F] = "Maker"
    exif[0x0110] = "Model X"
    exif[ORIENTATION_TAG] = value
    exif[0x0128] = 2
    return exif.tobytes()


def _big_endian_exif(value, *, ifd_offset=8, count=4, byte_order=b"MM", magic=42, value_type=3):
    """An 'MM' block by hand: Make and Model (ASCII, stored after IFD0), Orientation, then ResolutionUnit (a SHORT);
    the keywords break one field each."""
    make, model = b"Maker\0", b"Model X\0"
    data_offset = 8 + 2 + 4 * 12 + 4
    ifd = struct.pack(">H", count)
    ifd += struct.pack(">HHII", 0x010F, 2, len(make), data_offset)
    ifd += struct.pack(">HHII", 0x0110, 2, len(model), data_offset + len(make))
    ifd += struct.pack(">HHIHH", ORIENTATION_TAG, value_type, 1, value, 0)
    ifd += struct.pack(">HHIHH", 0x0128, 3, 1, 3, 0)
    ifd += struct.pack(">I", 0)  # no IFD1
    return b"Exif\0\0" + byte_order + struct.pack(">HI", magic, ifd_offset) + ifd + make + model


def _exif(value, byte_order):
    return _little_endian_exif(value) if byte_order == "II" else _big_endian_exif(value)


def _encode(pixels, fmt, exif=None):
    """Encoded bytes; PNG and WebP losslessly, so Pillow and TensorFlow decode the same pixels."""
    options = {"PNG": {}, "WEBP": {"lossless": True}, "JPEG": {"quality": 95}, "GIF": {}}[fmt]
    if exif is not None:
        options["exif"] = exif
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()


def _segment(marker, payload):
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _with_app1(jpeg, payload):
    """`jpeg` with an APP1 segment holding `payload` right after SOI, whatever the payload says."""
    return jpeg[:2] + _segment(0xE1, payload) + jpeg[2:]


def _pillow_orientation(data):
    return Image.open(io.BytesIO(data)).getexif().get(ORIENTATION_TAG)


def _pillow_upright(pixels, exif):
    """PIL's ImageOps.exif_transpose applied to exactly these pixels (carried through a lossless PNG)."""
    return np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(_encode(pixels, "PNG", exif)))))


def _tf_decoded(data):
    return tf.io.decode_image(data, expand_animations=False).numpy()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
@pytest.mark.parametrize("byte_order", BYTE_ORDERS)
@pytest.mark.parametrize("value", ORIENTATIONS)
def test_orientation_matches_pillow(fmt, byte_order, value):
    data = _encode(PIXELS, fmt, _exif(value, byte_order))
    assert _pillow_orientation(data) == value
    assert int(exif_orientation.exif_orientation(data)) == value
    assert int(exif_orientation_graph(data)) == value


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
@pytest.mark.parametrize("byte_order", BYTE_ORDERS)
@pytest.mark.parametrize("value", ORIENTATIONS)
def test_decode_upright_lossless_equals_exif_transpose(fmt, byte_order, value):
    data = _encode(PIXELS, fmt, _exif(value, byte_order))
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
    np.testing.assert_array_equal(exif_orientation.decode_upright(data).numpy(), expected)
    np.testing.assert_array_equal(decode_upright_graph(data).numpy(), expected)


@pytest.mark.parametrize("byte_order", BYTE_ORDERS)
@pytest.mark.parametrize("value", ORIENTATIONS)
def test_decode_upright_jpeg_equals_exif_transpose_of_tf_pixels(byte_order, value):
    exif = _exif(value, byte_order)
    data = _encode(NOISE, "JPEG", exif)
    expected = _pillow_upright(tf.io.decode_jpeg(data).numpy(), exif)
    assert expected.shape == ((24, 16, 3) if value >= 5 else (16, 24, 3))
    np.testing.assert_array_equal(decode_upright_graph(data).numpy(), expected)


def test_the_fixtures_tell_all_eight_orientations_apart():
    decoded = tf.io.decode_jpeg(_encode(NOISE, "JPEG")).numpy()
    for pixels in (PIXELS, decoded):
        uprights = [_pillow_upright(pixels, _little_endian_exif(value)).tobytes() for value in ORIENTATIONS]
        assert len(set(uprights)) == 8


def test_apply_orientation_any_dtype_dynamic_shape():
    apply = tf.function(exif_orientation.apply_orientation,
                        input_signature=[tf.TensorSpec([None, None, None], tf.float32), tf.TensorSpec([], tf.int32)])
    for value in ORIENTATIONS:
        expected = _pillow_upright(PIXELS, _little_endian_exif(value)).astype(np.float32)
        np.testing.assert_array_equal(apply(PIXELS.astype(np.float32), value).numpy(), expected)
        np.testing.assert_array_equal(exif_orientation.apply_orientation(PIXELS[..., :1], value).numpy(),
                                      expected[..., :1].astype(np.uint8))
    for value in (0, 9, -1):
        np.testing.assert_array_equal(apply(PIXELS.astype(np.float32), value).numpy(), PIXELS)


def _malformed_cases():
    """(name, bytes, whether TensorFlow can still decode the image)."""
    jpeg = _encode(PIXELS, "JPEG")
    tiff_length = len(_big_endian_exif(6)) - len(b"Exif\0\0")
    png_with_exif = _encode(PIXELS, "PNG", _big_endian_exif(6))
    cases = [
        ("jpeg without exif", jpeg, True),
        ("png without exif", _encode(PIXELS, "PNG"), True),
        ("webp without exif", _encode(PIXELS, "WEBP"), True),
        ("gif", _encode(PIXELS, "GIF"), True),
        ("ifd offset past the end", _with_app1(jpeg, _big_endian_exif(6, ifd_offset=0xFFFFFFF0)), True),
        ("ifd table past the end", _with_app1(jpeg, _big_endian_exif(6, ifd_offset=tiff_length - 2)), True),
        ("entry count 65535", _with_app1(jpeg, _big_endian_exif(6, count=65535)), True),
        ("unknown byte order", _with_app1(jpeg, _big_endian_exif(6, byte_order=b"MI")), True),
        ("magic not 42", _with_app1(jpeg, _big_endian_exif(6, magic=43)), True),
        ("orientation as ASCII", _with_app1(jpeg, _big_endian_exif(6, value_type=2)), True),
        ("orientation 0", _with_app1(jpeg, _big_endian_exif(0)), True),
        ("orientation 9", _with_app1(jpeg, _big_endian_exif(9)), True),
        ("app1 without the Exif prefix", _with_app1(jpeg, _big_endian_exif(6)[6:]), True),
        ("exif in app2", jpeg[:2] + _segment(0xE2, _big_endian_exif(6)) + jpeg[2:], True),
        ("empty", b"", False),
        ("garbage", b"definitely not an image", False),
        ("soi only", b"\xff\xd8", False),
        ("app1 length below 2", b"\xff\xd8\xff\xe1\x00\x01" + _big_endian_exif(6), False),
        ("exif after sos", b"\xff\xd8" + _segment(0xDA, b"") + _segment(0xE1, _big_endian_exif(6)), False),
        ("png cut inside eXIf", png_with_exif[:png_with_exif.index(b"eXIf") + 20], False),
    ]
    return [pytest.param(data, decodable, id=name) for name, data, decodable in cases]


@pytest.mark.parametrize("data, decodable", _malformed_cases())
def test_missing_or_malformed_exif_gives_1(data, decodable):
    assert int(exif_orientation.exif_orientation(data)) == 1
    assert int(exif_orientation_graph(data)) == 1
    if decodable:
        np.testing.assert_array_equal(decode_upright_graph(data).numpy(), _tf_decoded(data))


def test_hand_built_block_reads_when_intact():
    """Controls for the malformed cases: the same block, unbroken, reads as 6 (also with a doubled prefix)."""
    jpeg = _encode(PIXELS, "JPEG")
    assert int(exif_orientation_graph(_with_app1(jpeg, _big_endian_exif(6)))) == 6
    assert int(exif_orientation_graph(_with_app1(jpeg, b"Exif\0\0" + _big_endian_exif(6)))) == 6


def test_jpeg_cut_anywhere_inside_app1_gives_1():
    data = _encode(PIXELS, "JPEG", _little_endian_exif(6))
    start = data.index(b"\xff\xe1")
    end = start + 2 + struct.unpack(">H", data[start + 2:start + 4])[0]
    assert int(exif_orientation_graph(data)) == 6
    assert int(exif_orientation_graph(data[:end])) == 6  # the whole segment is enough
    for cut in range(start, end):
        assert int(exif_orientation_graph(data[:cut])) == 1, cut


def test_random_corruption_never_raises():
    rng = np.random.default_rng(1)
    original = np.frombuffer(_with_app1(_encode(PIXELS, "JPEG"), _big_endian_exif(6)), np.uint8)
    for _ in range(300):
        data = original[:rng.integers(2, 140)].copy()
        spots = rng.integers(0, len(data), size=rng.integers(1, 5))
        data[spots] = rng.integers(0, 256, size=len(spots))
        assert 1 <= int(exif_orientation_graph(data.tobytes())) <= 8


class _Exported(tf.Module):
    @tf.function(input_signature=[_STRING])
    def decode_upright(self, image_bytes):
        return exif_orientation.decode_upright(image_bytes, channels=3)

    @tf.function(input_signature=[_STRING])
    def exif_orientation(self, image_bytes):
        return exif_orientation.exif_orientation(image_bytes)


def test_saved_model_round_trip_without_python_ops(tmp_path):
    module = _Exported()
    path = str(tmp_path / "model")
    tf.saved_model.save(module, path, signatures={"serving_default": module.decode_upright})

    saved = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved.ParseFromString(f.read())
    graph = saved.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node} | {node.op for f in graph.library.function for node in f.node_def}
    assert ops & {"While", "StatelessWhile"}
    assert not {"PyFunc", "PyFuncStateless", "EagerPyFunc"} & ops

    loaded = tf.saved_model.load(path)
    for byte_order in BYTE_ORDERS:
        for value in ORIENTATIONS:
            exif = _exif(value, byte_order)
            jpeg = _encode(NOISE, "JPEG", exif)
            assert int(loaded.exif_orientation(jpeg)) == value
            expected = _pillow_upright(tf.io.decode_jpeg(jpeg).numpy(), exif)
            np.testing.assert_array_equal(loaded.decode_upright(jpeg).numpy(), expected)
    png = _encode(PIXELS, "PNG", _big_endian_exif(6))
    served = loaded.signatures["serving_default"](image_bytes=tf.constant(png))
    np.testing.assert_array_equal(next(iter(served.values())).numpy(), _pillow_upright(PIXELS, _big_endian_exif(6)))
    assert int(loaded.exif_orientation(b"garbage")) == 1
