"""Trains a ColorGAN model on one device, all GPUs of a host, or many hosts.

  python launch/train.py --flagfile=launch/configs/smoke.cfg --data_dir=demo_out/data --model_dir=runs/smoke

Flags (defined once in colorgan/train_config.py) are validated before anything starts; a restarted run with the
same --model_dir resumes from its last checkpoint. The resolved flags are saved as MODEL_DIR/flags.cfg.
"""

from colorgan.tools import train

if __name__ == "__main__":
    train.main()
