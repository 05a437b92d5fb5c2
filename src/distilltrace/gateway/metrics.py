"""Prometheus metrics under OpenTelemetry GenAI semantic-convention names.

Every number comes from the evidence log's rows (what ``Enforcer.observe`` receives after
a row is durable), so the metrics count exactly what was logged:

| OpenTelemetry instrument | Prometheus series | from the row |
|---|---|---|
| ``gen_ai.client.token.usage`` (histogram, ``{token}``) | ``gen_ai_client_token_usage_{bucket,sum,count}`` with ``gen_ai_token_type`` = ``input`` / ``output`` | ``input_tokens``, ``output_tokens`` |
| ``gen_ai.server.request.duration`` (histogram, s) | ``gen_ai_server_request_duration_seconds_{bucket,sum,count}`` | ``latency_ms`` (request received -> row durable) |
| - | ``distilltrace_gateway_requests_total{policy_action}`` | ``policy_action`` |
| - | ``distilltrace_gateway_flagged_total``, ``distilltrace_gateway_blocked_total`` | ``policy_action`` = flag / block |
| - | ``distilltrace_live_flagged_accounts``, ``distilltrace_live_scans``, ``distilltrace_live_scan_seconds``, ``distilltrace_live_snapshot_watermark_seconds`` | the latest live snapshot |

Labels follow the conventions' attribute names with dots as underscores:
``gen_ai_operation_name`` (``chat`` / ``text_completion``), ``gen_ai_request_model``,
``gen_ai_token_type``; bucket boundaries are the ones the conventions advise. No label
carries an account id, a prompt or a key.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

#: Advised bucket boundaries (OpenTelemetry GenAI semantic conventions).
TOKEN_BUCKETS = tuple(float(4**i) for i in range(14))  # 1, 4, 16, ..., 67108864
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48)
DURATION_BUCKETS = DURATION_BUCKETS + (40.96, 81.92)
OPERATION = {"chat": "chat", "completions": "text_completion"}


def _model(v: Any) -> str:
    return v[:128] if isinstance(v, str) and v else "unknown"


def _count(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


class GatewayMetrics:
    """The gateway's Prometheus registry (one per app; nothing global)."""

    def __init__(self, snapshot_source: Any = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.tokens = Histogram(
            "gen_ai_client_token_usage",
            "gen_ai.client.token.usage: tokens per request, by gen_ai.token.type",
            ["gen_ai_operation_name", "gen_ai_request_model", "gen_ai_token_type"],
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.duration = Histogram(
            "gen_ai_server_request_duration_seconds",
            "gen_ai.server.request.duration: request received to evidence row durable",
            ["gen_ai_operation_name", "gen_ai_request_model"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "distilltrace_gateway_requests",
            "Requests logged, by the policy action applied",
            ["policy_action"],
            registry=r,
        )
        self.flagged = Counter(
            "distilltrace_gateway_flagged", "Requests forwarded and flagged by policy", registry=r
        )
        self.blocked = Counter(
            "distilltrace_gateway_blocked", "Requests refused (403) by policy", registry=r
        )
        if snapshot_source is not None:
            self._live_gauges(snapshot_source)

    def _live_gauges(self, src: Any) -> None:
        def snap():
            return src.snapshot

        g = Gauge(
            "distilltrace_live_flagged_accounts",
            "Accounts the latest live scan flagged",
            registry=self.registry,
        )
        g.set_function(lambda: sum(a.flagged for a in snap().accounts.values()))
        g = Gauge(
            "distilltrace_live_scan_seconds",
            "Duration of the latest live scan",
            registry=self.registry,
        )
        g.set_function(lambda: snap().scan_seconds)
        g = Gauge(
            "distilltrace_live_scans",
            "Live scans published since the gateway started",
            registry=self.registry,
        )
        g.set_function(lambda: snap().seq)
        g = Gauge(
            "distilltrace_live_snapshot_watermark_seconds",
            "Event time (Unix s) the latest live scores are complete to (0: none yet)",
            registry=self.registry,
        )
        g.set_function(lambda: snap().watermark.timestamp() if snap().watermark else 0.0)

    def observe_record(self, rec: Mapping[str, Any]) -> None:
        """Count one evidence row (tokens, duration, policy action)."""
        op = OPERATION.get(str(rec.get("endpoint")), "chat")
        model = _model(rec.get("model"))
        for col, kind in (("input_tokens", "input"), ("output_tokens", "output")):
            n = _count(rec.get(col))
            if n is not None:
                self.tokens.labels(op, model, kind).observe(n)
        ms = rec.get("latency_ms")
        if isinstance(ms, int | float) and not isinstance(ms, bool) and ms >= 0:
            self.duration.labels(op, model).observe(ms / 1000.0)
        action = rec.get("policy_action")
        action = action if isinstance(action, str) and action else "none"
        self.requests.labels(action).inc()
        if action == "flag":
            self.flagged.inc()
        elif action == "block":
            self.blocked.inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def metrics_router(metrics: GatewayMetrics, *, token: str | None = None) -> APIRouter:
    """``GET /metrics`` in the Prometheus text format; with ``token``, only for
    ``Authorization: Bearer TOKEN`` (Prometheus ``authorization`` scrape setting)."""
    router = APIRouter()

    @router.get("/metrics")
    def scrape(request: Request) -> Response:
        if token is not None:
            h = request.headers.get("authorization", "")
            given = h[7:].strip() if h.lower().startswith("bearer ") else ""
            if not hmac.compare_digest(given.encode(), token.encode()):
                raise HTTPException(401, "invalid metrics token")
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return router
