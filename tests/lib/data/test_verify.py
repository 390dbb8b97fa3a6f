"""Tests of colorgan.data.verify on damage that a checksum alone cannot tell apart: CRC, counts, missing files."""

import json

import dataset_damage

from colorgan.data import conversion
from colorgan.data import conversion_config
from colorgan.data import records
from colorgan.data import verify


def _dataset(photo_dir, output_dir, **overrides):
    conversion.run(conversion_config.ConversionConfig(**{
        **dict(output_dir=str(output_dir), input_dirs=(photo_dir,), image_size=32, num_workers=1, min_shards=2,
               val_fraction=0.2), **overrides}), log=lambda _: None)
    return json.loads((output_dir / records.MANIFEST_FILENAME).read_text())


def _rewrite_manifest(output_dir, manifest):
    (output_dir / records.MANIFEST_FILENAME).write_text(json.dumps(manifest))


def test_clean_dataset_has_no_problems(photo_dir, tmp_path):
    manifest = _dataset(photo_dir, tmp_path)
    report = verify.verify_dataset(str(tmp_path))
    assert report.problems == []
    assert report.examples == {split: manifest["splits"][split]["num_examples"] for split in records.SPLITS}
    assert sum(report.examples.values()) == 40


def test_crc_damage_is_reported_even_when_the_manifest_matches(photo_dir, tmp_path):
    manifest = _dataset(photo_dir, tmp_path)
    shard = manifest["splits"]["val"]["shards"][0]
    path = tmp_path / shard["file"]
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x01  # inside the last record's payload
    path.write_bytes(bytes(data))
    shard["bytes"], shard["sha256"] = records.file_digest(path)
    _rewrite_manifest(tmp_path, manifest)
    problems = verify.verify_dataset(str(tmp_path)).problems
    assert len(problems) == 1 and problems[0].startswith(f"{shard['file']}: damaged record after ")


def test_missing_shard_and_wrong_counts(photo_dir, tmp_path):
    manifest = _dataset(photo_dir, tmp_path)
    missing = manifest["splits"]["train"]["shards"][0]["file"]
    (tmp_path / missing).unlink()
    manifest["splits"]["train"]["shards"][1]["num_examples"] += 1
    _rewrite_manifest(tmp_path, manifest)
    problems = verify.verify_dataset(str(tmp_path)).problems
    second = manifest["splits"]["train"]["shards"][1]
    assert problems == [
        f"{missing}: missing",
        f"{second['file']}: {second['num_examples'] - 1} records, manifest says {second['num_examples']}",
        f"manifest.json: split train says {manifest['splits']['train']['num_examples']} examples, "
        f"its shards say {manifest['splits']['train']['num_examples'] + 1}",
    ]


def test_png_gray_that_is_not_the_luma_of_its_colour_image_is_reported(photo_dir, tmp_path):
    _dataset(photo_dir, tmp_path, encoding="png")
    assert verify.verify_dataset(str(tmp_path)).problems == []
    shard_file, index, key = dataset_damage.replace_gray_of_one_record(tmp_path)
    assert verify.verify_dataset(str(tmp_path)).problems == [
        f"{shard_file}: record {index} ({key}): gray is not the luma of rgb"]
