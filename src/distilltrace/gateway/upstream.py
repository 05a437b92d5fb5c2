"""The model behind the gateway: a local model (serve's service, in-process) or an
OpenAI-compatible URL (proxied).

A local upstream builds ``distilltrace.serve.app.create_app`` in this process and calls its
service directly (``distilltrace.serve.inprocess.LocalClient``: no HTTP, no second request
handling), so serve's checks, batching and watermarking are inherited and SSE chunks arrive
one by one. A remote upstream (``openai:BASE_URL[;key_env=VAR][;timeout=S]``) is reached
with httpx; its API key comes from the environment variable ``key_env`` and is sent only
to the upstream. Either way the gateway sees an answer with ``status_code``, ``headers``,
``content``, ``aiter_raw()``, ``aread()`` and ``aclose()``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from distilltrace.errors import InputError
from distilltrace.gateway.config import GatewayConfig

LOCAL_BASE = "http://upstream.local/v1"


@dataclass
class Upstream:
    """The model behind the gateway: an httpx client to a remote one, or a local serve app
    called in-process (``local_app``), plus what the gateway needs to know about it."""

    client: httpx.AsyncClient | None
    base_url: str
    model_name: str | None = None
    watermark_key_id: str | None = None
    local_app: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.local = None
        if self.local_app is not None:
            from distilltrace.serve.inprocess import LocalClient

            self.local = LocalClient(self.local_app)

    def url(self, path: str) -> str:
        """The upstream URL for a gateway path such as ``/v1/chat/completions``."""
        rest = path[3:] if path.startswith("/v1/") or path == "/v1" else path
        return self.base_url.rstrip("/") + rest

    async def post(self, path: str, content: bytes, headers: dict, stream: bool = False) -> Any:
        """POST a JSON body to the gateway path ``path``; with ``stream`` the body is not
        read yet. A remote failure raises ``httpx.HTTPError``."""
        if self.local is not None:
            return await self.local.request("POST", path, content)
        assert self.client is not None
        hdrs = {**headers, **self.headers}
        req = self.client.build_request("POST", self.url(path), content=content, headers=hdrs)
        return await self.client.send(req, stream=stream)

    async def get(self, path: str) -> Any:
        if self.local is not None:
            return await self.local.request("GET", path)
        assert self.client is not None
        return await self.client.get(self.url(path), headers=self.headers)

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
            if self.client is not None:
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
    return Upstream(
        None,
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
