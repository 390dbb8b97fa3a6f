"""Who may talk to the service, decided before any route runs, as local development servers decide it.

- The Host header must name this server (loopback names by default, `--allowed_hosts` to add): a page of
  evil.example whose name an attacker re-points at 127.0.0.1 (DNS rebinding) sends `Host: evil.example`, and would
  otherwise read the API with the user's browser.
- A browser's request on behalf of another site's page is refused: its Origin is not this server's own
  (scheme://Host), or Sec-Fetch-Site says it is not same-origin. Any page the user opens can otherwise POST to a
  local server (a "simple" text/plain request needs no CORS preflight). Requests without these headers (curl, TF
  Serving clients, scripts) are not browsers acting for a page, and pass.
Refusals are 403 in TF Serving's error shape, {"error": ...}.
"""

import ipaddress
import json
import urllib.parse

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_BROWSER_SITES_ALLOWED = ("same-origin", "none")  # Sec-Fetch-Site: the page itself, or a URL the user typed


def host_name(host):
    """The name in a Host header or URL authority, without its port, lowercased; IPv6 without brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else ""
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def is_loopback(address):
    """Whether an IP address (as --host takes it) is a loopback address."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class RequestGuard:
    """ASGI middleware: refuses requests whose Host is not in `allowed_hosts` (names without ports) and browser
    requests that are not from the service's own page."""

    def __init__(self, app, allowed_hosts):
        self.app = app
        self.allowed = frozenset(host_name(name) for name in allowed_hosts)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        problem = self.problem(headers)
        if problem is None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": problem}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def problem(self, headers):
        """Why a request with these headers (lowercase names) is refused, or None."""
        host = headers.get("host", "")
        if host_name(host) not in self.allowed:
            return f"Host {host!r} is not served here (add it with --allowed_hosts)"
        origin = headers.get("origin")
        if origin is not None:
            parts = urllib.parse.urlsplit(origin)
            if parts.scheme != "http" or parts.netloc.lower() != host.strip().lower():
                return f"cross-origin request from {origin} refused: only this server's own page may call it"
        site = headers.get("sec-fetch-site")
        if site is not None and site not in _BROWSER_SITES_ALLOWED:
            return f"cross-origin request ({site}) refused: only this server's own page may call it"
        return None
