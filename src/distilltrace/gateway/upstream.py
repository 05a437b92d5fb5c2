"""The model behind the gateway: a local model (serve's app, in-process) or an
OpenAI-compatible URL (proxied).

A local upstream runs ``distilltrace.serve.app.create_app`` in this process and talks to it
through :class:`StreamingASGITransport`, so serve's limits, batching and watermarking are
inherited and SSE chunks arrive one by one (httpx's own ASGITransport buffers a whole
response). A remote upstream (``openai:BASE_URL[;key_env=VAR][;timeout=S]``) is reached
with httpx; its API key comes from the environment variable ``key_env`` and is sent only
to the upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import httpx

from distilltrace.errors import InputError
from distilltrace.gateway.config import GatewayConfig

LOCAL_BASE = "http://upstream.local/v1"


class _QueueStream(httpx.AsyncByteStream):
    def __init__(self, q: asyncio.Queue, task: asyncio.Task, gone: asyncio.Event):
        self.q, self.task, self.gone = q, task, gone

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self.q.get()
            if chunk is None:
                return
            yield chunk

    async def aclose(self) -> None:
        self.gone.set()  # the app sees http.disconnect and stops its generation
        if not self.task.done():
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError, Exception):
                await asyncio.wait_for(asyncio.shield(self.task), timeout=5.0)
        if not self.task.done():
            self.task.cancel()


class StreamingASGITransport(httpx.AsyncBaseTransport):
    """An httpx transport to an ASGI app that streams the response body chunk by chunk."""

    def __init__(self, app: Any, client: tuple[str, int] = ("127.0.0.1", 0)):
        self.app = app
        self.client = client

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": request.method,
            "headers": [(k.lower(), v) for k, v in request.headers.raw],
            "scheme": request.url.scheme,
            "path": unquote(request.url.path),
            "raw_path": request.url.raw_path.split(b"?")[0],
            "query_string": request.url.query,
            "server": (request.url.host, request.url.port or 80),
            "client": self.client,
            "root_path": "",
        }
        q: asyncio.Queue = asyncio.Queue()
        started, gone = asyncio.Event(), asyncio.Event()
        state: dict[str, Any] = {"sent": False}

        async def receive() -> dict[str, Any]:
            if not state["sent"]:
                state["sent"] = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(msg: dict[str, Any]) -> None:
            if msg["type"] == "http.response.start":
                state["status"], state["headers"] = msg["status"], msg.get("headers", [])
                started.set()
            elif msg["type"] == "http.response.body":
                if msg.get("body"):
                    await q.put(bytes(msg["body"]))
                if not msg.get("more_body", False):
                    await q.put(None)

        async def run() -> None:
            try:
                await self.app(scope, receive, send)
            except Exception:  # noqa: BLE001 - serve answers errors itself; this is a last resort
                state.setdefault("status", 500)
            finally:
                state.setdefault("status", 500)
                state.setdefault("headers", [])
                started.set()
                await q.put(None)

        task = asyncio.create_task(run())
        await started.wait()
        stream = _QueueStream(q, task, gone)
        return httpx.Response(state["status"], headers=state["headers"], stream=stream)


@dataclass
class Upstream:
    """An httpx client to the model plus what the gateway needs to know about it."""

    client: httpx.AsyncClient
    base_url: str
    model_name: str | None = None
    watermark_key_id: str | None = None
    local_app: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def url(self, path: str) -> str:
        """The upstream URL for a gateway path such as ``/v1/chat/completions``."""
        rest = path[3:] if path.startswith("/v1/") or path == "/v1" else path
        return self.base_url.rstrip("/") + rest

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Upstream]:
        """Run a local app's lifespan (e.g. a batching worker) while the gateway runs."""
        try:
            if self.local_app is not None:
                async with self.local_app.router.lifespan_context(self.local_app):
                    yield self
            else:
                yield self
        finally:
            await self.client.aclose()


def parse_remote(spec: str) -> tuple[str, dict[str, str]]:
    """``openai:BASE_URL[;opt=value...]`` -> (base URL, options)."""
    parts = spec[len("openai:") :].split(";")
    base = parts[0].strip()
    if not base.startswith(("http://", "https://")):
        raise InputError(f"upstream {spec.split(';')[0]!r}: the base URL must be http(s)://...")
    opts = {}
    for p in parts[1:]:
        k, sep, v = p.partition("=")
        if not sep or not k.strip():
            raise InputError(f"upstream option {p!r}: expected name=value")
        opts[k.strip()] = v.strip()
    unknown = set(opts) - {"key_env", "timeout", "model"}
    if unknown:
        raise InputError(f"upstream: unknown option(s) {', '.join(sorted(unknown))}")
    return base, opts


def make_upstream(config: GatewayConfig, *, status: Any = None) -> Upstream:
    """Build the upstream of ``config`` (loads a local model; reads a watermark key)."""
    if config.is_remote:
        return _remote(config)
    from distilltrace.models import load_model
    from distilltrace.serve.app import create_app

    model = config.upstream
    if isinstance(model, str):
        model = load_model(model, status=status)
    wm = None
    if config.watermark_key_file is not None:
        from distilltrace.marks.keys import load_watermark

        wm = load_watermark(config.watermark_key_file)
    app = create_app(
        model, watermark=wm, max_body_bytes=config.max_body_bytes, batching=config.batching
    )
    timeout = httpx.Timeout(config.upstream_timeout_s)
    client = httpx.AsyncClient(transport=StreamingASGITransport(app), timeout=timeout)
    return Upstream(
        client,
        LOCAL_BASE,
        model_name=getattr(getattr(model, "info", None), "name", None),
        watermark_key_id=str(wm.key_id) if wm is not None else None,
        local_app=app,
    )


def _remote(config: GatewayConfig) -> Upstream:
    if config.watermark_key_file is not None:
        raise InputError(
            "--watermark needs a local upstream (an openai: upstream is only proxied; "
            "its outputs cannot be marked here)"
        )
    base, opts = parse_remote(config.upstream)
    headers = {}
    if "key_env" in opts:
        key = os.environ.get(opts["key_env"])
        if not key:
            raise InputError(f"upstream: environment variable {opts['key_env']} is not set")
        headers["authorization"] = f"Bearer {key}"
    try:
        timeout = float(opts.get("timeout", config.upstream_timeout_s))
    except ValueError:
        raise InputError("upstream: timeout must be a number of seconds") from None
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    client = httpx.AsyncClient(timeout=httpx.Timeout(timeout), limits=limits)
    return Upstream(client, base, model_name=opts.get("model"), headers=headers)
