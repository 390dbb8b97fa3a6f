"""Tests of data_prep/inspect_tfrecords.py: verification of good and damaged datasets, and the preview sheet."""


import dataset_damage
import numpy as np
from conftest import run_script
from PIL import Image

from colorgan.data import conversion
from colorgan.data import conversion_config
from colorgan.data import records

SCRIPT = "data_prep/inspect_tfrecords.py"


def _dataset(photo_dir, output_dir):
    return conversion.run(conversion_config.ConversionConfig(
        output_dir=str(output_dir), input_dirs=(photo_dir,), image_size=48, num_workers=1, min_shards=3,
        val_fraction=0.3), log=lambda _: None)


def test_good_dataset_verifies_and_previews(photo_dir, tmp_path):
    manifest = _dataset(photo_dir, tmp_path / "data")
    result = run_script(SCRIPT, f"--data_dir={tmp_path / 'data'}", f"--preview={tmp_path / 'preview.png'}",
                        "--preview_count=6", check=True)
    counts = {split: manifest["splits"][split]["num_examples"] for split in records.SPLITS}
    assert f"OK: {tmp_path / 'data'} (train {counts['train']}, val {counts['val']} examples verified)" in result.stdout
    sheet = np.asarray(Image.open(tmp_path / "preview.png"))
    # 6 pairs, 4 per row: 2 rows of 8 cells, 48 px each with 4 px padding, under a 14 px title band.
    assert sheet.shape == (4 + 14 + 4 + 2 * 52, 4 + 8 * 52, 3)


def test_damaged_shard_is_named_and_exit_is_non_zero(photo_dir, tmp_path):
    manifest = _dataset(photo_dir, tmp_path / "data")
    damaged = manifest["splits"]["train"]["shards"][1]["file"]
    path = tmp_path / "data" / damaged
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    result = run_script(SCRIPT, f"--data_dir={tmp_path / 'data'}")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("inspect_tfrecords: error")]
    assert len(errors) == 1 and errors[0].startswith(f"inspect_tfrecords: error: {damaged}: sha256 ")


def test_png_gray_that_is_not_the_luma_is_named_and_exit_is_non_zero(photo_dir, tmp_path):
    """The luma check is the only one that runs on PNG datasets alone: a valid record whose gray image is one level
    off at one pixel, in a shard whose size and sha256 the manifest matches."""
    conversion.run(conversion_config.ConversionConfig(
        output_dir=str(tmp_path / "data"), input_dirs=(photo_dir,), image_size=32, num_workers=1, min_shards=2,
        val_fraction=0.2, encoding="png"), log=lambda _: None)
    shard_file, index, key = dataset_damage.replace_gray_of_one_record(tmp_path / "data")
    result = run_script(SCRIPT, f"--data_dir={tmp_path / 'data'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("inspect_tfrecords: error")]
    assert errors == [f"inspect_tfrecords: error: {shard_file}: record {index} ({key}): gray is not the luma of rgb"]


def test_missing_manifest_is_one_line(tmp_path):
    result = run_script(SCRIPT, f"--data_dir={tmp_path}")
    assert result.returncode == 1
    assert f"inspect_tfrecords: error: {tmp_path}/manifest.json: no manifest" in result.stderr
    assert "Traceback" not in result.stderr
