"""Tests of launch/export.py: the SavedModel's three signatures against the in-process path, loading with TensorFlow
alone, saved_model_cli, EXIF orientation in the graph, the metadata beside the export."""

import io
import json
import os
import pathlib
import subprocess
import sys
import sysconfig

import image_corpus
import keras
import numpy as np
import pytest
import run_dirs
import tensorflow as tf
from conftest import run_script
from PIL import Image

from colorgan.inference import export
from colorgan.inference import loading
from colorgan.inference import rendering
from colorgan.modeling import models

SCRIPT = "launch/export.py"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(run dir, export dir) of a tiny Lab U-Net run with dropout whose checkpoint holds EMA weights, exported at
    64 px."""
    root = tmp_path_factory.mktemp("export")
    model_dir, _ = run_dirs.make_run(root / "run", "unet", step=7, ema=True, dropout=0.5)
    run_script(SCRIPT, f"--model_dir={model_dir}", f"--export_dir={root / 'export' / '1'}", "--render_size=64",
               check=True)
    return model_dir, str(root / "export" / "1")


def _png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_savedmodel_output_equals_the_in_process_path(exported):
    model_dir, export_dir = exported
    colour = image_corpus.colourful(101, 67)
    in_process = loading.Colorizer.from_run(model_dir, render_size=64)
    expected = in_process.colorize(rendering.gray_from_u8(colour[np.newaxis]).numpy(), np.uint8)
    loaded = tf.saved_model.load(export_dir)
    for images in (colour[np.newaxis], np.asarray(Image.fromarray(colour).convert("L"))[np.newaxis, ..., np.newaxis]):
        served = loaded.signatures["colorize"](images=tf.constant(images))["images"].numpy()
        assert served.shape == (1, 67, 101, 3)
        assert np.abs(served.astype(int) - expected.astype(int)).max() <= 1
    png = loaded.signatures["serving_default"](image_bytes=tf.constant([_png_bytes(colour)]))["image_bytes"]
    assert np.abs(tf.io.decode_png(png[0]).numpy().astype(int) - expected[0].astype(int)).max() <= 1
    chroma = loaded.signatures["chroma"](gray=tf.fill([2, 64, 64, 1], 0.5))["ab"]
    assert chroma.shape == (2, 64, 64, 2) and float(tf.reduce_max(tf.abs(chroma))) > 5.0


def test_the_bytes_signature_runs_a_requests_photos_through_one_generator_call(exported):
    """Photos of three sizes: the generator's convolutions sit once at the top of serving_default's graph (none in
    its per-photo loops), and each photo comes out as it does alone, within 1 level."""
    model_dir, export_dir = exported
    generator, _ = loading.load_generator(model_dir, render_size=64)
    module = export.ServingModule(generator, models.GENERATORS["unet"].color_space, 64, 10**7)
    graph = module.serving_default.get_concrete_function().graph
    convolutions = sum(layer.__class__.__name__ in ("Conv2D", "Conv2DTranspose") for layer in generator.layers)
    top = [op.type for op in graph.get_operations()]
    assert top.count("Conv2D") + top.count("Conv2DBackpropInput") == convolutions
    loops = graph.as_graph_def().library.function  # map_fn's bodies (and the conditions)
    assert loops and not any(node.op.startswith("Conv2D") for function in loops for node in function.node_def)
    photos = [_png_bytes(image_corpus.colourful(width, height, seed=width)) for width, height in
              ((101, 67), (40, 90), (64, 64))]
    serving = tf.saved_model.load(export_dir).signatures["serving_default"]
    together = serving(image_bytes=tf.constant(photos))["image_bytes"].numpy()
    for photo, batched in zip(photos, together):
        alone = serving(image_bytes=tf.constant([photo]))["image_bytes"].numpy()[0]
        first, second = (tf.io.decode_png(png).numpy().astype(int) for png in (alone, batched))
        assert first.shape == second.shape and np.abs(first - second).max() <= 1


def test_metadata_and_keras_file_describe_the_exported_weights(exported):
    model_dir, export_dir = exported
    with open(os.path.join(export_dir, loading.EXPORT_METADATA_FILENAME), encoding="utf-8") as f:
        metadata = json.load(f)
    assert (metadata["step"], metadata["color_space"], metadata["render_size"], metadata["weights"]) == (
        7, "lab", 64, "ema_generator")
    assert (metadata["training_image_size"], metadata["depth"]) == (32, 3)
    assert "--generator=unet" in metadata["training_flags"]
    generator = keras.models.load_model(os.path.join(export_dir, export.KERAS_FILENAME))
    assert generator.input_shape == (None, 64, 64, 1)
    assert export.weights_sha256(generator) == metadata["weights_sha256"]
    in_run, _ = loading.load_generator(model_dir, render_size=64)
    assert export.weights_sha256(in_run) == metadata["weights_sha256"]


LOAD_WITHOUT_COLORGAN = r'''
import sys
import sysconfig
# The environment's packages, without the .pth hooks that put colorgan on the path, behind a folder whose "keras"
# cannot be imported: the SavedModel must load and run with TensorFlow alone (TF 2.21 imports Keras when it can).
sys.path[:0] = [sys.argv[3]]
sys.path.extend(sys.argv[4:])
try:
    import colorgan
except ImportError:
    pass
else:
    raise SystemExit("colorgan is importable here: " + colorgan.__file__)
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
with open(sys.argv[2], "rb") as f:
    encoded = f.read()
png = loaded.signatures["serving_default"](image_bytes=tf.constant([encoded]))["image_bytes"][0]
print("shape", tuple(tf.io.decode_png(png).shape))
print("keras loaded", "keras" in sys.modules)
sys.path.remove(sys.argv[3])
import keras
generator = keras.models.load_model(sys.argv[1] + "/generator.keras")  # Keras's own layers only
print("keras output", generator.output_shape)
print("colorgan loaded", "colorgan" in sys.modules)
'''


def _load_without_colorgan(export_dir, tmp_path):
    """The last lines LOAD_WITHOUT_COLORGAN prints for `export_dir` and a 50x30 photo."""
    (tmp_path / "photo.png").write_bytes(_png_bytes(image_corpus.colourful(50, 30)))
    script = tmp_path / "serve.py"
    script.write_text(LOAD_WITHOUT_COLORGAN)
    (tmp_path / "no_keras" / "keras").mkdir(parents=True)
    (tmp_path / "no_keras" / "keras" / "__init__.py").write_text("raise ImportError('no Keras here')\n")
    packages = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    result = subprocess.run([sys.executable, "-S", str(script), export_dir, str(tmp_path / "photo.png"),
                             str(tmp_path / "no_keras"), *packages], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.splitlines()[-4:]


def test_the_export_loads_and_runs_where_colorgan_cannot_be_imported(exported, tmp_path):
    assert _load_without_colorgan(exported[1], tmp_path) == [
        "shape (30, 50, 3)", "keras loaded False", "keras output (None, 64, 64, 2)",
        "colorgan loaded False"]


@pytest.fixture(scope="module")
def exported_resnet(tmp_path_factory):
    """(run dir, export dir) of unet256_resnet.cfg's generator (ResNet50V2 encoder) at a test size, exported at
    64 px."""
    root = tmp_path_factory.mktemp("export_resnet")
    model_dir, _ = run_dirs.make_run(root / "run", "unet", encoder="resnet50v2", depth=0, norm="batch")
    run_script(SCRIPT, f"--model_dir={model_dir}", f"--export_dir={root / 'export' / '1'}", "--render_size=64",
               check=True)
    return model_dir, str(root / "export" / "1")


def test_a_pretrained_encoder_exports_and_loads_without_colorgan_or_keras(exported_resnet, tmp_path):
    model_dir, export_dir = exported_resnet
    colour = image_corpus.colourful(50, 30)
    in_process = loading.Colorizer.from_run(model_dir, render_size=64)
    expected = in_process.colorize(rendering.gray_from_u8(colour[np.newaxis]).numpy(), np.uint8)
    served = tf.saved_model.load(export_dir).signatures["colorize"](images=tf.constant(colour[np.newaxis]))["images"]
    assert np.abs(served.numpy().astype(int) - expected.astype(int)).max() <= 1
    assert _load_without_colorgan(export_dir, tmp_path) == [
        "shape (30, 50, 3)", "keras loaded False", "keras output (None, 64, 64, 2)",
        "colorgan loaded False"]


def test_saved_model_cli_runs_the_bytes_signature(exported, tmp_path):
    _, export_dir = exported
    np.save(tmp_path / "inputs.npy", np.array([_png_bytes(image_corpus.colourful(40, 30))], dtype=object))
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    result = subprocess.run([cli, "run", f"--dir={export_dir}", "--tag_set=serve", "--signature_def=serving_default",
                             f"--inputs=image_bytes={tmp_path / 'inputs.npy'}", f"--outdir={tmp_path / 'out'}"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = np.load(tmp_path / "out" / "image_bytes.npy", allow_pickle=True)
    decoded = np.asarray(Image.open(io.BytesIO(outputs[0])))
    assert decoded.shape == (30, 40, 3) and decoded.std() > 5


def test_the_bytes_signature_serves_phone_photos_upright(exported):
    _, export_dir = exported
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(image_corpus.colourful(48, 32)).save(buffer, format="JPEG", exif=exif.tobytes())
    loaded = tf.saved_model.load(export_dir)
    png = loaded.signatures["serving_default"](image_bytes=tf.constant([buffer.getvalue()]))["image_bytes"][0]
    assert tuple(tf.io.decode_png(png).shape) == (48, 32, 3)


def test_bad_export_requests_are_one_line(exported, tmp_path):
    model_dir, export_dir = exported
    result = run_script(SCRIPT, f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'e'}", "--render_size=36")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "export: error: --render_size=36: unet: image size 36 is not divisible by 2**3 = 8" in result.stderr
    assert not (tmp_path / "e").exists() and not list(tmp_path.glob("e.partial*"))
    result = run_script(SCRIPT, f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    assert result.returncode == 2 and f"--export_dir={export_dir}: exists and is not empty" in result.stderr
    result = run_script(SCRIPT, f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'e'}", "--step=3")
    assert result.returncode == 2 and f"--step=3: {model_dir} has no checkpoint of that step (it has [7])" in (
        result.stderr)


def _tree(root):
    """{relative path: bytes} of every file under `root`."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_overwrite_never_deletes_what_is_not_an_export_of_ours(exported, tmp_path):
    """--overwrite replaces a previous export and nothing else: not the run folder, its parent, the current folder
    (none of them a base of numbered versions only) or a file; each refusal is one line and leaves every byte."""
    model_dir, export_dir = exported
    base = tmp_path / "exports" / "model"
    for version in ("1", "2"):
        export.export(model_dir, str(base / version), render_size=64)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "a_file").write_text("mine")
    before = _tree(tmp_path)
    run_before = _tree(pathlib.Path(model_dir))
    for target, why in ((model_dir, "holds checkpoint, ckpt-7"), (os.path.dirname(model_dir), "holds "),
                        (str(tmp_path / "a_file"), "is a file, not a folder")):
        with pytest.raises(loading.InferenceError) as raised:
            export.export(model_dir, target, render_size=64, overwrite=True)
        assert f"--export_dir={target}: {why}" in str(raised.value) and "\n" not in str(raised.value)
    result = run_script(SCRIPT, f"--model_dir={model_dir}", "--export_dir=.", "--overwrite", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "export: error: --export_dir=.: holds a_file, exports, notes.txt, which no base of numbered exports " \
           "holds" in result.stderr
    assert _tree(tmp_path) == before and _tree(pathlib.Path(model_dir)) == run_before
    # A previous export of ours is replaced; a folder holding only export files but no metadata of ours is not.
    description = export.export(model_dir, str(base / "1"), render_size=32, overwrite=True)
    assert description["render_size"] == 32 and json.loads((base / "1" / "colorgan.json").read_text())[
        "render_size"] == 32
    (base / "2" / "colorgan.json").write_text('{"format": "someone else\'s"}')
    with pytest.raises(loading.InferenceError, match="holds no readable colorgan.json of an export of ours"):
        export.export(model_dir, str(base / "2"), render_size=64, overwrite=True)
    assert (base / "2" / "saved_model.pb").exists()


def test_a_base_folder_gets_the_next_version_and_loaders_take_the_highest(exported, tmp_path):
    """TF Serving's layout: --export_dir=BASE writes BASE/<next version>; colorize, evaluate and serve load a base's
    highest version; a base holding anything else is refused, whatever it holds kept."""
    model_dir, _ = exported
    base = tmp_path / "exports" / "colorgan"
    written = [export.export(model_dir, str(base), render_size=size)["export_dir"] for size in (32, 64)]
    assert written == [str(base / "1"), str(base / "2")]
    export.export(model_dir, str(base / "7"), render_size=32)  # a number is a version folder, as given
    assert export.export(model_dir, str(base), render_size=32)["export_dir"] == str(base / "8")
    assert sorted(os.listdir(base)) == ["1", "2", "7", "8"]
    assert loading.model_kind(str(base)) == ("export", str(base / "8"))
    assert loading.Colorizer.load(str(base / "2")).render_size == 64
    assert loading.Colorizer.load(str(base)).render_size == 32
    (base / "README").write_text("mine")
    before = _tree(tmp_path)
    with pytest.raises(loading.InferenceError, match=r"holds README, which no base of numbered exports holds"):
        export.export(model_dir, str(base), render_size=32)
    assert _tree(tmp_path) == before


REFUSE_IN_ANOTHER_PROCESS = r'''
import sys
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
try:
    loaded.signatures["serving_default"](image_bytes=tf.constant([open(sys.argv[2], "rb").read()]))
except tf.errors.InvalidArgumentError as e:
    print("refused:", " ".join(e.message.split())[:300])
'''


def test_the_bytes_signature_refuses_an_animated_webp_instead_of_aborting(exported, tmp_path):
    """TF 2.21's decode_image corrupts the heap on an animated WebP and the process aborts: TF Serving running our
    export would die of one request. The signature refuses it from the bytes, in graph ops, first (in a process of
    its own, since the failure being guarded against is an abort)."""
    _, export_dir = exported
    frames = [Image.fromarray(image_corpus.colourful(16, 16, seed=index)) for index in range(3)]
    frames[0].save(tmp_path / "animated.webp", save_all=True, append_images=frames[1:], duration=100, loop=0)
    (tmp_path / "refuse.py").write_text(REFUSE_IN_ANOTHER_PROCESS)
    result = subprocess.run([sys.executable, str(tmp_path / "refuse.py"), export_dir, str(tmp_path / "animated.webp")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "assertion failed: [image refused: animated WebP]" in result.stdout, result.stdout


def test_the_bytes_signature_counts_every_gif_frame_against_max_pixels(exported, tmp_path):
    """TensorFlow decodes every frame of a GIF: a small file of many frames is many photos' memory. The signature
    counts frames x canvas against the export's --max_pixels from the blocks, before decoding."""
    model_dir, _ = exported
    result = run_script(SCRIPT, f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'small' / '1'}",
                        "--render_size=32", "--max_pixels=10000", check=True)
    assert "Traceback" not in result.stderr
    assert json.loads((tmp_path / "small" / "1" / "colorgan.json").read_text())["max_pixels"] == 10_000
    serve = tf.saved_model.load(str(tmp_path / "small" / "1")).signatures["serving_default"]
    one_frame, many_frames = (image_corpus.encoded("GIF", frames=frames) for frames in (1, 100))  # 16 x 12 px
    assert serve(image_bytes=tf.constant([one_frame]))["image_bytes"].shape == (1,)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image refused: too many pixels: 16x12 x 100 frames > "
                                                               r"max_pixels=10000"):
        serve(image_bytes=tf.constant([many_frames]))


@pytest.fixture(scope="module")
def exported_hints(tmp_path_factory):
    """(run dir, export dir) of a tiny Lab U-Net trained with --hints, exported at 64 px."""
    root = tmp_path_factory.mktemp("export_hints")
    model_dir, _ = run_dirs.make_run(root / "run", "unet", step=3, hints=True)
    run_script(SCRIPT, f"--model_dir={model_dir}", f"--export_dir={root / 'export' / '1'}", "--render_size=64",
               check=True)
    return model_dir, str(root / "export" / "1")


def test_a_hints_export_serves_points_as_the_library_renders_them(exported_hints, exported):
    model_dir, export_dir = exported_hints
    colour = image_corpus.colourful(90, 60)
    gray = rendering.gray_from_u8(colour[np.newaxis]).numpy()
    xy = np.array([[20, 15], [70, 40], [0, 0]], np.float32)
    rgb = np.array([[42, 92, 170], [200, 40, 30], [0, 0, 0]], np.uint8)
    mask = np.array([1, 1, 0], np.float32)
    in_process = loading.Colorizer.from_run(model_dir, render_size=64)
    assert in_process.takes_hints
    expected = in_process.colorize(gray, np.uint8, hints=(xy[np.newaxis], rgb[np.newaxis] / 255.0, mask[np.newaxis]))
    alone = in_process.colorize(gray, np.uint8)
    assert np.abs(expected.astype(int) - alone.astype(int)).max() > 20  # the points change the colours
    loaded = tf.saved_model.load(export_dir)
    assert {"serving_hints", "chroma_hints", "serving_default", "chroma"} <= set(loaded.signatures)
    assert json.loads((pathlib.Path(export_dir) / "colorgan.json").read_text())["hints"] is True
    served = loaded.signatures["serving_hints"](
        image_bytes=tf.constant([_png_bytes(colour)] * 2), hint_xy=tf.constant(np.stack([xy, xy])),
        hint_rgb=tf.constant(np.stack([rgb, rgb])), hint_mask=tf.constant(np.stack([mask, 0 * mask])))["image_bytes"]
    with_points, without = (tf.io.decode_png(png).numpy().astype(int) for png in served.numpy())
    assert np.abs(with_points - expected[0].astype(int)).max() <= 1
    assert np.abs(without - alone[0].astype(int)).max() <= 1  # no points: the model colorizes alone
    # A model trained without hints has no hint signatures and says so in one line when given points.
    assert "serving_hints" not in tf.saved_model.load(exported[1]).signatures
    with pytest.raises(loading.InferenceError, match=r"^unet at step 7 takes no colour hints \(train with --hints\)$"):
        loading.Colorizer.from_run(exported[0], render_size=64).colorize(gray, np.uint8, hints=(xy, rgb, mask))
