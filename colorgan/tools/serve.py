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

from absl import flags
from absl import logging

from colorgan.core import cli

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from colorgan.core import native_logs
from colorgan.inference import photo_files
from colorgan.serving import request_guard

_MODEL = flags.DEFINE_string("model", "", "An export made by launch/export.py or a training run's --model_dir.")
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (an IP address; 0.0.0.0 exposes it).")
_PORT = flags.DEFINE_integer("port", 8080, "Port to listen on (0: any free port, printed).")
_MODEL_NAME = flags.DEFINE_string("model_name", "colorgan", "The model's name in /v1/models/NAME (TF Serving's).")
_MAX_UPLOAD_MB = flags.DEFINE_float("max_upload_mb", 50.0, "Larger request bodies get 413.")
_MAX_PIXELS = flags.DEFINE_integer("max_pixels", photo_files.DEFAULT_MAX_PIXELS,
                                   "Photos with more pixels get 413 (read from the header: decompression bombs).")
_MAX_QUEUE = flags.DEFINE_integer("max_queue", 64, "Colorize requests in progress at once; past it 503 + Retry-After.")
_MAX_BATCH = flags.DEFINE_integer("max_batch", 16, "Photos per batched model call (1: no batching).")
_BATCH_TIMEOUT_MS = flags.DEFINE_float("batch_timeout_ms", 5.0, "How long a photo waits for others to batch with.")
_ALLOWED_HOSTS = flags.DEFINE_multi_string(
    "allowed_hosts", [], "Host names clients reach this server by, besides the loopback names (repeat or comma "
    "list); required to listen beyond loopback. Other Host headers get 403 (DNS rebinding).")
_BODY_TIMEOUT_S = flags.DEFINE_float("body_timeout_s", 30.0, "A request body not received whole within this gets "
                                     "408 and a closed connection (slow uploads cannot hold the server).")
_MAX_CONNECTIONS = flags.DEFINE_integer("max_connections", 128, "Open connections at once; past it 503 (slow "
                                        "clients, uploads in progress).")
_MAX_PIXELS_IN_FLIGHT = flags.DEFINE_integer(
    "max_pixels_in_flight", 2 * photo_files.DEFAULT_MAX_PIXELS, "Decoded pixels (every GIF frame) of the photos "
    "being colorized at once; past it 503. With --max_connections and --max_upload_mb it bounds memory (BUILD.md).")


def _flag_errors():
    """One line per bad flag value."""
    errors = []
    if not _MODEL.value:
        errors.append("--model is required")
    try:
        ipaddress.ip_address(_HOST.value)
    except ValueError:
        errors.append(f"--host={_HOST.value}: not an IP address")
    if not 0 <= _PORT.value <= 65535:
        errors.append(f"--port={_PORT.value}: not in 0..65535")
    if not _MODEL_NAME.value or "/" in _MODEL_NAME.value or ":" in _MODEL_NAME.value:
        errors.append(f"--model_name={_MODEL_NAME.value!r}: must be non-empty, without '/' or ':'")
    for flag in (_MAX_UPLOAD_MB, _MAX_PIXELS, _MAX_QUEUE, _MAX_BATCH, _BODY_TIMEOUT_S, _MAX_CONNECTIONS,
                 _MAX_PIXELS_IN_FLIGHT):
        if not flag.value > 0:
            errors.append(f"--{flag.name}={flag.value}: must be positive")
    if not 0 <= _BATCH_TIMEOUT_MS.value <= 10_000:
        errors.append(f"--batch_timeout_ms={_BATCH_TIMEOUT_MS.value}: not in 0..10000")
    if _MAX_PIXELS_IN_FLIGHT.value < _MAX_PIXELS.value:
        errors.append(f"--max_pixels_in_flight={_MAX_PIXELS_IN_FLIGHT.value}: below --max_pixels="
                      f"{_MAX_PIXELS.value}, so the largest photo accepted could never be colorized")
    if not errors and not request_guard.is_loopback(_HOST.value) and not _allowed_hosts():
        errors.append(f"--host={_HOST.value}: listening beyond loopback needs --allowed_hosts, the names clients "
                      "use to reach this server (any other Host header is refused)")
    return errors


def _allowed_hosts():
    """--allowed_hosts as a list of names (repeated flags, comma lists)."""
    return [name.strip() for value in _ALLOWED_HOSTS.value for name in value.split(",") if name.strip()]


def _bind():
    """The listening socket, bound before the model loads so a taken port fails at once."""
    family = socket.AF_INET6 if ipaddress.ip_address(_HOST.value).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((_HOST.value, _PORT.value))
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
    errors = _flag_errors()
    if errors:
        return cli.usage_error("serve", errors[0])
    try:
        sock = _bind()
    except OSError as e:
        return cli.usage_error("serve", f"--host={_HOST.value} --port={_PORT.value}: cannot listen there: {e.strerror}")
    logging.set_verbosity(logging.WARNING)  # tf.saved_model.save logs each signature at INFO
    with native_logs.filtered():
        import uvicorn  # noqa: PLC0415 - TensorFlow and the server load once the flags are known good.

        from colorgan.inference import loading  # noqa: PLC0415
        from colorgan.serving import app as serving_app  # noqa: PLC0415
        from colorgan.serving import limits as serving_limits  # noqa: PLC0415
        from colorgan.serving import served_model  # noqa: PLC0415

        try:
            model = served_model.ServedModel(_MODEL.value, _MAX_PIXELS.value)
        except loading.DamagedModel as e:
            return cli.failure("serve", str(e))
        except loading.InferenceError as e:
            return cli.usage_error("serve", str(e))
    limits = serving_limits.Limits(max_upload_mb=_MAX_UPLOAD_MB.value, max_pixels=_MAX_PIXELS.value,
                                   max_queue=_MAX_QUEUE.value, max_batch=_MAX_BATCH.value,
                                   batch_timeout_ms=_BATCH_TIMEOUT_MS.value, body_timeout_s=_BODY_TIMEOUT_S.value,
                                   max_connections=_MAX_CONNECTIONS.value,
                                   max_pixels_in_flight=_MAX_PIXELS_IN_FLIGHT.value)
    allowed_hosts = [*request_guard.LOOPBACK_NAMES, *_allowed_hosts()]
    application = serving_app.make_app(model, limits, _MODEL_NAME.value, allowed_hosts)
    host, port = sock.getsockname()[:2]
    url_host = f"[{host}]" if ":" in host else host
    banner = (f"serve: http://{url_host}:{port}/ (model {_MODEL.value}: {model.description['generator']} at "
              f"{model.render_size} px, step {model.description['step']}; API /v1/models/{_MODEL_NAME.value})")
    # timeout_graceful_shutdown None: on SIGTERM uvicorn stops accepting and waits for every request in progress.
    server = uvicorn.Server(uvicorn.Config(application, log_level="warning", timeout_graceful_shutdown=None,
                                           lifespan="on", limit_concurrency=limits.max_connections))
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
