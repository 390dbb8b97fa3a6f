"""serve.py's settings as a `flag_config` dataclass: the address, the model, and the limits the service applies
before any work (`limits`, `app`). Without TensorFlow, so --help is quick."""

import dataclasses
import ipaddress

from colorgan.core import flag_config
from colorgan.inference import inference_flags
from colorgan.inference import photo_files
from colorgan.serving import request_guard

_field = flag_config.field


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    model: str = inference_flags.model_field()
    host: str = _field("127.0.0.1", "Address to listen on (an IP address; 0.0.0.0 exposes it).")
    port: int = _field(8080, "Port to listen on (0: any free port, printed).", minimum=0, maximum=65535)
    model_name: str = _field("colorgan", "The model's name in /v1/models/NAME (TF Serving's).")
    allowed_hosts: tuple = _field(
        (), "Host names clients reach this server by, besides the loopback names (repeat or comma list); required "
            "to listen beyond loopback. Other Host headers get 403 (DNS rebinding).")
    max_upload_mb: float = _field(50.0, "Larger request bodies get 413.", positive=True)
    max_pixels: int = inference_flags.max_pixels_field("Photos with more pixels get 413 (read from the header: "
                                                       "decompression bombs).")
    max_queue: int = _field(64, "Colorize requests in progress at once; past it 503 + Retry-After.", positive=True)
    max_batch: int = _field(16, "Photos per batched model call (1: no batching).", positive=True)
    batch_timeout_ms: float = _field(5.0, "How long a photo waits for others to batch with.", minimum=0.0,
                                     maximum=10_000.0)
    body_timeout_s: float = _field(30.0, "A request body not received whole within this gets 408 and a closed "
                                         "connection (slow uploads cannot hold the server).", positive=True)
    max_connections: int = _field(128, "Open connections at once; past it 503 (slow clients, uploads in progress).",
                                  positive=True)
    max_pixels_in_flight: int = _field(
        2 * photo_files.DEFAULT_MAX_PIXELS, "Decoded pixels (every GIF frame) of the photos being colorized at once; "
        "past it 503. With --max_connections and --max_upload_mb it bounds memory (BUILD.md).", positive=True)

    @property
    def max_upload_bytes(self):
        return int(self.max_upload_mb * 2**20)

    def allowed_host_names(self):
        """--allowed_hosts as a list of names (repeated flags, comma lists)."""
        return [name.strip() for value in self.allowed_hosts for name in value.split(",") if name.strip()]

    def validate(self):
        """One line per bad flag."""
        problems = [*inference_flags.required(self, "model"), *flag_config.value_problems(self)]
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            problems.append(f"--host={self.host}: not an IP address")
        if not self.model_name or "/" in self.model_name or ":" in self.model_name:
            problems.append(f"--model_name={self.model_name!r}: must be non-empty, without '/' or ':'")
        if self.max_pixels_in_flight < self.max_pixels:
            problems.append(f"--max_pixels_in_flight={self.max_pixels_in_flight}: below --max_pixels="
                            f"{self.max_pixels}, so the largest photo accepted could never be colorized")
        if not problems and not request_guard.is_loopback(self.host) and not self.allowed_host_names():
            problems.append(f"--host={self.host}: listening beyond loopback needs --allowed_hosts, the names clients "
                            "use to reach this server (any other Host header is refused)")
        return problems
