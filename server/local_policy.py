"""What keeps a web page the user visits from driving a local server.

A server on loopback without an API key is reachable by any page in the user's browser: a
cross-site `fetch` or form with a "simple" content type (`text/plain`, form data) needs no CORS
preflight, and DNS rebinding lets a page on `attacker.example` read responses once its name
resolves to 127.0.0.1. Three checks, in front of every route:

- **Host.** Without an API key, a request whose `Host` is not a loopback name or address (or
  one the operator lists in `allowed_hosts`) is refused with 403 `host_not_allowed`; that ends
  DNS rebinding. With a key, the key is the defence and any host is served.
- **Origin.** A state-changing request (POST, PUT, PATCH, DELETE) that carries an `Origin`
  other than the server's own, and not listed in `cors_origins`, is refused with 403
  `origin_not_allowed`. Browsers send `Origin` on every cross-origin request of those methods;
  SDKs and curl send none, so they are unaffected.
- **Content type.** A request body is JSON only with a JSON content type (`application/json` or
  `*/*+json`), or `multipart/form-data` on the upload route; anything else is 415
  `unsupported_media_type`. That closes the preflight-free `text/plain` route.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import msgspec
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from server.envelope import ErrorDetail, ErrorEnvelope

CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
"""Methods a cross-origin page must not send."""
UPLOAD_PATHS = frozenset({"/v1/files"})
"""Routes that take `multipart/form-data`."""
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def is_loopback(host: str) -> bool:
    """Whether a host name or address (no port) is this machine's loopback."""
    name = host.strip("[]").rstrip(".").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """The name in a `Host` header, without its port (IPv6 literals keep no brackets)."""
    value = host_header.strip()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class LocalPolicy(msgspec.Struct, frozen=True):
    """The three checks' settings; see the module docstring."""

    api_key: bool
    """Whether the server requires a key (then any Host is served)."""
    allowed_hosts: tuple[str, ...] = ()
    """Extra host names served without a key; `*` serves every host."""
    cors_origins: tuple[str, ...] = ()
    """Origins (`scheme://host[:port]`) allowed to send state-changing requests; `*` is any."""

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Wrap an ASGI app so refused requests never reach it."""

        async def checked(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                refusal = self.refusal(_headers(scope), scope["method"], scope["path"])
                if refusal is not None:
                    await _refuse(send, *refusal)
                    return
            await app(scope, receive, send)

        return checked

    def refusal(
        self, headers: dict[str, str], method: str, path: str
    ) -> tuple[int, str, str] | None:
        """(status, code, message) for a request to refuse, or None to serve it."""
        host = headers.get("host", "")
        if not self.api_key and not self._host_allowed(host_name(host)):
            return (
                403,
                "host_not_allowed",
                f"Host {host!r} is not served: this server has no API key, so it answers only "
                "loopback names (start it with --allowed-hosts NAME to add one)",
            )
        if method in CHANGING:
            origin = headers.get("origin")
            if origin is not None and not self._origin_allowed(origin, host):
                return (
                    403,
                    "origin_not_allowed",
                    f"cross-origin {method} from {origin!r} refused "
                    "(start the server with --cors-origins ORIGIN to allow a web app)",
                )
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if _has_body(headers) and not _media_allowed(media, path):
                return (
                    415,
                    "unsupported_media_type",
                    f"request bodies must be sent as application/json, not {media or 'untyped'}",
                )
        return None

    def _host_allowed(self, name: str) -> bool:
        if is_loopback(name) or "*" in self.allowed_hosts:
            return True
        return name.lower() in {h.lower() for h in self.allowed_hosts}

    def _origin_allowed(self, origin: str, host: str) -> bool:
        if "*" in self.cors_origins or origin.rstrip("/") in self.cors_origins:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _has_body(headers: dict[str, str]) -> bool:
    if "transfer-encoding" in headers:
        return True
    return headers.get("content-length", "0").strip() not in ("", "0")


def _media_allowed(media: str, path: str) -> bool:
    if media == "application/json" or media.endswith("+json"):
        return True
    return media == "multipart/form-data" and path in UPLOAD_PATHS


async def _refuse(send: Send, status: int, code: str, message: str) -> None:
    kind = "permission_error" if status == 403 else "invalid_request_error"
    body = msgspec.json.encode(ErrorEnvelope(ErrorDetail(message, kind, None, code)))
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})
