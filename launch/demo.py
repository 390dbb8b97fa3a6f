"""The small end-to-end demo on CPU: bundled photos -> verified TFRecords -> a few minutes of training -> pictures.

  python launch/demo.py --workdir=demo_out
"""

from colorgan.tools import demo

if __name__ == "__main__":
    demo.main()
