"""Tests of export --format=onnx (colorgan.inference.onnx_export) and its TensorFlow-free runner (onnx_model): real
exports made by launch/export.py, run by onnxruntime, held to the SavedModel of the same run."""

import json
import os

import numpy as np
import onnx
import pytest
import run_dirs
from conftest import run_script
from PIL import Image

from colorgan.inference import colorizers
from colorgan.inference import loading
from colorgan.inference import model_errors
from colorgan.inference import onnx_model

SCRIPT = "launch/export.py"


def _export(model_dir, export_dir, *args):
    run_script(SCRIPT, f"--model_dir={model_dir}", f"--export_dir={export_dir}", *args, check=True)
    return str(export_dir)


@pytest.fixture(scope="module", params=["unet", "unet_rgb"])
def exports(request, tmp_path_factory):
    """(SavedModel export dir, ONNX export dir) of one tiny run of each colour space (Lab, the seed's RGB), whose
    weights predict strong chroma."""
    root = tmp_path_factory.mktemp(f"onnx_{request.param}")
    model_dir, _ = run_dirs.make_run(root / "run", request.param, step=5)
    _export(model_dir, root / "onnx", "--format=onnx")  # a base folder: the export becomes its version 1
    return _export(model_dir, root / "saved_model" / "1"), str(root / "onnx" / "1")


def _photos(photo_dir):
    """Gray photos [1, h, w, 1] in [0, 1]: the real crops, one larger than a strip of rows, one narrow."""
    names = sorted(os.listdir(photo_dir))[:12]
    photos = [np.asarray(Image.open(os.path.join(photo_dir, name)).convert("L")) for name in names]
    big = np.asarray(Image.open(os.path.join(photo_dir, names[0])).convert("L").resize((731, 517)))
    photos += [big, big[:, :9]]
    return [(photo.astype(np.float32) / 255)[np.newaxis, ..., np.newaxis] for photo in photos]


def test_the_export_is_model_onnx_carrying_its_description(exports):
    saved_model, onnx_dir = exports
    assert sorted(os.listdir(onnx_dir)) == ["colorgan.json", onnx_model.ONNX_FILENAME]
    model = onnx.load(os.path.join(onnx_dir, onnx_model.ONNX_FILENAME))
    embedded = json.loads({prop.key: prop.value for prop in model.metadata_props}[onnx_model.METADATA_KEY])
    with open(os.path.join(saved_model, "colorgan.json")) as f:
        saved_model_description = json.load(f)
    assert embedded["weights_sha256"] == saved_model_description["weights_sha256"]
    assert (embedded["step"], embedded["render_size"], embedded["runtime"]) == (5, 32, "onnx")
    assert {opset.version for opset in model.opset_import if opset.domain in ("", "ai.onnx")} == {17}
    assert [tensor.name for tensor in model.graph.input] == ["gray"]


def test_onnx_colorizes_photos_as_the_saved_model_does(exports, photo_dir):
    """Within a level on 99.9% of the pixels and at most 2 anywhere (gamut fitting's bisection may step either way
    of a float rounding), over real photos."""
    saved_model = loading.Colorizer.load(exports[0])
    onnx_colorizer = onnx_model.OnnxColorizer.load(os.path.join(exports[1], onnx_model.ONNX_FILENAME))
    differences = []
    for gray in _photos(photo_dir):
        canvas, _ = saved_model.stages.canvas(gray)
        np.testing.assert_allclose(onnx_colorizer.chroma(canvas), saved_model.chroma(canvas), atol=0.02)
        expected = saved_model.colorize(gray, np.uint8)
        got = onnx_colorizer.colorize(gray, np.uint8)
        assert got.shape == expected.shape == (*gray.shape[:3], 3)
        differences.append(np.abs(got.astype(int) - expected.astype(int)).ravel())
    differences = np.concatenate(differences)
    assert differences.max() <= 2
    assert (differences <= 1).mean() >= 0.999
    assert np.std(expected.astype(float), axis=-1).mean() > 5  # coloured, not gray


def test_step_and_render_size_must_be_the_exports_own(exports):
    path = os.path.join(exports[1], onnx_model.ONNX_FILENAME)
    with pytest.raises(model_errors.InferenceError, match=r"^--step=4: .* is an export of step 5$"):
        onnx_model.OnnxColorizer.load(path, step=4)
    with pytest.raises(model_errors.InferenceError, match=r"^--render_size=64: .* fixed at 32"):
        onnx_model.OnnxColorizer.load(path, render_size=64)
    from_folder = colorizers.load(exports[1], step=5)  # a folder holding model.onnx names it
    assert isinstance(from_folder, onnx_model.OnnxColorizer) and from_folder.render_size == 32


def test_damaged_and_foreign_onnx_files_are_one_line(exports, tmp_path):
    with open(os.path.join(exports[1], onnx_model.ONNX_FILENAME), "rb") as f:
        data = f.read()
    (tmp_path / "cut.onnx").write_bytes(data[:len(data) // 2])
    with pytest.raises(model_errors.DamagedModel, match=r"cut.onnx: cannot be loaded, the ONNX file is damaged"):
        onnx_model.OnnxColorizer.load(str(tmp_path / "cut.onnx"))
    identity = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])]))
    onnx.save(identity, str(tmp_path / "foreign.onnx"))
    with pytest.raises(model_errors.InferenceError, match=r"foreign.onnx: not an ONNX export of ColorGAN"):
        onnx_model.OnnxColorizer.load(str(tmp_path / "foreign.onnx"))
    with pytest.raises(model_errors.InferenceError, match=r"missing.onnx: no such ONNX file"):
        onnx_model.OnnxColorizer.load(str(tmp_path / "missing.onnx"))


@pytest.mark.slow
def test_generators_onnx_cannot_run_are_refused_in_one_line_and_leave_nothing(tmp_path):
    """ConvNeXt's exact GELU (Erfc) and XLA-compiled grouped convolutions have no ONNX form; a hints generator needs
    its points placed on the canvas, which the ONNX runner does not do. Each is refused before anything is written."""
    convnext, _ = run_dirs.make_run(tmp_path / "convnext", "unet", encoder="convnext_tiny", depth=0, norm="batch")
    hints, _ = run_dirs.make_run(tmp_path / "hints", "unet", hints=True)
    for model_dir, reason in ((convnext, "unet (--encoder=convnext_tiny) does not convert to ONNX (TensorFlow ops "
                                         "with no ONNX form: Erfc, StatefulPartitionedCall)"),
                              (hints, "unet takes colour hints, which the ONNX runner does not place yet")):
        result = run_script(SCRIPT, f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'out'}", "--format=onnx")
        assert result.returncode == 2, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("export:")]
        assert errors == [f"export: error: --format=onnx: {reason}; export a SavedModel (--format=saved_model)"]
        assert "Traceback" not in result.stderr and "tf2onnx" not in result.stderr
        assert not (tmp_path / "out").exists()
