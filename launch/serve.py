"""Serves a page that colorizes dropped photos, TF Serving's REST API and POST /colorize (BUILD.md: "Serving").

The same as the installed command; see colorgan/tools/serve.py, whose docstring `--help` shows.
"""

from colorgan.tools import serve

if __name__ == "__main__":
    serve.main()
