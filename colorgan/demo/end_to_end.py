"""The newcomer's end-to-end run on bundled photos: dataset, verification, a short training run, its export, and
colorized full-resolution photos the model never saw (two held-out colour photos and a black-and-white one)."""

import dataclasses
import io
import json
import os

from PIL import Image

from colorgan.core import storage
from colorgan.core import visualize
from colorgan.data import conversion
from colorgan.data import conversion_config
from colorgan.data import verify
from colorgan.demo import sample_photos
from colorgan.inference import photo_files
from colorgan.training import train_config

# Enough crops that the val split is not empty and training has something to chew on.
DEMO_CROPS = 240
# A few true colours of the black-and-white photo (sky, grass, coat), as a person would click them.
DEMO_HINTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{sample_photos.BLACK_AND_WHITE_PHOTO_NAME}"
                                                                      ".hints.json")
HINTED_NAME = f"{sample_photos.BLACK_AND_WHITE_PHOTO_NAME}_with_hints"


def run(workdir, image_size=150, train_flagfile=None, train_steps=None, num_workers=0, log=print):
    """Writes workdir/photos (training photos), workdir/data (TFRecords + manifest), workdir/preview.png and, given
    a training flagfile, trains into workdir/run (samples/, loss_curves.png), exports it to workdir/export/1 (TF
    Serving's BASE/VERSION) and colorizes workdir/held_out (colour photos kept out of training) and a black-and-white
    photo into workdir/colorized with compare sheets; returns the paths made."""
    paths = {"photos": os.path.join(workdir, "photos"), "data": os.path.join(workdir, "data"),
             "preview": os.path.join(workdir, "preview.png")}
    if not storage.isdir(paths["photos"]):
        log(f"demo: writing {len(sample_photos.TRAINING_PHOTO_NAMES)} bundled photos and {DEMO_CROPS} crops to "
            f"{paths['photos']} ({', '.join(sample_photos.HELD_OUT_PHOTO_NAMES)} held out)")
        sample_photos.write_photo_folder(paths["photos"], num_crops=DEMO_CROPS, crop_size=256,
                                         names=sample_photos.TRAINING_PHOTO_NAMES)
    conversion.run(conversion_config.ConversionConfig(output_dir=paths["data"], input_dirs=(paths["photos"],),
                                                      image_size=image_size, num_workers=num_workers),
                   log=lambda m: log(f"demo: {m}"))
    report = verify.verify_dataset(paths["data"])
    if report.problems:
        raise RuntimeError(f"demo: dataset failed verification: {report.problems[0]}")
    visualize.save_png(verify.preview_sheet(paths["data"]), paths["preview"])
    log(f"demo: dataset {paths['data']} verified ({report.examples}); preview sheet {paths['preview']}")
    if train_flagfile:
        paths.update(_train(workdir, paths["data"], train_flagfile, train_steps, log))
        paths.update(_colorize(workdir, paths["run"], log))
    return paths


def _train(workdir, data_dir, flagfile, train_steps, log):
    from colorgan.training import plots  # noqa: PLC0415 - Keras loads only when the demo trains.
    from colorgan.training import train_job  # noqa: PLC0415 - Keras loads only when the demo trains.

    config = dataclasses.replace(train_config.read_flagfile(flagfile), data_dir=data_dir,
                                 model_dir=os.path.join(workdir, "run"))
    if train_steps:
        config = dataclasses.replace(config, train_steps=train_steps)
    log(f"demo: training {os.path.basename(flagfile)} for {config.train_steps} steps into {config.model_dir}")
    if train_job.train_main(config) != 0:
        raise RuntimeError("demo: training failed (see the lines above)")
    loss_curves = os.path.join(config.model_dir, plots.LOSS_CURVES_FILENAME)
    plots.plot_metrics(os.path.join(config.model_dir, "metrics.jsonl"), loss_curves)
    samples = os.path.join(config.model_dir, "samples")
    log(f"demo: sample sheets (gray | generated | real) in {samples}; loss curves {loss_curves}")
    return {"run": config.model_dir, "samples": samples, "loss_curves": loss_curves}


def _colorize(workdir, model_dir, log):
    """Exports the run, then colorizes full-resolution photos it never saw through the export, as a user would."""
    from colorgan.evaluation import evaluator  # noqa: PLC0415
    from colorgan.inference import colorize_job  # noqa: PLC0415
    from colorgan.inference import evaluate_job  # noqa: PLC0415
    from colorgan.inference import export  # noqa: PLC0415
    from colorgan.inference import loading  # noqa: PLC0415

    paths = {"export": os.path.join(workdir, "export", "1"), "held_out": os.path.join(workdir, "held_out"),
             "colorized": os.path.join(workdir, "colorized")}
    export.export(model_dir, paths["export"], overwrite=True)
    log(f"demo: exported the run to {paths['export']} (SavedModel + generator.keras + colorgan.json)")
    storage.makedirs(paths["held_out"])
    for name, pixels in sample_photos.bundled_photos(sample_photos.HELD_OUT_PHOTO_NAMES).items():
        photo_files.save_photo(pixels, os.path.join(paths["held_out"], f"{name}.png"), "PNG")
    black_and_white = os.path.join(workdir, f"{sample_photos.BLACK_AND_WHITE_PHOTO_NAME}.png")
    encoded = io.BytesIO()
    Image.fromarray(sample_photos.black_and_white_photo()).save(encoded, format="PNG")  # one channel, as scans are
    storage.write_atomic(black_and_white, encoded.getvalue())
    config = colorize_job.ColorizeConfig(model=paths["export"], inputs=(paths["held_out"], black_and_white),
                                         output_dir=paths["colorized"], compare=True, overwrite=True)
    colorize_job.run(config, log=lambda m: log(f"demo: {m}"))
    result = evaluate_job.evaluate_folder(loading.Colorizer.load(paths["export"]), (paths["held_out"],),
                                          config.max_pixels)
    paths["evaluation"] = os.path.join(workdir, "evaluation.json")
    storage.write_atomic(paths["evaluation"], json.dumps({"examples": result.count, **result.means},
                                                         sort_keys=True) + "\n")
    log(evaluator.table(result.means, f"demo: held-out photos at full resolution ({result.count}):"))
    log(f"demo: colorized photos and input | colorized sheets in {paths['colorized']}")
    if loading.Colorizer.load(paths["export"]).takes_hints:
        paths["hinted"] = _colorize_with_hints(paths, black_and_white, log)
    return paths


def _colorize_with_hints(paths, black_and_white, log):
    """The black-and-white photo again, with the hints shipped beside this module as its sidecar: what a person
    fixing wrong colours with a few clicks gets."""
    from colorgan.inference import colorize_job  # noqa: PLC0415
    from colorgan.inference import hint_points  # noqa: PLC0415

    hinted_input = os.path.join(storage.parent(black_and_white), f"{HINTED_NAME}.png")
    storage.write_atomic(hinted_input, storage.read_bytes(black_and_white))
    storage.write_atomic(hint_points.sidecar_path(hinted_input), storage.read_bytes(DEMO_HINTS))
    config = colorize_job.ColorizeConfig(model=paths["export"], inputs=(hinted_input,),
                                         output_dir=paths["colorized"], compare=True, overwrite=True)
    colorize_job.run(config, log=lambda m: log(f"demo: {m}"))
    hinted = os.path.join(paths["colorized"], f"{HINTED_NAME}.png")
    log(f"demo: {sample_photos.BLACK_AND_WHITE_PHOTO_NAME} with the colour hints of {DEMO_HINTS} (sky, grass, "
        f"coat): {hinted} and its input | hints | colorized sheet")
    return hinted
