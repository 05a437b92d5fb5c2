"""`distilltrace gateway demo`: the gateway with live scoring in front of a tiny model, a
simulated campaign replayed through it over HTTP, the board saved; and the replay plan.

The detection numbers themselves are measured by benchmarks/gateway_replay.py (see
docs/benchmarks.md, "Gateway: live replay"); here the demo runs small and fast and every
output it promises is checked."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from distilltrace.cli import app
from distilltrace.gateway.demo import ReplayConfig, measure, plan


def test_plan_keeps_the_campaign_out_of_history():
    """The replayed campaign's accounts are absent from the history (it starts live); the
    benign replay has no campaign request and the same size."""
    cfg = ReplayConfig(n_accounts=300, days=2, replay_requests=400)
    hist, rep = plan(cfg)
    camp = {r["account_id"] for r in rep if r.get("campaign_id")}
    assert camp and not camp & {r["account_id"] for r in hist}
    assert all(r["campaign_id"].startswith("proxy_mismatch") for r in rep if r.get("campaign_id"))
    assert len(rep) == 400
    assert max(r["timestamp"] for r in hist) < min(
        r["timestamp"] for r in rep if not r.get("campaign_id")
    )  # the benign replay is the day after the history
    hist_b, rep_b = plan(ReplayConfig(n_accounts=300, days=2, replay_requests=400, benign=True))
    assert len(rep_b) == 400 and not any(r.get("campaign_id") for r in rep_b)
    assert len(hist_b) == len(hist)


def test_measure_counts_requests_to_first_flag_and_block():
    res = [
        {"i": 0, "account_id": "a", "campaign_id": "c-1", "status": 200, "policy": "allow"},
        {"i": 1, "account_id": "b", "campaign_id": None, "status": 200, "policy": "allow"},
        {"i": 2, "account_id": "a", "campaign_id": "c-1", "status": 200, "policy": "flag"},
        {"i": 3, "account_id": "a2", "campaign_id": "c-1", "status": 403, "policy": "block"},
        {"i": 4, "account_id": "b", "campaign_id": None, "status": 200, "policy": "flag"},
    ]
    m = measure(res)
    c = m["campaigns"]["c-1"]
    assert (c["first_flag_at_request"], c["first_block_at_request"], c["accounts_blocked"]) == (
        2,
        3,
        1,
    )
    assert (m["benign_accounts"], m["benign_accounts_flagged"], m["benign_accounts_blocked"]) == (
        1,
        1,
        0,
    )


def test_gateway_demo_cli(tmp_path):
    out = tmp_path / "demo"
    args = ["gateway", "demo", "--out", str(out), "--accounts", "300", "--requests", "300"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "board:" in r.output and "campaign proxy_mismatch" in r.output
    m = json.loads((out / "replay.json").read_text())
    assert m["requests"] == 300 and m["live_scans"] >= 1
    board = (out / "board.html").read_text()
    assert '<table id="campaigns">' in board and "admin" not in m.get("board_url", "")
    token = (out / "admin_token").read_text().strip()
    assert token not in board and token not in r.output
    assert list((out / "log").rglob("*.seg")) or list((out / "log").rglob("*.parquet"))
    again = CliRunner().invoke(app, args)  # a used folder is one readable error line
    assert again.exit_code != 0 and "not empty" in str(again.exception or again.output)
