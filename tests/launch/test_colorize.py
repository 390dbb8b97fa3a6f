"""Tests of launch/colorize.py as users run it: real processes on real files, outputs read back and measured with an
independent Lab conversion (scikit-image's rgb2lab), with generators that predict strong chroma."""

import json
import os
import signal
import subprocess
import sys
import time

import image_corpus
import numpy as np
import pytest
import run_dirs
import tensorflow as tf
import tifffile
from conftest import REPO_ROOT
from conftest import run_script
from PIL import Image
from skimage.color import rgb2lab

SCRIPT = "launch/colorize.py"
LIGHTNESS_TOLERANCE = 1.0  # L* units
REQUIRED_FRACTION = 0.99


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory):
    return run_dirs.make_run(tmp_path_factory.mktemp("lab_run"), "unet")[0]


@pytest.fixture(scope="module")
def rgb_run(tmp_path_factory):
    return run_dirs.make_run(tmp_path_factory.mktemp("rgb_run"), "unet_rgb")[0]


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory):
    """A Lab U-Net on the ResNet50V2 encoder (unet256_resnet.cfg's generator at a test size)."""
    return run_dirs.make_run(tmp_path_factory.mktemp("resnet_run"), "unet", encoder="resnet50v2", depth=0,
                             norm="instance")[0]


def _colorize(model, *args, check=True):
    return run_script(SCRIPT, f"--model={model}", *args, check=check)


def _textured_gray(height, width, seed=0):
    """A gray photo with detail at every scale: what full resolution must keep."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    smooth = np.sin(x / 53.0) * np.cos(y / 41.0) * 0.35 + 0.5
    return np.clip(smooth + rng.normal(0.0, 0.08, (height, width)), 0.0, 1.0)


def _lightness(rgb_float):
    return rgb2lab(rgb_float)[..., 0]


def _fraction_within(output_rgb_float, gray_float):
    """Share of pixels whose L* equals the gray input's within LIGHTNESS_TOLERANCE."""
    reference = _lightness(np.repeat(gray_float[..., np.newaxis], 3, axis=-1))
    return float(np.mean(np.abs(_lightness(output_rgb_float) - reference) <= LIGHTNESS_TOLERANCE))


def _mean_chroma(rgb_float):
    lab = rgb2lab(rgb_float)
    return float(np.hypot(lab[..., 1], lab[..., 2]).mean())


@pytest.mark.parametrize("run_fixture", ["lab_run", "rgb_run", "resnet_run"])
def test_output_keeps_the_lightness_of_the_gray_input_at_full_resolution(run_fixture, request, tmp_path):
    """Odd size, lossless output, strongly coloured prediction: at least 99% of pixels keep L* within 1.0 (a
    per-channel clip keeps about half)."""
    gray = np.round(_textured_gray(677, 1001) * 255).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "odd.png")
    _colorize(request.getfixturevalue(run_fixture), f"--input={tmp_path / 'odd.png'}",
              f"--output_dir={tmp_path / 'out'}")
    output = np.asarray(Image.open(tmp_path / "out" / "odd.png"))
    assert output.shape == (677, 1001, 3) and output.dtype == np.uint8
    assert _mean_chroma(output / 255.0) > 20.0  # strongly coloured, or the test would prove nothing
    assert _fraction_within(output / 255.0, gray / 255.0) >= REQUIRED_FRACTION


@pytest.mark.parametrize("extension", [".tif", ".png"])
def test_sixteen_bit_gray_scans_give_sixteen_bit_colour(lab_run, tmp_path, extension):
    gray16 = np.round(_textured_gray(301, 419, seed=1) * 65535).astype(np.uint16)
    source = tmp_path / f"scan{extension}"
    if extension == ".tif":
        tifffile.imwrite(source, gray16)
    else:
        Image.fromarray(gray16).save(source)  # mode I;16
    _colorize(lab_run, f"--input={source}", f"--output_dir={tmp_path / 'out'}")
    written = tmp_path / "out" / f"scan{extension}"
    if extension == ".tif":
        output = tifffile.imread(written)
    else:
        output = tf.io.decode_png(written.read_bytes(), dtype=tf.uint16).numpy()
    assert output.shape == (301, 419, 3) and output.dtype == np.uint16
    assert np.count_nonzero(output % 257) > output.size // 2  # real 16-bit values, not 8-bit ones scaled up
    assert _mean_chroma(output / 65535.0) > 20.0
    assert _fraction_within(output / 65535.0, gray16 / 65535.0) >= REQUIRED_FRACTION


def test_a_folder_with_bad_files_cmyk_and_16_bit_scans(lab_run, tmp_path):
    source = tmp_path / "in"
    (source / "sub" / "deep").mkdir(parents=True)
    colour = image_corpus.colourful(120, 90)
    Image.fromarray(colour).save(source / "colour.jpg", quality=95)
    Image.fromarray(colour).convert("CMYK").save(source / "sub" / "cmyk.jpg", quality=95)
    tifffile.imwrite(source / "sub" / "deep" / "scan16.tif",
                     np.round(_textured_gray(64, 80) * 65535).astype(np.uint16))
    (source / "notes.jpg").write_text("not a photo")
    good = (source / "colour.jpg").read_bytes()
    (source / "truncated.jpg").write_bytes(good[:len(good) // 2])
    Image.new("L", (400, 300)).save(source / "huge.png")
    result = _colorize(lab_run, f"--input={source}", f"--output_dir={tmp_path / 'out'}", "--compare",
                       "--max_pixels=100000")
    assert result.returncode == 0, result.stderr[-2000:]
    out = tmp_path / "out"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "colour.compare.jpg", "colour.jpg", "sub/cmyk.compare.jpg", "sub/cmyk.jpg", "sub/deep/scan16.compare.jpg",
        "sub/deep/scan16.tif"]
    assert f"colorize: skipped {source / 'notes.jpg'}: not an image" in result.stderr
    assert f"colorize: skipped {source / 'truncated.jpg'}: corrupt" in result.stderr
    assert f"colorize: skipped {source / 'huge.png'}: too many pixels: 400x300 > --max_pixels=100000" in result.stderr
    assert "colorize: 3 colorized, 0 already done, 3 failed" in result.stderr
    assert tifffile.imread(out / "sub" / "deep" / "scan16.tif").dtype == np.uint16
    # The CMYK photo's luma (after conversion to sRGB) is what the output keeps: JPEG in and out, so on average.
    cmyk_rgb = np.asarray(Image.open(source / "sub" / "cmyk.jpg").convert("RGB"))
    cmyk_gray = np.asarray(Image.fromarray(cmyk_rgb).convert("L")) / 255.0
    output = np.asarray(Image.open(out / "sub" / "cmyk.jpg")) / 255.0
    assert output.shape == (90, 120, 3)
    reference = _lightness(np.repeat(cmyk_gray[..., np.newaxis], 3, axis=-1))
    assert np.mean(np.abs(_lightness(output) - reference)) < 1.5
    sheet = np.asarray(Image.open(out / "colour.compare.jpg"))
    assert sheet.shape[1] > 2 * 120 and sheet.std() > 10


def test_exif_orientation_is_applied_and_reset_and_other_tags_kept(lab_run, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display
    exif[0x010F] = "Old Camera Co."
    Image.fromarray(image_corpus.colourful(60, 40)).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    _colorize(lab_run, f"--input={tmp_path / 'phone.jpg'}", f"--output_dir={tmp_path / 'out'}")
    output = Image.open(tmp_path / "out" / "phone.jpg")
    assert output.size == (40, 60)  # upright: width and height swapped
    assert output.getexif().get(0x0112, 1) == 1 and output.getexif()[0x010F] == "Old Camera Co."


def test_nothing_colorizable_exits_1_and_bad_model_exits_2_in_one_line(lab_run, tmp_path):
    (tmp_path / "a.jpg").write_text("not a photo")
    result = _colorize(lab_run, f"--input={tmp_path / 'a.jpg'}", f"--output_dir={tmp_path / 'out'}", check=False)
    assert result.returncode == 1 and "0 colorized, 0 already done, 1 failed" in result.stderr
    result = _colorize(tmp_path, f"--input={tmp_path / 'a.jpg'}", f"--output_dir={tmp_path / 'out'}", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"colorize: error: {tmp_path}: neither a training run (flags.cfg) nor an export" in result.stderr
    result = _colorize(lab_run, f"--input={tmp_path / 'missing*.jpg'}", f"--output_dir={tmp_path / 'out'}",
                       check=False)
    assert result.returncode == 2 and f"--input={tmp_path / 'missing*.jpg'}: no such file" in result.stderr
    result = _colorize(lab_run, f"--input={tmp_path / 'a.jpg'}", f"--output_dir={tmp_path / 'out'}",
                       "--render_size=36", check=False)
    assert result.returncode == 2 and "--render_size=36: unet: image size 36 is not divisible by 2**3" in result.stderr


def test_a_killed_folder_job_leaves_no_partial_file_and_a_rerun_finishes_it(lab_run, tmp_path):
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    for index in range(16):
        Image.fromarray(image_corpus.colourful(640, 480, seed=index)).save(source / f"p{index:02d}.png")
    process = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, SCRIPT), f"--model={lab_run}",
                                f"--input={source}", f"--output_dir={out}"], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list(out.glob("p*.png"))) < 3:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    finished = {p.name: p.stat().st_mtime_ns for p in out.glob("p*.png")}
    assert 3 <= len(finished) < 16
    for name in finished:  # whatever has a final name is whole
        Image.open(out / name).load()
    result = _colorize(lab_run, f"--input={source}", f"--output_dir={out}")
    assert "already done" in result.stderr and f"{16 - len(finished)} colorized, {len(finished)} already done" in (
        result.stderr)
    assert sorted(p.name for p in out.iterdir()) == [f"p{index:02d}.png" for index in range(16)]
    assert {name: (out / name).stat().st_mtime_ns for name in finished} == finished
    for path in out.iterdir():
        assert np.asarray(Image.open(path)).shape == (480, 640, 3)


def _files(root):
    """{relative path: bytes} of every regular file under `root`."""
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_an_output_folder_over_the_inputs_is_refused_and_no_original_is_touched(lab_run, tmp_path):
    """--overwrite with the output folder equal to the input folder replaced the originals (exit 0, "4 colorized");
    without it the run silently did nothing. Refused in one line, exit 2, both ways, and for an output folder that
    holds the input folder or a photo named as a file."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(2):
        Image.fromarray(image_corpus.colourful(40, 30, seed=index)).save(photos / f"p{index}.png")
    before = _files(tmp_path)
    for inputs, output_dir, extra in ((photos, photos, "--overwrite"), (photos, photos, "--compare"),
                                      (photos, tmp_path, "--overwrite"), (photos / "p0.png", photos, "--overwrite"),
                                      (f"{photos}/*.png", photos, "--overwrite")):
        result = _colorize(lab_run, f"--input={inputs}", f"--output_dir={output_dir}", extra, check=False)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert f"colorize: error: --output_dir={output_dir}: holds the input photo {photos / 'p0.png'}" in (
            result.stderr)
    assert _files(tmp_path) == before


def test_a_fifo_and_a_name_clash_are_reported_and_a_rerun_ends_as_the_first_run(lab_run, tmp_path):
    """A FIFO named like a photo hung the job forever; a.png beside a.gif refused the whole job. Each is now one
    photo reported, the others colorized, and the rerun of a job with bad files exits 0 as the first run did."""
    source, out = tmp_path / "in", tmp_path / "out"
    source.mkdir()
    os.mkfifo(source / "b.jpg")
    Image.fromarray(image_corpus.colourful(40, 30)).save(source / "a.gif")
    Image.fromarray(image_corpus.colourful(40, 30, seed=1)).save(source / "a.png")
    Image.fromarray(image_corpus.colourful(40, 30, seed=2)).save(source / "c.png")
    result = subprocess.run([sys.executable, os.path.join(REPO_ROOT, SCRIPT), f"--model={lab_run}",
                             f"--input={source}", f"--output_dir={out}"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"colorize: skipped {source / 'a.png'}: would be written as {out / 'a'}.*, as {source / 'a.gif'} is" in (
        result.stderr)
    assert f"colorize: skipped {source / 'b.jpg'}: unreadable: not a regular file (a pipe, socket or device)" in (
        result.stderr)
    assert "colorize: 2 colorized, 0 already done, 2 failed" in result.stderr
    assert sorted(path.name for path in out.iterdir()) == ["a.png", "c.png"]
    rerun = _colorize(lab_run, f"--input={source}", f"--output_dir={out}", check=False)
    assert rerun.returncode == 0 and "colorize: 0 colorized, 2 already done, 2 failed" in rerun.stderr


def test_a_file_as_output_folder_and_ctrl_c_are_one_line(lab_run, tmp_path):
    """An --output_dir that is a file gave a traceback; Ctrl-C printed a 30-line KeyboardInterrupt traceback (its
    exit status 130 was right)."""
    source = tmp_path / "in"
    source.mkdir()
    for index in range(12):
        Image.fromarray(image_corpus.colourful(640, 480, seed=index)).save(source / f"p{index:02d}.png")
    (tmp_path / "a_file").write_text("mine")
    result = _colorize(lab_run, f"--input={source}", f"--output_dir={tmp_path / 'a_file'}", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"colorize: error: --output_dir={tmp_path / 'a_file'}: is a file, not a directory" in result.stderr
    out = tmp_path / "out"
    # A terminal's Ctrl-C: SIGINT at its default, even where the suite itself runs with it ignored (a background
    # job of a non-interactive shell inherits SIG_IGN, and Python then never raises KeyboardInterrupt).
    process = subprocess.Popen([sys.executable, os.path.join(REPO_ROOT, SCRIPT), f"--model={lab_run}",
                                f"--input={source}", f"--output_dir={out}"], stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not list(out.glob("p*.png")):
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "colorize: stopped by Ctrl-C; run the same command to finish" in stderr


@pytest.fixture(scope="module")
def hints_run(tmp_path_factory):
    return run_dirs.make_run(tmp_path_factory.mktemp("hints_run"), "unet", hints=True)[0]


def _hints_json(*points):
    return json.dumps({"points": [{"x": x, "y": y, "color": colour} for x, y, colour in points]})


def test_hints_files_and_sidecars_colour_their_photo_and_a_bad_one_reports_only_its_photo(hints_run, lab_run,
                                                                                        tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    gray = (_textured_gray(48, 64) * 255).astype(np.uint8)
    for name in ("hinted", "alone", "bad_json", "outside", "bad_colour"):
        Image.fromarray(gray).save(photos / f"{name}.png")
    (photos / "hinted.hints.json").write_text(_hints_json((10, 12, "#2a5caa"), (50, 30, "#c83"), (63.5, 47, "#00ff00")))
    (photos / "bad_json.hints.json").write_text('{"points": [')
    (photos / "outside.hints.json").write_text(_hints_json((64, 10, "#2a5caa")))
    (photos / "bad_colour.hints.json").write_text(_hints_json((1, 1, "blue")))
    result = _colorize(hints_run, f"--input={photos}", f"--output_dir={tmp_path / 'out'}", "--compare")
    assert result.returncode == 0 and "Traceback" not in result.stderr
    skipped = sorted(line for line in result.stderr.splitlines() if "skipped" in line)
    assert skipped == [
        f"colorize: skipped {photos}/bad_colour.png: {photos}/bad_colour.hints.json: point 0: color 'blue' is not "
        "#rrggbb or #rgb",
        f"colorize: skipped {photos}/bad_json.png: {photos}/bad_json.hints.json: not JSON (Expecting value: line 1 "
        "column 13 (char 12))",
        f"colorize: skipped {photos}/outside.png: {photos}/outside.hints.json: point 0: (64, 10) is outside the "
        "64x48 photo"]
    assert "hinted.png (3 hints)" in result.stderr
    hinted, alone = (np.asarray(Image.open(tmp_path / "out" / f"{name}.png")) for name in ("hinted", "alone"))
    assert np.abs(hinted.astype(int) - alone.astype(int)).max() > 20  # same pixels; the hints made the difference
    hinted_sheet, alone_sheet = (Image.open(tmp_path / "out" / f"{name}.compare.jpg") for name in ("hinted", "alone"))
    assert hinted_sheet.width > alone_sheet.width * 1.4  # input | hints | colorized
    # --hints names one photo's file; a model without hints refuses it, and ignores sidecars (said in a line).
    one = _colorize(hints_run, f"--input={photos}", f"--output_dir={tmp_path / 'two'}",
                    f"--hints={photos / 'hinted.hints.json'}", check=False)
    assert one.returncode == 2 and f"--hints={photos / 'hinted.hints.json'}: names one photo's hints, and --input " \
                                   "names 5 photos" in one.stderr
    direct = _colorize(hints_run, f"--input={photos / 'alone.png'}", f"--output_dir={tmp_path / 'direct'}",
                       f"--hints={photos / 'hinted.hints.json'}")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "direct" / "alone.png")), hinted)
    assert direct.returncode == 0
    plain = _colorize(lab_run, f"--input={photos / 'alone.png'}", f"--output_dir={tmp_path / 'plain'}",
                      f"--hints={photos / 'hinted.hints.json'}", check=False)
    assert plain.returncode == 2 and "takes no colour hints (train with --hints)" in plain.stderr
    ignored = _colorize(lab_run, f"--input={photos / 'hinted.png'}", f"--output_dir={tmp_path / 'ignored'}")
    assert f"colorize: {photos}/hinted.hints.json: ignored, {lab_run} takes no colour hints" in ignored.stderr
    assert (tmp_path / "ignored" / "hinted.png").exists()


def test_a_full_disk_stops_the_job_with_exit_1_and_the_outputs_written_are_whole(lab_run, tmp_path, small_disk):
    """An output that cannot be written ends the job at run time: one line naming it, exit 1 (it was 2, the status
    of a command line that cannot be used); the photos written before are whole and a rerun skips them."""
    source = tmp_path / "in"
    source.mkdir()
    rng = np.random.default_rng(0)
    for index in range(6):  # noise: about 0.9 MB per PNG output, so a 2 MiB disk holds two
        Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(source / f"p{index}.png")
    out = small_disk(2 * 1024) / "out"
    result = _colorize(lab_run, f"--input={source}", f"--output_dir={out}", check=False)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    [error] = [line for line in result.stderr.splitlines() if line.startswith("colorize: error:")]
    assert error.startswith(f"colorize: error: {out}/p") and error.endswith("cannot write: No space left on device")
    written = sorted(os.listdir(out))
    assert 1 <= len(written) < 6 and all(name.endswith(".png") for name in written), written
    for name in written:
        with Image.open(out / name) as photo:
            assert photo.size == (640, 480) and photo.load() is not None


@pytest.mark.parametrize("model_format, runtime", [("onnx", "onnxruntime"), ("tflite", "ai_edge_litert")])
def test_a_portable_export_colorizes_without_tensorflow_as_the_saved_model_does(lab_run, photo_dir, tmp_path,
                                                                               model_format, runtime):
    """The ONNX (and TFLite) path as README gives it: export --format=onnx, then colorize.py --model=PATH.onnx in a
    process that never imports TensorFlow (python -X importtime lists every module loaded), its photos within a
    level of the SavedModel's on 99.9% of the pixels and within 2 anywhere."""
    run_script("launch/export.py", f"--model_dir={lab_run}", f"--export_dir={tmp_path / 'portable'}",
               f"--format={model_format}", check=True)
    run_script("launch/export.py", f"--model_dir={lab_run}", f"--export_dir={tmp_path / 'saved_model'}", check=True)
    source = tmp_path / "in"
    source.mkdir()
    for name in sorted(os.listdir(photo_dir))[:6]:
        Image.open(os.path.join(photo_dir, name)).convert("L").save(source / f"{name}.png")
    Image.fromarray((_textured_gray(700, 1100) * 255).astype(np.uint8)).save(source / "large.png")
    result = subprocess.run([sys.executable, "-X", "importtime", os.path.join(REPO_ROOT, SCRIPT),
                             f"--model={tmp_path / 'portable' / '1' / f'model.{model_format}'}", f"--input={source}",
                             f"--output_dir={tmp_path / 'out_portable'}"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines()
              if line.startswith("import time:")}
    assert {"numpy", runtime, "colorgan.inference.numpy_stages"} <= loaded
    assert not {name for name in loaded if name.split(".")[0] in ("tensorflow", "keras", "tf2onnx")}
    assert "colorize: 7 colorized, 0 already done, 0 failed" in result.stderr
    _colorize(tmp_path / "saved_model", f"--input={source}", f"--output_dir={tmp_path / 'out_saved_model'}")
    differences = []
    for name in sorted(os.listdir(source)):
        portable_rgb = np.asarray(Image.open(tmp_path / "out_portable" / name), np.int64)
        expected = np.asarray(Image.open(tmp_path / "out_saved_model" / name), np.int64)
        assert portable_rgb.shape == expected.shape and portable_rgb.shape[-1] == 3
        differences.append(np.abs(portable_rgb - expected).ravel())
    differences = np.concatenate(differences)
    assert differences.max() <= 2 and (differences <= 1).mean() >= 0.999
    assert _mean_chroma(expected / 255.0) > 10  # coloured: a gray output would match trivially
