"""Live scoring equals a batch scan of the same log at the same watermark, runs off the
request path, and publishes policy decisions with an audit trail."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from distilltrace.gateway.hooks import AccountInfo
from distilltrace.gateway.live import LiveConfig, LiveEnforcer, LiveScorer, parse_time
from distilltrace.gateway.policy import AuditLog, Policy

WINDOW_S = 36 * 3600.0


@pytest.fixture(scope="module")
def sim_rows():
    """Two days of simulated traffic (300 accounts, campaigns included) as the evidence
    log holds them: one JSON object per row, the ground-truth column removed."""
    from distilltrace.traffic.simulate import simulate

    df = simulate(n_accounts=300, days=2, seed=1).drop(["campaign_id"]).to_pandas()
    rows = []
    for r in df.to_dict("records"):
        d = {}
        for k, v in r.items():
            if v is None or (isinstance(v, float) and v != v):
                continue
            d[k] = v.isoformat() if isinstance(v, pd.Timestamp) else v
        rows.append(d)
    return rows


def _cut(log_path, cut_path, start, end):
    """The batch side's own cut of the log: lines whose timestamp lies in [start, end]."""
    n = 0
    with open(log_path) as src, open(cut_path, "w") as dst:
        for line in src:
            ts = pd.Timestamp(json.loads(line)["timestamp"])
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
            if start <= ts.to_pydatetime() <= end:
                dst.write(line)
                n += 1
    return n


def test_live_snapshot_equals_batch_scan_at_watermark(sim_rows, tmp_path):
    """Null of equality: none (exactness). The live scorer receives the log's rows out of
    order, up to a watermark T in the middle of day 2; its snapshot at T must equal
    `distilltrace traffic scan` of the log file cut to [T - window, T], account by
    account and campaign by campaign."""
    from typer.testing import CliRunner

    from distilltrace.cli import app

    log_path = tmp_path / "evidence.jsonl"
    with open(log_path, "w") as f:
        for r in sim_rows:
            f.write(json.dumps(r) + "\n")
    times = sorted(parse_time(r["timestamp"]) for r in sim_rows)
    wm = times[int(len(times) * 0.8)]
    scorer = LiveScorer(LiveConfig(window_s=WINDOW_S))
    order = list(range(len(sim_rows)))
    random.Random(3).shuffle(order)  # rows arrive out of event-time order
    for i in order:
        if parse_time(sim_rows[i]["timestamp"]) <= wm:
            scorer.add(sim_rows[i])
    assert scorer.watermark == wm
    snap = scorer.score_now()
    assert snap.watermark == wm and snap.window_start == wm - timedelta(seconds=WINDOW_S)

    n_cut = _cut(log_path, tmp_path / "cut.jsonl", snap.window_start, wm)
    assert n_cut == snap.n_rows > 0 and n_cut < len(sim_rows)
    out = tmp_path / "batch"
    res = CliRunner().invoke(
        app, ["traffic", "scan", str(tmp_path / "cut.jsonl"), "--out", str(out), "--no-content"]
    )
    assert res.exit_code == 0, res.output
    batch = pd.read_parquet(out / "accounts.parquet")
    live = snap.result.accounts.reset_index(drop=True)
    assert live["flagged"].sum() >= 3  # the comparison covers flagged campaign accounts
    pd.testing.assert_frame_equal(live, batch, check_dtype=False, check_exact=True)
    camps = json.loads((out / "campaigns.json").read_text())
    camps = camps["campaigns"] if isinstance(camps, dict) else camps
    live_camps = json.loads(json.dumps([c.to_dict() for c in snap.campaigns], default=str))
    assert live_camps == camps
    # the published per-account scores are the same numbers
    for r in batch.itertuples():
        a = snap.accounts[r.account_id]
        assert (a.flagged, a.risk_tail_p, a.cluster_id) == (r.flagged, r.risk_tail_p, r.cluster_id)


def _acct(aid: str) -> AccountInfo:
    return AccountInfo(aid, None, datetime(2026, 1, 1, tzinfo=UTC), None, None, "k_" + aid)


def test_background_scoring_policy_and_audit(sim_rows, tmp_path):
    """Rows observed by the enforcer are scored in the background thread; decide() reads
    the published decisions (no scan on the request path); every change of action is in
    the audit trail with who, when, why and the scan's evidence."""
    policy = Policy.from_toml(
        """
        [[rule]]
        id = "block-flagged"
        when = "flagged"
        action = "block"
        """
    )
    audit = AuditLog(tmp_path / "audit.jsonl")
    enf = LiveEnforcer(
        policy, config=LiveConfig(window_s=4 * 86400, interval_s=0.2, every_n=5000), audit=audit
    )
    try:
        for r in sim_rows:
            enf.observe(r)
        deadline = time.monotonic() + 90
        while enf.snapshot.n_rows < len(sim_rows) and time.monotonic() < deadline:
            time.sleep(0.2)
        snap = enf.snapshot
        assert snap.seq >= 1 and snap.n_rows == len(sim_rows)
        flagged = sorted(a for a, s in snap.accounts.items() if s.flagged)
        assert flagged
        now = datetime.now(UTC)
        t0 = time.perf_counter()
        decisions = {a: enf.decide(_acct(a), {}, now) for a in snap.accounts}
        per_call = (time.perf_counter() - t0) / len(decisions)
        assert per_call < 1e-3  # a dict lookup, never a scan
        assert sorted(a for a, d in decisions.items() if d.action == "block") == flagged
        assert decisions[flagged[0]].rule == "block-flagged"
        entries = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
        blocked = {e["account_id"]: e for e in entries if e["action"] == "block"}
        assert sorted(blocked) == flagged
        e = blocked[flagged[0]]
        assert e["who"] == "rule:block-flagged" and e["previous"] == "allow"
        # the evidence of the snapshot that made the decision (a later snapshot may differ)
        ev = e["evidence"]
        assert ev["flag_reason"] and 0.0 <= ev["risk_tail_p"] <= 1.0
        assert ev["n_requests"] >= 1 and ev["cluster_id"] is not None
        assert datetime.fromisoformat(e["ts"]) <= datetime.now(UTC)
        # an admin override wins and is audited
        enf.override(flagged[0], "allow", who="alice", why="contract customer")
        assert enf.decide(_acct(flagged[0]), {}, now).action == "allow"
        last = audit.read()[-1]
        assert (last["who"], last["action"], last["previous"]) == ("admin:alice", "allow", "block")
    finally:
        enf.close()


def test_throttle_rate_and_cluster_scope(sim_rows):
    """A cluster-scoped rule applies to every member of a flagged cluster; a throttle rule
    lets rate_per_min requests a minute through (as flag) and answers 429 after."""
    policy = Policy.from_toml(
        """
        [[rule]]
        id = "throttle-cluster"
        when = "cluster_flagged"
        scope = "cluster"
        action = "throttle"
        rate_per_min = 3
        """
    )
    enf = LiveEnforcer(policy, config=LiveConfig(window_s=WINDOW_S), start=False)
    for r in sim_rows:
        enf.observe(r)
    snap = enf.scorer.score_now()
    clusters = snap.clusters()
    hit = [c for c in clusters.values() if any(m.campaign_flagged for m in c)]
    assert hit
    members = {m.account_id for c in hit for m in c}
    throttled = {a for a, d in enf.decisions().items() if d.action == "throttle"}
    assert throttled == members
    aid = sorted(members)[0]
    now = datetime(2026, 3, 5, 12, tzinfo=UTC)
    acts = [enf.decide(_acct(aid), {}, now + timedelta(seconds=i)).action for i in range(5)]
    assert acts == ["flag", "flag", "flag", "throttle", "throttle"]
    d = enf.decide(_acct(aid), {}, now + timedelta(seconds=5))
    assert d.retry_after_s == pytest.approx(55.0)
    assert enf.decide(_acct(aid), {}, now + timedelta(seconds=61)).action == "flag"


def test_unplaced_rows_are_counted_not_lost():
    """A row without a parseable timestamp cannot be placed in a window: it is counted."""
    s = LiveScorer()
    s.add({"request_id": "r1", "timestamp": "not a time", "account_id": "a", "prompt": "x"})
    s.add({"request_id": "r2", "timestamp": "2026-03-02T00:00:00Z", "account_id": "a"})
    assert s.stats["unplaced_rows"] == 1 and s.stats["rows_seen"] == 2
    snap = s.score_now()
    assert snap.n_rows == 1  # the second row is in the window (and quarantined by the scan)
    assert snap.result.summary["rows_quarantined"] == 1


def test_live_equals_batch_scan_of_the_gateways_own_log(make_gateway, sim_rows, tmp_path):
    """Null of equality: none (exactness). Requests sent through the real gateway app are
    logged (fsync'd segments, then rolled to Parquet) and observed by the live scorer; the
    live snapshot at the log's last timestamp equals `traffic scan LOG/parquet/*.parquet`."""
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from distilltrace.cli import app as cli_app
    from distilltrace.gateway.evidence_log import roll

    enf = LiveEnforcer(Policy.from_toml(""), config=LiveConfig(), start=False)
    app, _ = make_gateway(enforcer=enf)
    rows = sim_rows[:150]
    keys = {}
    for r in rows:
        if r["account_id"] not in keys:
            keys[r["account_id"]] = app.state.accounts.add_account(
                r["account_id"],
                org_id=r.get("org_id"),
                payment_fingerprint=r.get("payment_fingerprint"),
            ).key
    with TestClient(app) as c:
        for r in rows:
            h = {
                "Authorization": f"Bearer {keys[r['account_id']]}",
                "x-forwarded-for": r["client_ip"],
            }
            h["user-agent"] = r["user_agent"]
            msg = {"role": "user", "content": r["prompt"][:300]}  # the model's context
            body = {"model": "tiny", "messages": [msg]}
            assert (
                c.post(
                    "/v1/chat/completions", json={**body, "max_tokens": 1}, headers=h
                ).status_code
                == 200
            )
    assert roll(app.state.config.log_dir).records == len(rows)
    snap = enf.scorer.score_now()
    assert snap.n_rows == len(rows)
    parts = sorted(str(p) for p in (app.state.config.log_dir / "parquet").glob("*.parquet"))
    out = tmp_path / "batch"
    res = CliRunner().invoke(
        cli_app, ["traffic", "scan", *parts, "--out", str(out), "--no-content"]
    )
    assert res.exit_code == 0, res.output
    batch = pd.read_parquet(out / "accounts.parquet")
    assert len(batch) == len(keys)
    pd.testing.assert_frame_equal(
        snap.result.accounts.reset_index(drop=True), batch, check_dtype=False, check_exact=True
    )


def test_a_scan_in_the_worker_process_equals_one_in_thread(sim_rows):
    """Null of equality: none (exactness). The default scan runs in a separate worker
    process (``isolate``); it publishes the same scores as the same scan in-thread. A
    worker that dies fails that one scan (the scorer keeps its last snapshot) and is
    replaced on the next."""
    import os
    import signal

    from distilltrace.gateway import live

    rows = sim_rows[:2000]
    snaps = {}
    for iso in (True, False):
        s = LiveScorer(LiveConfig(window_s=WINDOW_S, isolate=iso))
        for r in rows:
            s.add(r)
        snaps[iso] = s.score_now()
    a, b = snaps[True], snaps[False]
    assert a.n_rows == b.n_rows > 0 and a.accounts == b.accounts
    pd.testing.assert_frame_equal(a.result.accounts, b.result.accounts)
    assert [c.to_dict() for c in a.campaigns] == [c.to_dict() for c in b.campaigns]
    assert a.result.requests is None  # live scoring keeps no request-level flags

    w = live._worker
    assert w is not None and w._proc is not None and w._proc.poll() is None
    s = LiveScorer(LiveConfig(window_s=WINDOW_S))
    for r in rows:
        s.add(r)
    # dies between scans: replaced before the next one
    pid = w._proc.pid
    os.kill(pid, signal.SIGKILL)
    w._proc.wait(timeout=10)
    assert s.score_now().accounts == a.accounts and w._proc.pid != pid
    # dies during a call (looks alive when the call starts): that scan fails loudly
    os.kill(w._proc.pid, signal.SIGKILL)
    w._proc.wait(timeout=10)
    w._proc.poll = lambda: None
    seq = s.snapshot.seq
    with pytest.raises(RuntimeError, match="worker died"):
        s.score_now()
    assert s.snapshot.seq == seq  # nothing published from the failed scan
    assert s.score_now().accounts == a.accounts  # a fresh worker


def test_a_scan_error_in_the_worker_reaches_the_caller_and_the_worker_lives_on(sim_rows):
    """An exception raised by a scan in the worker process is raised again in the
    gateway (same type and message); the worker then serves the next scan."""
    import pyarrow as pa

    from distilltrace.gateway.live import _to_ipc, rows_table
    from distilltrace.gateway.scanworker import ScanWorker
    from distilltrace.traffic.scanner import ScanConfig

    w = ScanWorker()
    try:
        with pytest.raises(pa.ArrowInvalid):
            w.call(b"not an arrow stream", ScanConfig(content=None), False, 1)
        pid = w._proc.pid
        s = LiveScorer(LiveConfig(window_s=WINDOW_S, isolate=False))
        for r in sim_rows[:500]:
            s.add(r)
        table = rows_table(s.window_rows(s.watermark))
        result, accounts = w.call(_to_ipc(table), ScanConfig(content=None), False, 1)
        assert (
            w._proc.pid == pid and accounts and set(accounts) == set(result.accounts["account_id"])
        )
    finally:
        w.close()
    assert w._proc is None
