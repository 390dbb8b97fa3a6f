"""Measures a run or an export: PSNR, SSIM, colorfulness and |delta colorfulness| against the real photos, and the
same for the gray copy (the baseline to beat).

  python launch/evaluate.py --model=runs/unet256 --data_dir=data/photos256 --split=val
  python launch/evaluate.py --model=exports/unet256/1 --input_dir=held_out_photos/ --samples=4 --output_dir=eval/

--data_dir evaluates a dataset split at its stored size; --input_dir evaluates colour photos at full resolution
through exactly colorize.py's path (gray -> colorize -> compare with the original). Prints a table, then one JSON
line.
"""

from colorgan.tools import evaluate

if __name__ == "__main__":
    evaluate.main()
