"""The gateway app: authenticate, ask the enforcer, forward, log durably, then answer.

``create_gateway_app(config, enforcer=None, routers=())`` builds a FastAPI app in front of
the upstream of ``config``. Per model request (``POST /v1/chat/completions`` and
``/v1/completions``): serve's Guard checks the Host and the body size (413); the bearer
key is looked up in the account store (401); the body must be a JSON object (400); the
enforcer decides (block -> 403, throttle -> 429 with Retry-After, degrade -> output cap and
reasoning stripped, flag/allow -> forwarded); the answer is forwarded unchanged; the
traffic-schema row is written to the evidence log and fsync'd; only then does the client
get the answer (for a stream: the final ``data: [DONE]``); then ``enforcer.observe(row)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from distilltrace.gateway import records as R
from distilltrace.gateway.accounts import AccountStore
from distilltrace.gateway.config import GatewayConfig
from distilltrace.gateway.evidence_log import EvidenceLog, roll
from distilltrace.gateway.hooks import AccountInfo, Decision, Enforcer
from distilltrace.gateway.upstream import Upstream, make_upstream
from distilltrace.serve.errors import error_body
from distilltrace.serve.guard import Guard

log = logging.getLogger("distilltrace.gateway")
ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/completions": "completions"}
KEY_ID_HEADER = "x-distilltrace-watermark-key-id"
_JSON_HEADERS = {"content-type": "application/json"}


def _err(status: int, message: str, code: str, headers: dict | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse(error_body(message, kind, code), status_code=status, headers=headers)


def create_gateway_app(
    config: GatewayConfig,
    enforcer: Enforcer | None = None,
    routers: Sequence[APIRouter] = (),
    *,
    upstream: Upstream | None = None,
    accounts: AccountStore | None = None,
) -> FastAPI:
    """The gateway FastAPI app; ``app.state`` has ``accounts``, ``log``, ``config``."""
    config.log_dir.mkdir(parents=True, exist_ok=True)
    accounts = accounts or AccountStore(config.database_url)
    upstream = upstream or make_upstream(config)
    evlog = EvidenceLog(
        config.log_dir,
        max_segment_bytes=config.max_segment_bytes,
        max_segment_age_s=config.max_segment_age_s,
        fsync=config.fsync,
    )
    admin_token = config.admin_token()
    gw = _Gateway(config, accounts, evlog, upstream, enforcer)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        evlog.open()
        if config.roll_on_start:  # segments of crashed or stopped gateways
            await run_in_threadpool(roll, config.log_dir)
        roller = asyncio.create_task(_roll_every(config))
        try:
            async with upstream.running():
                yield
        finally:
            roller.cancel()
            evlog.close()

    app = FastAPI(title="distilltrace gateway", docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.accounts, app.state.log, app.state.config = accounts, evlog, config
    app.state.upstream, app.state.enforcer = upstream, enforcer
    app.add_middleware(
        Guard, allowed_hosts=config.allowed_hosts, max_body_bytes=config.max_body_bytes
    )

    @app.exception_handler(HTTPException)
    async def _http(_: Request, e: HTTPException) -> JSONResponse:
        return _err(e.status_code, str(e.detail), "http_error", getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, e: Exception) -> JSONResponse:
        log.error("gateway: unexpected %s", type(e).__name__)  # never the text: may hold input
        return _err(500, "internal server error", "internal_error")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    @app.post("/v1/completions")
    async def model_request(request: Request) -> Response:
        return await gw.handle(request)

    @app.get("/v1/models")
    @app.get("/v1/models/{model_id:path}")
    async def models(request: Request) -> Response:
        return await gw.models(request)

    if admin_token is not None:
        app.include_router(admin_router(accounts, admin_token))
    for r in routers:
        app.include_router(r)
    return app


async def _roll_every(config: GatewayConfig) -> None:
    """Roll finished segments to Parquet every ``roll_interval_s`` (live ones are skipped)."""
    if config.roll_interval_s is None:
        return
    while True:
        await asyncio.sleep(config.roll_interval_s)
        try:
            await run_in_threadpool(roll, config.log_dir)
        except Exception as e:  # noqa: BLE001 - retried next time; segments stay on disk
            log.error("gateway: periodic roll failed: %s", type(e).__name__)


def admin_router(accounts: AccountStore, token: str) -> APIRouter:
    """``/admin/accounts`` (GET list, POST add -> the new key, shown once) and
    ``/admin/revoke/{account_or_key_id}``, behind ``Authorization: Bearer ADMIN_TOKEN``."""
    router = APIRouter(prefix="/admin")

    def check(request: Request) -> None:
        h = request.headers.get("authorization", "")
        given = h[7:].strip() if h.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "invalid admin token")

    @router.get("/accounts")
    def list_accounts(request: Request) -> dict[str, Any]:
        check(request)
        rows = accounts.list()
        return {"accounts": [{**r.__dict__, "created_at": r.created_at.isoformat()} for r in rows]}

    @router.post("/accounts")
    def add_account(request: Request, body: dict[str, Any]) -> dict[str, Any]:
        check(request)
        fields = ("org_id", "signup_path", "payment_fingerprint")
        bad = [k for k in ("account_id", *fields) if k in body and not isinstance(body[k], str)]
        if bad or not isinstance(body.get("account_id"), str):
            raise HTTPException(400, "account_id (and org_id, ...) must be strings")
        from distilltrace.errors import InputError

        try:
            k = accounts.add_account(body["account_id"], **{f: body.get(f) for f in fields})
        except InputError as e:
            raise HTTPException(400, str(e)) from None
        return {"account_id": k.account_id, "key_id": k.key_id, "key": k.key}

    @router.post("/revoke/{ident}")
    def revoke(request: Request, ident: str) -> dict[str, str]:
        check(request)
        from distilltrace.errors import InputError

        try:
            return {"revoked": accounts.revoke(ident), "id": ident}
        except InputError as e:
            raise HTTPException(404, str(e)) from None

    return router


class _Gateway:
    """The per-request work of the gateway."""

    def __init__(self, config, accounts, evlog, upstream, enforcer):
        self.config: GatewayConfig = config
        self.accounts: AccountStore = accounts
        self.log: EvidenceLog = evlog
        self.up: Upstream = upstream
        self.enforcer: Enforcer | None = enforcer
        self.trusted = set(config.trusted_proxies)

    async def authenticate(self, request: Request) -> AccountInfo | None:
        h = request.headers.get("authorization", "")
        key = h[7:].strip() if h.lower().startswith("bearer ") else ""
        if not key:
            return None
        if getattr(self.accounts, "inline_reads", False):
            return self.accounts.authenticate(key)
        return await run_in_threadpool(self.accounts.authenticate, key)

    def client_info(self, request: Request) -> dict[str, str | None]:
        peer = request.client.host if request.client else None
        info = {"ip": peer, "user_agent": request.headers.get("user-agent")}
        info["tls_fingerprint"] = None
        if peer in self.trusted:
            fwd = request.headers.get("x-forwarded-for")
            if fwd and fwd.split(",")[0].strip():
                info["ip"] = fwd.split(",")[0].strip()
            for h in self.config.fingerprint_headers:
                if request.headers.get(h):
                    info["tls_fingerprint"] = request.headers[h][:512]
                    break
        return info

    def decide(self, account: AccountInfo, body: dict, now: datetime) -> Decision:
        if self.enforcer is None:
            return Decision()
        try:
            d = self.enforcer.decide(account, body, now)
        except Exception as e:  # noqa: BLE001 - a broken policy must not stop the service
            log.error("gateway: enforcer.decide failed: %s", type(e).__name__)
            return Decision("allow", reason=f"enforcer error ({type(e).__name__})")
        return d if isinstance(d, Decision) else Decision()

    def observe(self, record: dict[str, Any]) -> None:
        if self.enforcer is None:
            return
        try:
            self.enforcer.observe(record)
        except Exception as e:  # noqa: BLE001 - never fail a request that is already logged
            log.error("gateway: enforcer.observe failed: %s", type(e).__name__)

    def headers(self, rid: str, key_id: str | None, d: Decision) -> dict[str, str]:
        # no policy header on answers: a flagged or degraded account is not told so
        h = {"x-request-id": rid}
        if key_id:
            h[KEY_ID_HEADER] = key_id
        return h

    async def durable(self, rec: dict[str, Any], t0: float) -> JSONResponse | None:
        """Write ``rec``; None once durable, else the 503 to answer (not acknowledged)."""
        rec["latency_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        try:
            await self.log.write(rec)
            return None
        except Exception as e:  # noqa: BLE001 - disk full, I/O error: do not acknowledge
            log.error("gateway: evidence log write failed: %s", type(e).__name__)
            return _err(503, "evidence log unavailable; request not processed", "log_error")

    async def handle(self, request: Request) -> Response:
        t0, now = time.perf_counter(), datetime.now(UTC)
        endpoint = _endpoint(request)
        account = await self.authenticate(request)
        if account is None:
            return _err(401, "missing or invalid API key", "invalid_api_key")
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        rid = f"gw-{uuid.uuid4().hex}"
        rec = R.base_record(
            request_id=rid,
            now=now,
            account=account,
            body=body if isinstance(body, dict) else {},
            endpoint=endpoint,
            client=self.client_info(request),
            gateway_id=self.log.id,
        )
        if not isinstance(body, dict):
            rec.update(status="error", http_status=400, response=None)
            msg = "request body must be a JSON object"
            return await self.refuse(rec, t0, _err(400, msg, "invalid_json", {"x-request-id": rid}))
        d = self.decide(account, body, now)
        R.add_decision(rec, d)
        if d.action in ("block", "throttle"):
            return await self.refuse(rec, t0, self.refusal(d, rid))
        if d.action == "degrade":
            body = R.apply_caps(body, d, endpoint)
            rec["extra_json"] = R.extra_json({"degraded_max_tokens": d.max_tokens})
        content = raw if d.action != "degrade" else json.dumps(body).encode()
        path = request.url.path
        if body.get("stream") is True:
            return await self.stream(path, content, rec, d, t0)
        return await self.forward(path, content, rec, d, t0)

    def refusal(self, d: Decision, rid: str) -> JSONResponse:
        h = {"x-request-id": rid, "x-distilltrace-policy": d.action}
        if d.action == "block":
            return _err(403, d.reason or "request blocked by policy", "policy_blocked", h)
        if d.retry_after_s is not None:
            h["retry-after"] = str(max(1, int(-(-float(d.retry_after_s) // 1))))
        return _err(429, d.reason or "rate limited by policy", "rate_limited", h)

    async def refuse(self, rec: dict, t0: float, resp: JSONResponse) -> Response:
        rec.setdefault("status", R.STATUS_OF_ACTION.get(rec.get("policy_action"), "error"))
        rec.setdefault("http_status", resp.status_code)
        rec.setdefault("response", None)
        failed = await self.durable(rec, t0)
        if failed is not None:
            return failed
        return self.respond(resp, rec)

    def respond(self, resp: Response, rec: dict) -> Response:
        if self.enforcer is not None:
            resp.background = BackgroundTask(self.observe, rec)
        return resp

    async def forward(self, path, content, rec, d: Decision, t0: float) -> Response:
        try:
            r = await self.up.post(path, content, _JSON_HEADERS)
        except httpx.HTTPError as e:
            rec.update(
                status="error",
                http_status=502,
                extra_json=R.extra_json({"upstream_error": type(e).__name__}),
            )
            return await self.refuse(rec, t0, _err(502, "upstream unavailable", "upstream_error"))
        body = r.content
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if d.strip_reasoning and r.status_code == 200 and isinstance(data, dict):
            data = R.strip_reasoning(data)
            body = json.dumps(data).encode()
        ans = R.answer_of(data, rec["endpoint"]) if r.status_code == 200 else {}
        key_id = ans.get("watermark_key_id") or self.up.watermark_key_id
        rec.update(ans, watermark_key_id=key_id, http_status=r.status_code)
        rec["status"] = "ok" if r.status_code == 200 else "error"
        failed = await self.durable(rec, t0)
        if failed is not None:
            return failed
        media = r.headers.get("content-type", "application/json")
        h = self.headers(rec["request_id"], key_id, d)
        return self.respond(Response(body, r.status_code, headers=h, media_type=media), rec)

    async def stream(self, path, content, rec, d: Decision, t0: float) -> Response:
        try:
            r = await self.up.post(path, content, _JSON_HEADERS, stream=True)
        except httpx.HTTPError as e:
            rec.update(
                status="error",
                http_status=502,
                extra_json=R.extra_json({"upstream_error": type(e).__name__}),
            )
            return await self.refuse(rec, t0, _err(502, "upstream unavailable", "upstream_error"))
        if r.status_code != 200 or "text/event-stream" not in r.headers.get("content-type", ""):
            try:
                await r.aread()
            finally:
                await r.aclose()
            return await self._unstreamed(r, rec, d, t0)
        key_id = self.up.watermark_key_id
        h = self.headers(rec["request_id"], key_id, d)
        gen = self._sse(r, rec, d, t0, key_id)
        return StreamingResponse(gen, media_type="text/event-stream", headers=h)

    async def _unstreamed(self, r: Any, rec, d: Decision, t0: float) -> Response:
        rec.update(status="error" if r.status_code != 200 else "ok", http_status=r.status_code)
        failed = await self.durable(rec, t0)
        if failed is not None:
            return failed
        media = r.headers.get("content-type", "application/json")
        h = self.headers(rec["request_id"], None, d)
        return self.respond(Response(r.content, r.status_code, headers=h, media_type=media), rec)

    async def _sse(self, r: Any, rec, d: Decision, t0: float, key_id):
        acc = R.SSEAccumulator(rec["endpoint"], d.strip_reasoning)
        finished = False
        try:
            async for chunk in r.aiter_raw():
                out = acc.feed(chunk)
                if out:
                    yield out
            tail = acc.flush()
            if tail:
                yield tail
            finished = True
        except httpx.HTTPError as e:
            acc.error = f"upstream stream failed ({type(e).__name__})"
            finished = True
        finally:
            self._stream_record(rec, acc, key_id, finished, t0)
            if not finished:  # client gone or cancelled: log without waiting, then stop
                self.log.submit(rec).add_done_callback(lambda f: f.exception() or None)
                with contextlib.suppress(Exception):
                    await r.aclose()
        await r.aclose()
        if await self.durable(rec, t0) is not None:
            err = {"error": {"message": "evidence log unavailable", "type": "server_error"}}
            yield b"data: " + json.dumps(err).encode() + b"\n\n"
            return
        if acc.done:
            yield b"data: [DONE]\n\n"
        await run_in_threadpool(self.observe, rec)

    def _stream_record(self, rec, acc: R.SSEAccumulator, key_id, finished: bool, t0) -> None:
        rec.update(acc.usage, response=acc.response_text(), http_status=200)
        rec["latency_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        rec["watermark_key_id"] = acc.key_id or key_id
        ok = finished and acc.done and acc.error is None
        rec["status"] = "ok" if ok else "error"
        if not ok:
            why = acc.error or ("client disconnected" if not finished else "stream ended early")
            rec["extra_json"] = R.extra_json({"stream_error": why})

    async def models(self, request: Request) -> Response:
        if await self.authenticate(request) is None:
            return _err(401, "missing or invalid API key", "invalid_api_key")
        try:
            r = await self.up.get(request.url.path)
        except httpx.HTTPError:
            return _err(502, "upstream unavailable", "upstream_error")
        media = r.headers.get("content-type", "application/json")
        return Response(r.content, r.status_code, media_type=media)


def _endpoint(request: Request) -> str:
    return ENDPOINTS[request.url.path]
