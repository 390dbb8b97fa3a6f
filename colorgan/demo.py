"""The newcomer's end-to-end run on bundled photos: build a dataset, verify it, draw its preview sheet."""

import os

from colorgan import conversion
from colorgan import sample_photos
from colorgan import verify
from colorgan import visualize

# Enough crops that the val split is not empty and training (later) has something to chew on.
DEMO_CROPS = 240


def run(workdir, image_size=150, num_workers=0, log=print):
    """Writes workdir/photos, workdir/data (TFRecords + manifest) and workdir/preview.png; returns their paths."""
    photos = os.path.join(workdir, "photos")
    data = os.path.join(workdir, "data")
    preview = os.path.join(workdir, "preview.png")
    if not os.path.isdir(photos):
        log(f"demo: writing {len(sample_photos.PHOTO_NAMES)} bundled photos and {DEMO_CROPS} crops to {photos}")
        sample_photos.write_photo_folder(photos, num_crops=DEMO_CROPS, crop_size=256)
    conversion.run(conversion.ConversionConfig(output_dir=data, input_dirs=(photos,), image_size=image_size,
                                               num_workers=num_workers), log=lambda m: log(f"demo: {m}"))
    report = verify.verify_dataset(data)
    if report.problems:
        raise RuntimeError(f"demo: dataset failed verification: {report.problems[0]}")
    visualize.save_png(verify.preview_sheet(data), preview)
    log(f"demo: dataset {data} verified ({report.examples}); preview sheet {preview}")
    return {"photos": photos, "data": data, "preview": preview}
