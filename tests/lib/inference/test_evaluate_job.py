"""Tests of colorgan.inference.evaluate_job and launch/evaluate.py: a dataset split and a folder of colour photos, with
values checked against independent numpy / scikit-image computations and against colorize.py's own outputs."""

import json
import os

import image_corpus
import numpy as np
import pytest
import run_dirs
from conftest import run_script
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from colorgan.data import records

SCRIPT = "launch/evaluate.py"


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory):
    return run_dirs.make_run(tmp_path_factory.mktemp("lab_run"), "unet")[0]


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory):
    """unet256_resnet.cfg's generator (ResNet50V2 encoder) at a test size."""
    return run_dirs.make_run(tmp_path_factory.mktemp("resnet_run"), "unet", encoder="resnet50v2", depth=0,
                             norm="instance")[0]


def _report(result):
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _colorfulness(rgb_u8):
    """Hasler & Suesstrunk, written out in numpy."""
    r, g, b = (rgb_u8[..., i].astype(np.float64) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean())


def test_a_dataset_split_at_its_stored_size(lab_run, photo_dir, tmp_path):
    data_dir = str(tmp_path / "data")
    run_dirs.write_records(photo_dir, data_dir, 40, min_shards=2, val_fraction=0.25, encoding="png")
    report = _report(run_script(SCRIPT, f"--model={lab_run}", f"--data_dir={data_dir}"))
    manifest = records.read_manifest(data_dir)
    assert report["examples"] == manifest["splits"]["val"]["num_examples"] > 0
    pairs = [(gray, rgb) for shard in manifest["splits"]["val"]["shards"]
             for _, gray, rgb in records.read_examples(f"{data_dir}/{shard['file']}")]
    gray_copy_psnr = np.mean([peak_signal_noise_ratio(rgb, np.repeat(gray.reshape(40, 40, 1), 3, -1))
                              for gray, rgb in pairs])
    assert report["psnr_gray_copy"] == pytest.approx(gray_copy_psnr, abs=1e-3)
    assert report["colorfulness_real"] == pytest.approx(np.mean([_colorfulness(rgb) for _, rgb in pairs]), rel=1e-4)
    assert report["colorfulness_gray_copy"] == pytest.approx(0.0, abs=1e-3)
    assert report["colorfulness"] > 20 and report["psnr"] != pytest.approx(report["psnr_gray_copy"], abs=0.1)


@pytest.mark.parametrize("run_fixture", ["lab_run", "resnet_run"])
def test_a_folder_of_colour_photos_goes_through_the_colorize_path(run_fixture, request, tmp_path):
    model_dir = request.getfixturevalue(run_fixture)
    photos = tmp_path / "photos"
    (photos / "sub").mkdir(parents=True)
    for index, (width, height) in enumerate([(101, 67), (64, 80), (90, 90)]):
        Image.fromarray(image_corpus.colourful(width, height, seed=index)).save(
            photos / ("sub" if index else ".") / f"p{index}.png")
    Image.fromarray(np.full((30, 30), 128, np.uint8)).save(photos / "gray.png")
    (photos / "broken.jpg").write_text("nope")
    result = run_script(SCRIPT, f"--model={model_dir}", f"--input_dir={photos}", "--samples=2",
                        f"--output_dir={tmp_path / 'eval'}")
    report = _report(result)
    assert report["examples"] == 3
    assert f"evaluate: skipped {photos / 'gray.png'}: no colour original" in result.stderr
    assert f"evaluate: skipped {photos / 'broken.jpg'}: not an image" in result.stderr
    assert "psnr" in result.stdout and "gray copy" in result.stdout  # the readable table
    # The same photos through colorize.py, written losslessly, give the same PSNR.
    run_script("launch/colorize.py", f"--model={model_dir}", f"--input={photos}", f"--output_dir={tmp_path / 'out'}",
               check=True)
    psnrs = []
    for source in sorted(photos.rglob("p*.png")):
        original = np.asarray(Image.open(source))
        colorized = np.asarray(Image.open(tmp_path / "out" / source.relative_to(photos)))
        psnrs.append(peak_signal_noise_ratio(original, colorized))
    assert report["psnr"] == pytest.approx(np.mean(psnrs), abs=1e-3)
    assert json.loads((tmp_path / "eval" / "evaluation.json").read_text()) == report
    sheets = sorted((tmp_path / "eval" / "samples").iterdir())
    assert [p.name for p in sheets] == ["sample_000.png", "sample_001.png"]
    sheet = np.asarray(Image.open(sheets[0]))
    assert sheet.shape[1] > 3 * 64 and sheet.std() > 10


@pytest.mark.parametrize("args, message", [
    ([], "evaluate: error: give either --data_dir or --input_dir"),
    (["--input_dir=x", "--data_dir=y"], "evaluate: error: give either --data_dir or --input_dir"),
    (["--input_dir=x", "--samples=2"], "evaluate: error: --samples=2 needs --output_dir"),
    (["--data_dir=/nonexistent"], "evaluate: error: /nonexistent"),
    # Found before the evaluation runs, not after it, with its results lost.
    (["--input_dir=x", f"--output_dir={os.path.abspath(__file__)}"],
     f"evaluate: error: --output_dir={os.path.abspath(__file__)}: is a file, not a directory"),
    (["--data_dir=y", "--hints=3"], "evaluate: error: --hints=3 with --data_dir: points are revealed from "
                                    "full-resolution photos; use --input_dir"),
])
def test_bad_requests_are_one_line(lab_run, args, message):
    result = run_script(SCRIPT, f"--model={lab_run}", *args)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_hints_are_revealed_from_each_original_the_same_way_on_every_run(lab_run, tmp_path):
    """--hints=K: K points per photo from its original (the paper's protocol), seeded by the photo's place, so two
    runs and two models see the same points; the colorize path takes them, which changes the colours."""
    hints_run = run_dirs.make_run(tmp_path / "hints_run", "unet", hints=True)[0]
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(2):
        Image.fromarray(image_corpus.colourful(96, 64, seed=index)).save(photos / f"p{index}.png")
    reports = [_report(run_script(SCRIPT, f"--model={hints_run}", f"--input_dir={photos}", f"--hints={hints}",
                                  *extra)) for hints, extra in ((0, []), (10, []), (10, ["--samples=1",
                                                                                        f"--output_dir={tmp_path}"]))]
    assert [report["hints"] for report in reports] == [0, 10, 10]
    assert reports[1]["psnr"] != pytest.approx(reports[0]["psnr"], abs=1e-3)
    assert reports[2] == reports[1]
    sheet = np.asarray(Image.open(tmp_path / "samples" / "sample_000.png"))
    gray_column = sheet[20:60, 4:100]
    assert np.abs(gray_column[..., 0].astype(int) - gray_column[..., 2]).max() > 30  # the points, in colour
    refused = run_script(SCRIPT, f"--model={lab_run}", f"--input_dir={photos}", "--hints=2")
    assert refused.returncode == 2 and f"evaluate: error: --hints=2: {lab_run} takes no colour hints" in (
        refused.stderr)
