"""Draws a run's loss curves and evaluation metrics (from MODEL_DIR/metrics.jsonl) to a PNG.

  python launch/plot_metrics.py --model_dir=runs/smoke            # writes runs/smoke/loss_curves.png
"""

from colorgan.tools import plot_metrics

if __name__ == "__main__":
    plot_metrics.main()
