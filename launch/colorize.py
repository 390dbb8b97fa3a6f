"""Colorizes photos at full resolution with a trained run or an export.

  python launch/colorize.py --model=runs/unet256 --input=old_photos/ --output_dir=colorized/ --compare
  python launch/colorize.py --model=exports/unet256 --input='scans/*.tif' --output_dir=colorized/
  python launch/colorize.py --model=runs/unet256_hints --input=camera.png --hints=camera.hints.json --output_dir=out/
  python launch/colorize.py --model=gs://b/exports/unet256 --input=gs://b/archive --output_dir=gs://b/colorized \\
      --runner=beam --batch_size=16 --beam_pipeline_options=runner=DataflowRunner,project=P,region=R,...

Inputs: files, folders (walked recursively, structure mirrored) or globs. A rerun skips finished outputs.
Exit status: 0 when at least one photo was colorized (or all were done before) and every other one reported, 1 when
none could be, 2 for bad flags or a model that cannot be loaded.
"""

from colorgan.tools import colorize

if __name__ == "__main__":
    colorize.main()
