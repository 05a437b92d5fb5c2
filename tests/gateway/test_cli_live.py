"""`gateway run --live`: the enforcer is backfilled from the log's rolled Parquet files
and the board, metrics and guardrail routers are mounted; bad inputs are one line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from distilltrace.errors import DistilltraceError
from distilltrace.gateway.cli import _live_parts
from distilltrace.gateway.config import GatewayConfig
from distilltrace.gateway.evidence_log import EvidenceLog, roll


def _rec(i: int) -> dict:
    return {
        "request_id": f"r{i}",
        "timestamp": datetime(2026, 1, 1, 12, i // 60, i % 60, tzinfo=UTC),
        "account_id": f"a{i % 3}",
        "prompt": f"question {i}",
    }


def _cfg(tmp_path, token: str | None = "s3cret-token-0123456789"):
    tok = None
    if token is not None:
        tok = tmp_path / "admin_token"
        tok.write_text(token + "\n")
    return GatewayConfig(upstream="unused", log_dir=tmp_path / "log", admin_token_file=tok)


def test_live_parts_backfill_and_routers(tmp_path):
    cfg = _cfg(tmp_path)
    with EvidenceLog(cfg.log_dir) as log:
        for i in range(30):
            log.write_sync(_rec(i))
    roll(cfg.log_dir)
    enf, routers = _live_parts(cfg, None, False)
    try:
        paths = {r.path for router in routers for r in router.routes}
        assert "/metrics" in paths and "/beta/litellm_basic_guardrail_api" in paths
        assert any(p.startswith("/board") for p in paths)
        snap = enf.scorer.score_now()
        assert snap.n_rows == 30
        assert set(snap.accounts) == {"a0", "a1", "a2"}
    finally:
        enf.close()


def test_live_parts_needs_token_and_a_real_policy(tmp_path):
    with pytest.raises(DistilltraceError, match="admin-token-file"):
        _live_parts(_cfg(tmp_path, token=None), None, False)
    with pytest.raises(DistilltraceError, match="policy file not found"):
        _live_parts(_cfg(tmp_path), tmp_path / "nope.toml", False)
    bad = tmp_path / "bad.toml"
    bad.write_text("rule = [")
    with pytest.raises(DistilltraceError, match="not valid TOML"):
        _live_parts(_cfg(tmp_path), bad, False)
