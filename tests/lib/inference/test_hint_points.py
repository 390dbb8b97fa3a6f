"""Tests of colorgan.inference.hint_points: hints files read strictly (one line naming what is wrong), and the
paper's evaluation protocol revealing patch means around the photo's centre."""

import json
import os

import numpy as np
import pytest

from colorgan.inference import hint_points


def test_a_hints_file_gives_points_in_photo_pixels_and_srgb():
    hints = hint_points.parse(json.dumps({"points": [{"x": 3, "y": 4.5, "color": "#2a5caa"},
                                                     {"x": 0, "y": 0, "color": "#F0a"}]}), 10, 8)
    np.testing.assert_array_equal(hints.xy, [[3, 4.5], [0, 0]])
    np.testing.assert_allclose(hints.rgb, [[42 / 255, 92 / 255, 170 / 255], [1, 0, 170 / 255]])
    xy, rgb, mask = hints.arrays()
    assert mask.tolist() == [1, 1] and len(hints) == 2
    assert len(hint_points.parse('{"points": []}', 10, 8)) == 0
    assert hint_points.sidecar_path("/a/b/scan.tif") == "/a/b/scan.hints.json"


@pytest.mark.parametrize("text, reason", [
    ("{", "not JSON"), ("[]", 'expected {"points"'), ('{"points": 3}', 'expected {"points"'),
    ('{"points": [3]}', "point 0: expected an object"),
    ('{"points": [{"x": "1", "y": 1, "color": "#000"}]}', "point 0: x and y must be numbers"),
    ('{"points": [{"x": true, "y": 1, "color": "#000"}]}', "point 0: x and y must be numbers"),
    ('{"points": [{"x": 10, "y": 1, "color": "#000"}]}', r"point 0: \(10, 1\) is outside the 10x8 photo"),
    ('{"points": [{"x": -0.5, "y": 1, "color": "#000"}]}', r"point 0: \(-0.5, 1\) is outside"),
    ('{"points": [{"x": 1, "y": 1, "color": "#00000g"}]}', "point 0: color '#00000g' is not #rrggbb or #rgb"),
    ('{"points": [{"x": 1, "y": 1}]}', "point 0: color None is not"),
    (json.dumps({"points": [{"x": 1, "y": 1, "color": "#000"}] * 257}), "257 points: at most 256"),
])
def test_a_bad_hints_file_is_one_line_naming_it(tmp_path, text, reason):
    path = tmp_path / "photo.hints.json"
    path.write_text(text)
    with pytest.raises(hint_points.HintsError, match=f"^{path}: {reason}") as raised:
        hint_points.load(str(path), 10, 8)
    assert "\n" not in str(raised.value)


def test_a_fifo_or_folder_is_refused_without_reading_it(tmp_path):
    os.mkfifo(tmp_path / "fifo.hints.json")
    (tmp_path / "folder.hints.json").mkdir()
    for name in ("fifo.hints.json", "folder.hints.json"):
        with pytest.raises(hint_points.HintsError, match="not a regular file"):
            hint_points.load(str(tmp_path / name), 10, 8)


def test_the_evaluation_protocol_reveals_patch_means_around_the_centre():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (300, 512, 3), np.uint8)
    hints = hint_points.from_original(photo, 2000, np.random.default_rng(1))
    side = 12  # 6/256 of the longer side, 512
    assert len(hints) == 2000
    x, y = hints.xy[:, 0], hints.xy[:, 1]
    left, top = (x - (side - 1) / 2).astype(int), (y - (side - 1) / 2).astype(int)
    assert left.min() >= 0 and left.max() <= 512 - side and top.max() <= 300 - side
    # Each colour is its patch's mean.
    for index in (0, 1, 1999):
        patch = photo[top[index]:top[index] + side, left[index]:left[index] + side]
        np.testing.assert_allclose(hints.rgb[index], patch.reshape(-1, 3).mean(0) / 255, atol=1e-6)
    # Corners normal around the centre, sigma a quarter of the free side: ~68% within one sigma (clipping aside).
    assert abs(np.mean(np.abs(left - (512 - side + 1) / 2) < (512 - side + 1) / 4) - 0.68) < 0.04
    assert len(hint_points.from_original(photo, 0, rng)) == 0
