"""Serves a page that colorizes dropped photos, TF Serving's REST API and POST /colorize (BUILD.md: "Serving").

  python launch/serve.py --model=exports/unet256/1 [--host=127.0.0.1] [--port=8080]

Prints "serve: http://HOST:PORT/ ..." once it listens (--port=0: a free port, named there). SIGTERM or Ctrl-C:
no new connections, requests in progress finish, then it exits 143 / 130 (128 + the signal, as Kubernetes and
shells expect). Exit status 2 for bad flags, a model that cannot be loaded or an address that cannot be bound.
"""

from colorgan.tools import serve

if __name__ == "__main__":
    serve.main()
