"""Tests of export --format=onnx and --format=tflite (colorgan.inference.portable_export) and their TensorFlow-free
runner (portable_model): real exports made by launch/export.py, run by onnxruntime and LiteRT, held to the
SavedModel of the same run."""

import json
import os
import shutil

import numpy as np
import onnx
import pytest
import run_dirs
from conftest import run_script
from PIL import Image

from colorgan.inference import colorizers
from colorgan.inference import loading
from colorgan.inference import model_errors
from colorgan.inference import portable_model

SCRIPT = "launch/export.py"


def _export(model_dir, export_dir, *args):
    run_script(SCRIPT, f"--model_dir={model_dir}", f"--export_dir={export_dir}", *args, check=True)
    return str(export_dir)


@pytest.fixture(scope="module", params=["unet", "unet_rgb"])
def exports(request, tmp_path_factory):
    """{format: export dir} of one tiny run of each colour space (Lab, the seed's RGB), whose weights predict strong
    chroma: its SavedModel, ONNX and TFLite exports."""
    root = tmp_path_factory.mktemp(f"portable_{request.param}")
    model_dir, _ = run_dirs.make_run(root / "run", request.param, step=5)
    folders = {"saved_model": _export(model_dir, root / "saved_model" / "1")}
    for model_format in portable_model.MODEL_FILES:  # a base folder: the export becomes its version 1
        _export(model_dir, root / model_format, f"--format={model_format}")
        folders[model_format] = str(root / model_format / "1")
    return folders


def _photos_of_size(height, width):
    """A smooth gray photo [1, h, w, 1] in [0, 1]."""
    return np.add.outer(np.linspace(0, 1, height), np.linspace(0, 0.5, width)).astype(np.float32)[
        np.newaxis, ..., np.newaxis] / 1.5


def _photos(photo_dir):
    """Gray photos [1, h, w, 1] in [0, 1]: the real crops, one larger than a strip of rows, one narrow."""
    names = sorted(os.listdir(photo_dir))[:12]
    photos = [np.asarray(Image.open(os.path.join(photo_dir, name)).convert("L")) for name in names]
    big = np.asarray(Image.open(os.path.join(photo_dir, names[0])).convert("L").resize((731, 517)))
    photos += [big, big[:, :9]]
    return [(photo.astype(np.float32) / 255)[np.newaxis, ..., np.newaxis] for photo in photos]


def test_each_export_is_its_model_file_and_description(exports):
    with open(os.path.join(exports["saved_model"], "colorgan.json")) as f:
        weights_sha256 = json.load(f)["weights_sha256"]
    for model_format, filename in portable_model.MODEL_FILES.items():
        assert sorted(os.listdir(exports[model_format])) == sorted(["colorgan.json", filename])
        with open(os.path.join(exports[model_format], "colorgan.json")) as f:
            description = json.load(f)
        assert description["weights_sha256"] == weights_sha256
        assert (description["step"], description["render_size"], description["runtime"]) == (5, 32, model_format)
    model = onnx.load(os.path.join(exports["onnx"], "model.onnx"))
    embedded = json.loads({prop.key: prop.value for prop in model.metadata_props}[portable_model.METADATA_KEY])
    assert embedded["weights_sha256"] == weights_sha256  # the .onnx alone carries its description
    assert {opset.version for opset in model.opset_import if opset.domain in ("", "ai.onnx")} == {17}
    assert [tensor.name for tensor in model.graph.input] == ["gray"]


@pytest.mark.parametrize("model_format", list(portable_model.MODEL_FILES))
def test_portable_exports_colorize_photos_as_the_saved_model_does(exports, photo_dir, model_format):
    """Within a level on 99.9% of the pixels and at most 2 anywhere (gamut fitting's bisection may step either way
    of a float rounding), over real photos."""
    saved_model = loading.Colorizer.load(exports["saved_model"])
    portable = colorizers.load(os.path.join(exports[model_format], portable_model.MODEL_FILES[model_format]))
    assert isinstance(portable, portable_model.PortableColorizer)
    differences = []
    for gray in _photos(photo_dir):
        canvas, _ = saved_model.stages.canvas(gray)
        np.testing.assert_allclose(portable.chroma(canvas), saved_model.chroma(canvas), atol=0.1)
        expected = saved_model.colorize(gray, np.uint8)
        got = portable.colorize(gray, np.uint8)
        assert got.shape == expected.shape == (*gray.shape[:3], 3)
        differences.append(np.abs(got.astype(int) - expected.astype(int)).ravel())
    differences = np.concatenate(differences)
    assert differences.max() <= 2
    assert (differences <= 1).mean() >= 0.999
    assert np.std(expected.astype(float), axis=-1).mean() > 5  # coloured, not gray


def test_step_and_render_size_must_be_the_exports_own(exports):
    path = os.path.join(exports["onnx"], "model.onnx")
    with pytest.raises(model_errors.InferenceError, match=r"^--step=4: .* is an export of step 5$"):
        colorizers.load(path, step=4)
    with pytest.raises(model_errors.InferenceError, match=r"^--render_size=64: .* fixed at 32"):
        colorizers.load(path, render_size=64)
    for model_format in portable_model.MODEL_FILES:  # a folder names its model file
        from_folder = colorizers.load(exports[model_format], step=5)
        assert isinstance(from_folder, portable_model.PortableColorizer) and from_folder.render_size == 32
        with pytest.raises(model_errors.InferenceError, match="only colorize.py runs"):  # evaluate's, serve's loader
            loading.Colorizer.load(exports[model_format])


@pytest.mark.parametrize("model_format", list(portable_model.MODEL_FILES))
def test_damaged_and_foreign_model_files_are_one_line(exports, tmp_path, model_format):
    filename = portable_model.MODEL_FILES[model_format]
    with open(os.path.join(exports[model_format], filename), "rb") as f:
        data = f.read()
    (tmp_path / "cut").mkdir()  # an export whose model file was cut short
    (tmp_path / "cut" / filename).write_bytes(data[:len(data) // 2])
    shutil.copy(os.path.join(exports[model_format], "colorgan.json"), tmp_path / "cut")
    with pytest.raises(model_errors.DamagedModel, match=rf"cut/{filename}: cannot be loaded, the {model_format} "
                                                        "file is damaged"):
        colorizers.load(str(tmp_path / "cut" / filename))
    (tmp_path / "alone").mkdir()  # a model file of ours without the colorgan.json beside it
    (tmp_path / "alone" / filename).write_bytes(data)
    if model_format == "onnx":  # the .onnx carries its description
        assert colorizers.load(str(tmp_path / "alone" / filename)).description["step"] == 5
    else:
        with pytest.raises(model_errors.InferenceError, match=rf"alone/{filename}: not an export of ColorGAN"):
            colorizers.load(str(tmp_path / "alone" / filename))
    with pytest.raises(model_errors.InferenceError, match=rf"missing{filename}: no such {model_format} file"):
        colorizers.load(str(tmp_path / f"missing{filename}"))


def test_a_foreign_onnx_model_is_not_taken_for_an_export(tmp_path):
    identity = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])]))
    onnx.save(identity, str(tmp_path / "foreign.onnx"))
    with pytest.raises(model_errors.InferenceError, match=r"foreign.onnx: not an export of ColorGAN"):
        colorizers.load(str(tmp_path / "foreign.onnx"))


@pytest.mark.slow
def test_convnext_is_refused_for_onnx_in_one_line_and_exports_to_tflite(tmp_path):
    """ConvNeXt's exact GELU (Erfc) and XLA-compiled grouped convolutions have no ONNX form: refused before anything
    is written. TFLite's converter takes it, so its users have a runtime without TensorFlow all the same."""
    convnext, _ = run_dirs.make_run(tmp_path / "convnext", "unet", encoder="convnext_tiny", depth=0,
                                    norm="instance")
    result = run_script(SCRIPT, f"--model_dir={convnext}", f"--export_dir={tmp_path / 'out'}", "--format=onnx")
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("export:")]
    assert errors == ["export: error: --format=onnx: unet (--encoder=convnext_tiny) does not convert (TensorFlow ops "
                      "with no ONNX form: Erfc, StatefulPartitionedCall); export a SavedModel (--format=saved_model)"]
    assert "Traceback" not in result.stderr and "tf2onnx" not in result.stderr
    assert not (tmp_path / "out").exists()
    _export(convnext, tmp_path / "tflite", "--format=tflite")
    gray = _photos_of_size(48, 40)
    expected = loading.Colorizer.from_run(convnext).colorize(gray, np.uint8).astype(int)
    got = colorizers.load(str(tmp_path / "tflite" / "1")).colorize(gray, np.uint8).astype(int)
    assert np.abs(got - expected).max() <= 1 and np.std(expected, axis=-1).mean() > 5


def test_hints_exports_colour_a_persons_points_as_the_saved_model_does(tmp_path):
    """A hints generator's export takes canvas hints as a second input; the numpy stages place a person's points on
    the canvas as `rendering` does. LiteRT's XNNPACK delegate gives NaN where no hint reaches (its normalised
    spread): the export's probe finds it, and that model runs on LiteRT's own kernels."""
    model_dir = run_dirs.make_hint_carrying_run(tmp_path / "run")
    saved_model = loading.Colorizer.load(_export(model_dir, tmp_path / "saved_model" / "1"))
    gray = _photos_of_size(90, 130) * 0.4 + 0.3
    points = (np.array([[[10, 10], [100, 60], [64, 45], [0, 89]]], np.float32),
              np.array([[[1, 0, 0], [0, 0, 1], [0, 1, 0], [1, 1, 0]]], np.float32),
              np.array([[1, 1, 1, 0]], np.float32))  # the last point is padding
    for model_format in portable_model.MODEL_FILES:
        portable = colorizers.load(_export(model_dir, tmp_path / model_format / "1", f"--format={model_format}"))
        assert portable.takes_hints
        for hints in (None, points):
            expected = saved_model.colorize(gray, np.uint8, hints=hints).astype(int)
            got = portable.colorize(gray, np.uint8, hints=hints).astype(int)
            assert np.abs(got - expected).max() <= 1, (model_format, hints is None)
        red = expected[0, 8:13, 8:13].mean(axis=(0, 1))
        assert red[0] > red[1] + 20 and red[0] > red[2] + 20  # the red point coloured its pixels
    with open(tmp_path / "tflite" / "1" / "colorgan.json") as f:
        assert json.load(f)["tflite_xnnpack"] is False
