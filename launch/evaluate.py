"""Measures a run or an export: PSNR, SSIM, colorfulness and |delta colorfulness| against the real photos, and the

The same as the installed command; see colorgan/tools/evaluate.py, whose docstring `--help` shows.
"""

from colorgan.tools import evaluate

if __name__ == "__main__":
    evaluate.main()
