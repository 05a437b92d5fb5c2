"""The gateway app: pass-through, durable log before the answer, auth, limits, enforcer
hooks, marks, admin API, remote upstream, and `traffic scan` on the rolled log."""

from __future__ import annotations

import json
from datetime import datetime

import httpx
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from distilltrace.gateway.evidence_log import parquet_files, roll
from distilltrace.gateway.hooks import AccountInfo, Decision, Enforcer

CHAT = {"model": "tiny", "messages": [{"role": "user", "content": "hi <b>x</b>"}]}


def auth(key) -> dict:
    return {"authorization": f"Bearer {key.key}"}


def chat(c, key, **kw):
    return c.post(
        "/v1/chat/completions", json={**CHAT, "max_tokens": 6, "seed": 3, **kw}, headers=auth(key)
    )


class Recorder:
    """A real Enforcer: returns a fixed decision and keeps what it observes, noting
    whether each observed record was already durable in the log."""

    def __init__(self, decision: Decision, log_dir, segment_records):
        self.decision, self.log_dir, self.read = decision, log_dir, segment_records
        self.seen: list[tuple[AccountInfo, dict]] = []
        self.observed: list[dict] = []
        self.durable_when_observed: list[bool] = []

    def decide(self, account: AccountInfo, request: dict, now: datetime) -> Decision:
        self.seen.append((account, request))
        return self.decision

    def observe(self, record: dict) -> None:
        ids = {r["request_id"] for r in self.read(self.log_dir)}
        self.durable_when_observed.append(record["request_id"] in ids)
        self.observed.append(record)


def test_chat_is_passed_through_and_logged_before_the_answer(
    make_gateway, gw_model, segment_records
):
    from distilltrace.serve.app import create_app

    app, key = make_gateway()
    log_dir = app.state.config.log_dir
    with TestClient(app) as c, TestClient(create_app(gw_model)) as direct:
        r = chat(c, key, temperature=0.7)
        assert r.status_code == 200
        d = direct.post(
            "/v1/chat/completions", json={**CHAT, "max_tokens": 6, "seed": 3, "temperature": 0.7}
        ).json()
        got = r.json()
        assert got["choices"] == d["choices"] and got["usage"] == d["usage"]
        (row,) = segment_records(log_dir)  # durable already: the log is still open
    assert row["request_id"] == r.headers["x-request-id"]
    assert row["response"] == got["choices"][0]["message"]["content"]
    assert row["prompt"] == "hi <b>x</b>" and row["account_id"] == "acct-1"
    assert row["context_messages"] == 0  # one user turn: nothing the log does not keep
    assert row["api_key_id"] == key.key_id and row["org_id"] == "org-1"
    assert (row["input_tokens"], row["output_tokens"]) == (
        got["usage"]["prompt_tokens"],
        got["usage"]["completion_tokens"],
    )
    assert row["status"] == "ok" and row["policy_action"] == "allow"
    assert row["temperature"] == 0.7 and row["max_tokens"] == 6
    assert key.key not in json.dumps(row)


def test_streams_pass_through_and_done_comes_after_the_record(
    make_gateway, segment_records, sse_events
):
    app, key = make_gateway()
    with TestClient(app) as c:
        plain = chat(c, key).json()["choices"][0]["message"]["content"]
        with c.stream(
            "POST",
            "/v1/chat/completions",
            headers=auth(key),
            json={**CHAT, "max_tokens": 6, "seed": 3, "stream": True},
        ) as s:
            assert s.headers["content-type"].startswith("text/event-stream")
            body = s.read().decode()
        events = sse_events(body)
        assert events[-1] == "[DONE]"
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
        assert text == plain
        rows = segment_records(app.state.config.log_dir)
    assert rows[-1]["response"] == plain and rows[-1]["stream"] is True
    assert rows[-1]["status"] == "ok"


def test_completions_endpoint_and_models_listing(make_gateway, segment_records):
    app, key = make_gateway()
    with TestClient(app) as c:
        r = c.post(
            "/v1/completions",
            headers=auth(key),
            json={"model": "tiny", "prompt": ["a", "b"], "max_tokens": 3},
        )
        assert r.status_code == 200 and len(r.json()["choices"]) == 2
        assert c.get("/v1/models", headers=auth(key)).json()["data"][0]["id"] == "tiny"
        assert c.get("/v1/models").status_code == 401
        (row,) = segment_records(app.state.config.log_dir)
    assert row["endpoint"] == "completions" and row["prompt"] == "a\nb"


def test_bad_keys_bodies_and_sizes_are_refused(make_gateway, segment_records):
    app, key = make_gateway(max_body_bytes=2000)
    with TestClient(app) as c:
        for h in (
            {},
            {"authorization": "Bearer nope"},
            {"authorization": key.key},
            {"authorization": f"Bearer {key.key}x"},
        ):
            r = c.post("/v1/chat/completions", json=CHAT, headers=h)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
        assert c.post("/v1/chat/completions", json=big, headers=auth(key)).status_code == 413
        r = c.post("/v1/chat/completions", content=b"{not json", headers=auth(key))
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
        assert c.post("/v1/completions", json=[1], headers=auth(key)).status_code == 400
        r = c.post("/v1/chat/completions", json={**CHAT, "max_tokens": "x"}, headers=auth(key))
        assert r.status_code == 422  # serve's strict schema, passed through
        rows = segment_records(app.state.config.log_dir)
    # unauthenticated and oversized requests have no account to log; the rest are logged
    assert [r["http_status"] for r in rows] == [400, 400, 422]
    assert all(r["status"] == "error" for r in rows)


@pytest.mark.parametrize(
    ("decision", "status"),
    [
        (Decision("block", reason="harvesting", rule="r1"), 403),
        (Decision("throttle", reason="too fast", retry_after_s=2.5), 429),
        (Decision("flag", reason="watch", rule="r2"), 200),
        (Decision("degrade", max_tokens=2, strip_reasoning=True), 200),
    ],
)
def test_enforcer_decisions_are_applied_logged_and_observed(
    make_gateway, segment_records, decision, status
):
    rec = Recorder(decision, None, segment_records)
    app, key = make_gateway(enforcer=rec)
    rec.log_dir = app.state.config.log_dir
    assert isinstance(rec, Enforcer)
    with TestClient(app) as c:
        r = chat(c, key, max_tokens=8)
        assert r.status_code == status
        if status in (403, 429):
            assert r.headers["x-distilltrace-policy"] == decision.action
        else:  # a flagged or degraded account is not told so
            assert "x-distilltrace-policy" not in r.headers
    acct, req = rec.seen[-1]
    assert acct.account_id == "acct-1" and req["messages"] == CHAT["messages"]
    row = rec.observed[-1]
    assert rec.durable_when_observed == [True]
    assert row["policy_action"] == decision.action and row["policy_rule"] == decision.rule
    if status == 403:
        assert r.json()["error"]["code"] == "policy_blocked" and row["status"] == "refused"
    if status == 429:
        assert r.headers["retry-after"] == "3" and row["status"] == "rate_limited"
    if decision.action == "degrade":
        assert r.json()["usage"]["completion_tokens"] <= 2
        assert json.loads(row["extra_json"]) == {"degraded_max_tokens": 2}


def test_a_broken_enforcer_does_not_stop_the_service(make_gateway, segment_records):
    class Broken:
        def decide(self, account, request, now):
            raise RuntimeError("secret-internal-detail")

        def observe(self, record):
            raise RuntimeError("x")

    app, key = make_gateway(enforcer=Broken())
    with TestClient(app) as c:
        assert chat(c, key).status_code == 200
        (row,) = segment_records(app.state.config.log_dir)
    assert row["policy_reason"] == "enforcer error (RuntimeError)"


def test_marks_name_their_key_id_in_header_and_log(
    tmp_path, make_gateway, gw_model, segment_records
):
    from distilltrace.marks.keys import make_watermark, write_key_file
    from distilltrace.marks.schemes import SchemeParams, TokenizerBinding
    from distilltrace.marks.secret import Secret

    secret = Secret(bytes(range(1, 33)))
    wm = make_watermark(SchemeParams(), TokenizerBinding.of_model(gw_model), secret)
    key_file = write_key_file(tmp_path / "wm.json", wm, secret)
    app, key = make_gateway(watermark_key_file=key_file)
    with TestClient(app) as c:
        r = chat(c, key)
        assert r.headers["x-distilltrace-watermark-key-id"] == wm.key_id
        assert r.json()["watermark"] == {"key_id": wm.key_id}
        (row,) = segment_records(app.state.config.log_dir)
    assert row["watermark_key_id"] == wm.key_id
    assert secret.hex() not in r.text and secret.hex() not in json.dumps(row)


def test_client_ip_and_tls_fingerprint_only_from_trusted_proxies(make_gateway, segment_records):
    hdr = {
        "x-forwarded-for": "203.0.113.9, 10.0.0.1",
        "x-ja4": "t13d1516h2_abc",
        "user-agent": "ua/1",
    }
    for trusted, ip, ja4 in (
        (("testclient",), "203.0.113.9", "t13d1516h2_abc"),
        ((), "testclient", None),
    ):
        app, key = make_gateway(trusted_proxies=trusted)
        with TestClient(app) as c:
            c.post(
                "/v1/chat/completions", json={**CHAT, "max_tokens": 1}, headers={**auth(key), **hdr}
            )
            row = segment_records(app.state.config.log_dir)[-1]
        assert (row["client_ip"], row["tls_fingerprint"], row["user_agent"]) == (ip, ja4, "ua/1")


def test_admin_api_and_extra_routers(tmp_path, make_gateway):
    tok = tmp_path / "admin.txt"
    tok.write_text("admin-token-0123456789\n")
    extra = APIRouter()

    @extra.get("/extra/ping")
    def ping() -> dict:
        return {"pong": True}

    app, key = make_gateway(admin_token_file=tok, routers=[extra])
    admin = {"authorization": "Bearer admin-token-0123456789"}
    with TestClient(app) as c:
        assert c.get("/extra/ping").json() == {"pong": True}
        assert c.get("/admin/accounts").status_code == 401
        assert c.get("/admin/accounts", headers=auth(key)).status_code == 401
        listed = c.get("/admin/accounts", headers=admin).json()["accounts"]
        assert listed[0]["key_ids"] == [key.key_id] and key.key not in json.dumps(listed)
        new = c.post(
            "/admin/accounts", headers=admin, json={"account_id": "b2", "org_id": "o"}
        ).json()
        assert chat(c, type("K", (), {"key": new["key"]})).status_code == 200
        assert c.post("/admin/revoke/b2", headers=admin).json() == {
            "revoked": "account",
            "id": "b2",
        }
        assert chat(c, type("K", (), {"key": new["key"]})).status_code == 401
        assert c.post("/admin/accounts", headers=admin, json={"account_id": 5}).status_code == 400
    app2, _ = make_gateway()
    with TestClient(app2) as c:
        assert c.get("/admin/accounts", headers=admin).status_code == 404
    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "log").rglob("*.seg"))
    assert "admin-token-0123456789" not in logs and new["key"] not in logs


def test_remote_upstream_is_proxied_with_streams(
    tmp_path, gw_model, segment_records, sse_events, live_server
):
    from distilltrace.gateway.app import create_gateway_app
    from distilltrace.gateway.config import GatewayConfig
    from distilltrace.serve.app import create_app

    with live_server(create_app(gw_model)) as base:
        cfg = GatewayConfig(upstream=f"openai:{base}/v1", log_dir=tmp_path / "log")
        app = create_gateway_app(cfg)
        key = app.state.accounts.add_account("r1")
        with TestClient(app) as c:
            r = chat(c, key)
            direct = httpx.post(
                f"{base}/v1/chat/completions", json={**CHAT, "max_tokens": 6, "seed": 3}
            ).json()
            assert r.json()["choices"] == direct["choices"]
            with c.stream(
                "POST",
                "/v1/chat/completions",
                headers=auth(key),
                json={**CHAT, "max_tokens": 6, "seed": 3, "stream": True},
            ) as s:
                events = sse_events(s.read().decode())
            assert events[-1] == "[DONE]"
            rows = segment_records(cfg.log_dir)
    assert [x["response"] for x in rows] == [direct["choices"][0]["message"]["content"]] * 2


def test_unreachable_upstream_is_502_and_logged(tmp_path, segment_records):
    from distilltrace.gateway.app import create_gateway_app
    from distilltrace.gateway.config import GatewayConfig
    from tests.serve_helpers import free_port

    cfg = GatewayConfig(
        upstream=f"openai:http://127.0.0.1:{free_port()}/v1", log_dir=tmp_path / "log"
    )
    app = create_gateway_app(cfg)
    key = app.state.accounts.add_account("r1")
    with TestClient(app) as c:
        r = chat(c, key)
        assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_error"
        (row,) = segment_records(cfg.log_dir)
    assert row["status"] == "error" and row["http_status"] == 502


def test_traffic_scan_reads_the_rolled_gateway_log(make_gateway):
    from distilltrace.traffic.scanner import scan

    app, key = make_gateway()
    keys = [key] + [app.state.accounts.add_account(f"acct-{j}") for j in (2, 3)]
    with TestClient(app) as c:
        for i in range(12):
            assert chat(c, keys[i % 3], max_tokens=1, seed=i).status_code == 200
    roll(app.state.config.log_dir)
    files = parquet_files(app.state.config.log_dir)
    res = scan([str(p) for p in files], content=False, progress=False)
    assert res.summary["n_requests"] == 12 and res.summary["n_accounts"] == 3
    assert res.summary["rows_quarantined"] == 0
    assert "watermark_key_id" in res.summary["load"]["unknown_columns"]  # kept, ignored


def test_a_running_gateway_rolls_finished_segments_to_parquet(make_gateway):
    import time

    app, key = make_gateway(max_segment_age_s=0.0, roll_interval_s=0.1)
    with TestClient(app) as c:
        assert chat(c, key, max_tokens=1).status_code == 200
        deadline = time.monotonic() + 30
        while not parquet_files(app.state.config.log_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(parquet_files(app.state.config.log_dir)) == 1


def test_the_upstream_key_comes_from_the_environment_and_is_never_logged(
    tmp_path, monkeypatch, gw_model, live_server, segment_records
):
    from distilltrace.errors import InputError
    from distilltrace.gateway.app import create_gateway_app
    from distilltrace.gateway.config import GatewayConfig
    from distilltrace.serve.app import create_app, hash_api_key

    upstream_key = "upstream-secret-key-42"
    served = create_app(gw_model, api_key_hashes=[hash_api_key(upstream_key)])
    with live_server(served) as base:
        spec = f"openai:{base}/v1;key_env=GW_TEST_UPSTREAM_KEY"
        with pytest.raises(InputError, match="GW_TEST_UPSTREAM_KEY is not set"):
            create_gateway_app(GatewayConfig(upstream=spec, log_dir=tmp_path / "x"))
        monkeypatch.setenv("GW_TEST_UPSTREAM_KEY", upstream_key)
        cfg = GatewayConfig(upstream=spec, log_dir=tmp_path / "log")
        app = create_gateway_app(cfg)
        key = app.state.accounts.add_account("k1")
        with TestClient(app) as c:
            r = chat(c, key)
            assert r.status_code == 200 and upstream_key not in r.text
            rows = segment_records(cfg.log_dir)
    assert rows[0]["status"] == "ok" and upstream_key not in json.dumps(rows)


# ------------------------------------------------------------------ batching of a local upstream
def test_a_local_upstream_batches_as_its_config_says(make_gateway):
    from distilltrace.serve.batching import BatchConfig

    app, _ = make_gateway()
    assert app.state.upstream.local_app.state.batcher.config == BatchConfig()  # continuous
    want = BatchConfig(max_batch=3, continuous=False, prefix_cache=0)
    app, _ = make_gateway(batching=want)
    assert app.state.upstream.local_app.state.batcher.config == want


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-batch", "0"], "--max-batch must be >= 1"),
        (["--batching", "static"], "--batching must be continuous or dynamic"),
        (["--prefix-cache", "2000"], "--prefix-cache must be in 0..1024"),
    ],
)
def test_gateway_run_rejects_bad_batching_options_in_one_line(tmp_path, args, message):
    """Checked before any model loads (the spec here does not exist)."""
    from tests.serve_helpers import cli_error

    log = str(tmp_path / "log")
    assert message in cli_error(
        "distilltrace.gateway", "run", "no-such-model", "--log-dir", log, *args
    )


@pytest.mark.parametrize(
    "roles,endpoint,want",
    [
        (["user"], "chat", 0),
        (["system", "user"], "chat", 0),
        (["developer", "user"], "chat", 0),  # serve reads a developer turn as system
        (["developer", "system", "user"], "chat", 1),  # two system turns, logged as one
        (["user", "system"], "chat", 1),  # a system turn after the user turn
        (["system", "user", "assistant", "user"], "chat", 2),
        (["user", "assistant", "tool"], "chat", 2),  # tool results after the last user turn
        (["assistant"], "chat", 1),  # no user turn: every other turn counts
        ([], "completions", 0),
    ],
)
def test_the_log_counts_the_turns_it_does_not_keep(roles, endpoint, want):
    """The logged prompt is the last user turn (and the system turns' text, apart): every
    turn beyond [system, user] is context the row cannot hold, counted so that custody
    does not redraw an answer from what the row holds alone."""
    from distilltrace.gateway.records import context_messages

    body = {"messages": [{"role": r, "content": "x"} for r in roles], "prompt": "p"}
    assert context_messages(body, endpoint) == want
    assert context_messages({"messages": "not a list"}, "chat") == 0
