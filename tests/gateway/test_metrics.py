"""Prometheus metrics under OpenTelemetry GenAI names, counted from the evidence rows of
real requests through the gateway (tiny model upstream). Deterministic checks (no
statistics: null not applicable)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from distilltrace.gateway.live import LiveConfig, LiveEnforcer
from distilltrace.gateway.metrics import metrics_router
from distilltrace.gateway.policy import Policy


def _samples(text: str) -> dict[tuple, float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _get(samples, name, **labels):
    want = tuple(sorted(labels.items()))
    return sum(v for (n, lab), v in samples.items() if n == name and set(want) <= set(lab))


def test_metrics_count_logged_requests(make_gateway, segment_records):
    enf = LiveEnforcer(Policy.from_toml(""), config=LiveConfig(), start=False)
    app, key = make_gateway(enforcer=enf, routers=[metrics_router(enf.metrics)])
    h = {"Authorization": f"Bearer {key.key}"}
    req = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    with TestClient(app) as c:
        for _ in range(3):
            assert c.post("/v1/chat/completions", json=req, headers=h).status_code == 200
        enf.override("acct-1", "flag", who="t", why="watch")
        assert c.post("/v1/chat/completions", json=req, headers=h).status_code == 200
        enf.override("acct-1", "block", who="t", why="campaign")
        assert c.post("/v1/chat/completions", json=req, headers=h).status_code == 403
        r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    s = _samples(r.text)
    recs = segment_records(app.state.config.log_dir)
    assert len(recs) == 5
    n_in = sum(x.get("input_tokens") is not None for x in recs)
    n_out = sum(x.get("output_tokens") is not None for x in recs)
    assert n_in == 4  # the blocked request never reached the model
    assert _get(s, "gen_ai_client_token_usage_count", gen_ai_token_type="input") == n_in
    assert _get(s, "gen_ai_client_token_usage_count", gen_ai_token_type="output") == n_out
    tok_sum = sum(x["output_tokens"] for x in recs if x.get("output_tokens") is not None)
    assert _get(s, "gen_ai_client_token_usage_sum", gen_ai_token_type="output") == tok_sum
    assert (
        _get(
            s,
            "gen_ai_client_token_usage_count",
            gen_ai_operation_name="chat",
            gen_ai_request_model="tiny",
        )
        == n_in + n_out
    )
    assert _get(s, "gen_ai_server_request_duration_seconds_count") == 5
    lat = sum(x["latency_ms"] for x in recs) / 1000
    assert abs(_get(s, "gen_ai_server_request_duration_seconds_sum") - lat) < 1e-6
    assert _get(s, "distilltrace_gateway_flagged_total") == 1
    assert _get(s, "distilltrace_gateway_blocked_total") == 1
    assert _get(s, "distilltrace_gateway_requests_total", policy_action="allow") == 3
    assert ("distilltrace_live_flagged_accounts", ()) in s
    assert "acct-1" not in r.text and key.key not in r.text and key.key_id not in r.text


def test_metrics_token(make_gateway):
    enf = LiveEnforcer(Policy(), start=False)
    app, _ = make_gateway(routers=[metrics_router(enf.metrics, token="scrape-token-123456")])
    with TestClient(app) as c:
        assert c.get("/metrics").status_code == 401
        ok = c.get("/metrics", headers={"Authorization": "Bearer scrape-token-123456"})
        assert ok.status_code == 200 and "gen_ai_server_request_duration_seconds" in ok.text
