"""Tests of colorgan.inference.colorize_steps: one photo's steps, whichever runner takes them (the runners' own
tests: test_colorize_job, test_beam_colorize, tests/launch/test_colorize.py)."""

import image_corpus
import numpy as np
import run_dirs
from PIL import Image

from colorgan.inference import colorize_job
from colorgan.inference import colorize_steps
from colorgan.inference import loading


def test_a_batch_of_photos_of_any_sizes_is_one_generator_call_per_kind(tmp_path):
    """Photos of three sizes share one call of the model's chroma; each photo's chroma is its own (within float
    rounding of a call of its own)."""
    colorizer = loading.Colorizer.load(run_dirs.make_run(tmp_path / "run", "unet")[0])
    config = colorize_job.ColorizeConfig(model="", inputs=(), output_dir=str(tmp_path / "out"))
    prepared = []
    for index, size in enumerate([(50, 30), (40, 64), (33, 33)]):
        path = tmp_path / f"photo{index}.png"
        Image.fromarray(image_corpus.colourful(*size, seed=index)).save(path)
        task = colorize_steps.PhotoTask(str(path), f"photo{index}", str(tmp_path / "out" / f"photo{index}.png"), "PNG")
        prepared.append(colorize_steps.prepare(task, config, colorizer.stages, colorizer.takes_hints))
    calls = []
    chroma = colorizer.chroma
    colorizer.chroma = lambda canvas, canvas_hints=None: calls.append(canvas.shape) or chroma(canvas, canvas_hints)
    batched = colorize_steps.chroma_for(colorizer, prepared)
    assert calls == [(3, 32, 32, 1)]
    for item, ab in zip(prepared, batched):
        assert ab.shape == (1, 32, 32, 2)
        np.testing.assert_allclose(ab, chroma(item.canvas), atol=0.05)  # CIE units: far below one level


def test_a_hints_file_with_no_points_is_hints_for_a_hints_model(tmp_path):
    """{"points": []} is a valid hints file: the photo goes to the hints generator with an empty canvas, as before
    batching (an empty Hints is falsy, which once made it fail)."""
    colorizer = loading.Colorizer.load(run_dirs.make_run(tmp_path / "run", "unet", hints=True)[0])
    path = tmp_path / "photo.png"
    Image.fromarray(image_corpus.colourful(40, 30)).save(path)
    (tmp_path / "photo.hints.json").write_text('{"points": []}')
    config = colorize_job.ColorizeConfig(model="", inputs=(), output_dir=str(tmp_path / "out"))
    task = colorize_steps.PhotoTask(str(path), "photo", str(tmp_path / "out" / "photo.png"), "PNG")
    prepared = colorize_steps.prepare(task, config, colorizer.stages, colorizer.takes_hints)
    assert len(prepared.hints) == 0 and prepared.canvas_hints.shape == (1, 32, 32, 3)
    assert not prepared.canvas_hints.any()
