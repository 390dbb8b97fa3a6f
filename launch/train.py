"""Trains a ColorGAN model on one device, all GPUs of a host, or many hosts.

The same as the installed command; see colorgan/tools/train.py, whose docstring `--help` shows.
"""

from colorgan.tools import train

if __name__ == "__main__":
    train.main()
