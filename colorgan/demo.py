"""The newcomer's end-to-end run on bundled photos: dataset, verification, a short training run, pictures."""

import dataclasses
import os

from colorgan import conversion
from colorgan import sample_photos
from colorgan import train_config
from colorgan import verify
from colorgan import visualize

# Enough crops that the val split is not empty and training has something to chew on.
DEMO_CROPS = 240


def run(workdir, image_size=150, train_flagfile=None, train_steps=None, num_workers=0, log=print):
    """Writes workdir/photos, workdir/data (TFRecords + manifest), workdir/preview.png and, given a training
    flagfile, trains into workdir/run (samples/, loss_curves.png); returns the paths made."""
    paths = {"photos": os.path.join(workdir, "photos"), "data": os.path.join(workdir, "data"),
             "preview": os.path.join(workdir, "preview.png")}
    if not os.path.isdir(paths["photos"]):
        log(f"demo: writing {len(sample_photos.PHOTO_NAMES)} bundled photos and {DEMO_CROPS} crops to "
            f"{paths['photos']}")
        sample_photos.write_photo_folder(paths["photos"], num_crops=DEMO_CROPS, crop_size=256)
    conversion.run(conversion.ConversionConfig(output_dir=paths["data"], input_dirs=(paths["photos"],),
                                               image_size=image_size, num_workers=num_workers),
                   log=lambda m: log(f"demo: {m}"))
    report = verify.verify_dataset(paths["data"])
    if report.problems:
        raise RuntimeError(f"demo: dataset failed verification: {report.problems[0]}")
    visualize.save_png(verify.preview_sheet(paths["data"]), paths["preview"])
    log(f"demo: dataset {paths['data']} verified ({report.examples}); preview sheet {paths['preview']}")
    if train_flagfile:
        paths.update(_train(workdir, paths["data"], train_flagfile, train_steps, log))
    return paths


def _train(workdir, data_dir, flagfile, train_steps, log):
    from colorgan import launcher, plots  # noqa: PLC0415 - Keras loads only when the demo trains.

    config = dataclasses.replace(train_config.read_flagfile(flagfile), data_dir=data_dir,
                                 model_dir=os.path.join(workdir, "run"))
    if train_steps:
        config = dataclasses.replace(config, train_steps=train_steps)
    log(f"demo: training {os.path.basename(flagfile)} for {config.train_steps} steps into {config.model_dir}")
    if launcher.train_main(config) != 0:
        raise RuntimeError("demo: training failed (see the lines above)")
    loss_curves = os.path.join(config.model_dir, plots.LOSS_CURVES_FILENAME)
    plots.plot_metrics(os.path.join(config.model_dir, "metrics.jsonl"), loss_curves)
    samples = os.path.join(config.model_dir, "samples")
    log(f"demo: sample sheets (gray | generated | real) in {samples}; loss curves {loss_curves}")
    return {"run": config.model_dir, "samples": samples, "loss_curves": loss_curves}
