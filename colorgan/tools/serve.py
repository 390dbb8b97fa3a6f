"""Serves a page that colorizes dropped photos, TF Serving's REST API and POST /colorize (BUILD.md: "Serving").

  colorgan-serve --model=exports/unet256/1 [--host=127.0.0.1] [--port=8080]

Prints "serve: http://HOST:PORT/ ..." once it listens (--port=0: a free port, named there). SIGTERM or Ctrl-C:
no new connections, requests in progress finish, then it exits 143 / 130 (128 + the signal, as Kubernetes and
shells expect). Exit status 2 for bad flags, a model path holding no model or an address that cannot be bound; 1
for a damaged model (BUILD.md, "Exit statuses").
"""

import asyncio
import ipaddress
import os
import signal
import socket
import sys

from absl import logging

from colorgan.core import cli
from colorgan.core import flag_config
from colorgan.core import native_logs
from colorgan.serving import request_guard
from colorgan.serving import serve_config

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

flag_config.define_flags(serve_config.ServeConfig)


def _bind(host, port):
    """The listening socket, bound before the model loads so a taken port fails at once."""
    family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


async def _serve(server, sock, banner):
    serving = asyncio.ensure_future(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    if server.started:
        print(banner, file=sys.stderr, flush=True)
    await serving


def _exit_after_sigterm(signum, frame):
    """uvicorn re-raises a SIGTERM once the requests in progress are answered. Dying of it would skip exit handlers
    (TensorFlow's removal of its autograph files in $TMPDIR among them); exiting with 143 runs them, and a shell or
    Kubernetes reads 143 as "ended by SIGTERM" all the same."""
    raise SystemExit(128 + signum)


def _main(argv):
    config = flag_config.from_flags(serve_config.ServeConfig)
    problems = config.validate()
    if problems:
        return cli.usage_errors("serve", problems)
    try:
        sock = _bind(config.host, config.port)
    except OSError as e:
        return cli.usage_error("serve", f"--host={config.host} --port={config.port}: cannot listen there: "
                                        f"{e.strerror}")
    logging.set_verbosity(logging.WARNING)  # tf.saved_model.save logs each signature at INFO
    with native_logs.filtered():
        import uvicorn  # noqa: PLC0415 - TensorFlow and the server load once the flags are known good.

        from colorgan.inference import loading  # noqa: PLC0415
        from colorgan.serving import app as serving_app  # noqa: PLC0415
        from colorgan.serving import served_model  # noqa: PLC0415

        try:
            model = served_model.ServedModel(config.model, config.max_pixels)
        except loading.DamagedModel as e:
            return cli.failure("serve", str(e))
        except loading.InferenceError as e:
            return cli.usage_error("serve", str(e))
    allowed_hosts = [*request_guard.LOOPBACK_NAMES, *config.allowed_host_names()]
    application = serving_app.make_app(model, config, config.model_name, allowed_hosts)
    host, port = sock.getsockname()[:2]
    url_host = f"[{host}]" if ":" in host else host
    banner = (f"serve: http://{url_host}:{port}/ (model {config.model}: {model.description['generator']} at "
              f"{model.render_size} px, step {model.description['step']}; API /v1/models/{config.model_name})")
    # timeout_graceful_shutdown None: on SIGTERM uvicorn stops accepting and waits for every request in progress.
    server = uvicorn.Server(uvicorn.Config(application, log_level="warning", timeout_graceful_shutdown=None,
                                           lifespan="on", limit_concurrency=config.max_connections))
    signal.signal(signal.SIGTERM, _exit_after_sigterm)
    try:
        asyncio.run(_serve(server, sock, banner))
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it deferred until requests in progress finished
        return 130
    return 0


def main():
    """The colorgan-serve command (also `python launch/serve.py`)."""
    cli.run("serve", _main)


if __name__ == "__main__":
    main()
