"""Draws a run's loss curves and evaluation metrics (from MODEL_DIR/metrics.jsonl) to a PNG.

The same as the installed command; see colorgan/tools/plot_metrics.py, whose docstring `--help` shows.
"""

from colorgan.tools import plot_metrics

if __name__ == "__main__":
    plot_metrics.main()
