"""An ASGI guard in front of the serve app: Host allow-list, API keys, request body size.

Pure ASGI (not a BaseHTTPMiddleware), so streaming responses and client-disconnect
detection pass through untouched. Order per request: the Host header (421 if not allowed),
the API key (401; every path but ``/health`` when keys are configured, so ``/openapi.json``
is covered), then the body: refused (413) on a ``Content-Length`` over the limit before
anything is read, and counted while it streams in (a chunked upload without a length is
cut off at the limit); at most the limit is ever buffered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from typing import Any

from distilltrace.serve.errors import error_body

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
OPEN_PATHS = frozenset({"/health"})


def hash_api_key(key: str) -> str:
    """The SHA-256 hex digest stored in an --api-keys file for this key."""
    return hashlib.sha256(key.encode()).hexdigest()


def normalise_host(name: str) -> str:
    """An allow-list entry in the form host_name() returns (IPv6 in brackets, lower case)."""
    h = name.strip().lower().rstrip(".")
    if ":" in h and not h.startswith("["):
        h = f"[{h}]"  # a bare IPv6 address
    return h


def host_name(header: str) -> str:
    """The host part of a Host header (port dropped; IPv6 keeps its brackets)."""
    v = header.strip().lower()
    if v.startswith("["):
        end = v.find("]")
        return v[: end + 1] if end > 0 else v
    if v.count(":") == 1:
        v = v.split(":", 1)[0]
    return v.rstrip(".")


async def _send_error(send: Any, status: int, message: str, code: str) -> None:
    kind = "invalid_request_error"
    body = json.dumps(error_body(message, kind, code)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status in (413, 421, 400):
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class Guard:
    """ASGI middleware: ``Guard(app, key_hashes=..., allowed_hosts=..., max_body_bytes=...)``.

    ``allowed_hosts`` None means no Host check; ``key_hashes`` empty means no keys.
    """

    def __init__(
        self,
        app: Any,
        *,
        key_hashes: Iterable[str] = (),
        allowed_hosts: Iterable[str] | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ):
        self.app = app
        self.hashes = [h.strip().lower() for h in key_hashes if h.strip()]
        self.hosts = None if allowed_hosts is None else {normalise_host(h) for h in allowed_hosts}
        self.max_body = int(max_body_bytes)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for k, v in scope.get("headers", []):
            headers.setdefault(k.lower(), v)
        if self.hosts is not None:
            host = headers.get(b"host", b"").decode("latin-1")
            if not host or host_name(host) not in self.hosts:
                await _send_error(
                    send,
                    421,
                    "this server does not answer for that Host header (allowed: "
                    + ", ".join(sorted(self.hosts))
                    + "; add names with --allow-host)",
                    "invalid_host",
                )
                return
        if self.hashes and scope.get("path", "") not in OPEN_PATHS:
            problem = self._key_problem(headers.get(b"authorization", b"").decode("latin-1"))
            if problem:
                await _send_error(send, 401, problem, "invalid_api_key")
                return
        body = await self._read_body(headers, receive, send)
        if body is None:
            return
        await self.app(scope, _replay(body, receive), send)

    def _key_problem(self, header: str) -> str | None:
        key = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not key:
            return "missing API key (Authorization: Bearer KEY)"
        digest = hash_api_key(key)
        if not any(hmac.compare_digest(digest, h) for h in self.hashes):
            return "invalid API key"
        return None

    async def _read_body(self, headers: dict[bytes, bytes], receive: Any, send: Any):
        """The whole body (at most max_body bytes), or None after answering 413/400."""
        too_large = f"request body over the limit of {self.max_body} bytes"
        length = headers.get(b"content-length")
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                await _send_error(send, 400, "invalid Content-Length header", "invalid_request")
                return None
            if n > self.max_body:
                await _send_error(send, 413, too_large, "request_too_large")
                return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _send_error(send, 413, too_large, "request_too_large")
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


def _replay(body: bytes, receive: Any) -> Any:
    """A receive() that first returns the buffered body, then defers to the server's
    (for http.disconnect)."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
