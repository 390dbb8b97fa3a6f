"""The small end-to-end demo on CPU: bundled photos -> verified TFRecords -> a few minutes of training -> pictures.

Run from a clone (it trains with launch/configs/); see colorgan/tools/demo.py, whose docstring `--help` shows.
"""

from colorgan.tools import demo

if __name__ == "__main__":
    demo.main()
