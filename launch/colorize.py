"""Colorizes photos at full resolution with a trained run or an export.

The same as the installed command; see colorgan/tools/colorize.py, whose docstring `--help` shows.
"""

from colorgan.tools import colorize

if __name__ == "__main__":
    colorize.main()
