"""The pipeline's reductions equal their definitions, computed directly (DuckDB)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from distilltrace.traffic.engine import DuckDBEngine
from distilltrace.traffic.pipeline import statements


@pytest.fixture()
def reduced():
    rng = np.random.default_rng(5)
    n = 400
    t0 = pd.Timestamp("2026-03-01", tz="UTC")
    secs = rng.integers(0, 3 * 86400, n)
    secs[:40] = secs[40:80]  # ties: two requests at the same second
    frame = pd.DataFrame(
        {
            "request_id": [f"r{i:04d}" for i in range(n)],
            "timestamp": t0 + pd.to_timedelta(secs, unit="s"),
            "account_id": rng.choice(["a", "b", "c", "d"], n),
            "prompt": [f"question {i % 50}" for i in range(n)],
            "account_created_at": t0 - pd.to_timedelta(rng.integers(1, 9, n), unit="D"),
            "org_id": rng.choice(["o1", "o2"], n),
            "signup_path": rng.choice(["web", "api"], n),
            "client_ip": rng.choice(["10.0.0.1", "10.0.0.2", "10.0.1.9"], n),
            "asn": rng.choice([64500, 64501], n),
            "asn_type": rng.choice(["datacenter", "residential"], n),
            "user_agent": rng.choice(["python-httpx/0.27", "Mozilla/5.0"], n),
        }
    )
    eng = DuckDBEngine(threads=1)
    rep = eng.load_events(frame)
    for st in statements(set(rep.columns_present)):
        st.define(eng)
    events = eng.fetch("SELECT * FROM events")
    yield eng, events
    eng.close()


def test_inter_arrival_gaps_with_ties(reduced):
    """Gaps are the differences of each account's sorted times: ties give 0 whichever
    request comes first, so no tie-break is needed."""
    eng, ev = reduced
    got = eng.fetch(
        "SELECT account_id, n_gaps, gap_mean, gap_std, gap_lt1s FROM acct_all ORDER BY account_id"
    ).set_index("account_id")
    for acct, g in ev.groupby("account_id"):
        gaps = np.diff(np.sort(g["t"].to_numpy()))
        row = got.loc[acct]
        assert row["n_gaps"] == len(gaps)
        assert row["gap_mean"] == pytest.approx(gaps.mean(), rel=1e-12)
        assert row["gap_std"] == pytest.approx(gaps.std(), rel=1e-9)
        # over every request (the first one has no gap and counts as not < 1 s)
        assert row["gap_lt1s"] == pytest.approx((gaps < 1).sum() / len(g))
    assert (np.diff(np.sort(ev["t"].to_numpy())) == 0).any()


def test_metadata_and_infrastructure_from_one_pass(reduced):
    """acct_meta and acct_infra, built from the per-account combinations, equal the
    aggregates over the events themselves."""
    eng, ev = reduced
    meta = eng.fetch("SELECT * FROM acct_meta ORDER BY account_id").set_index("account_id")
    g = ev.groupby("account_id")
    assert meta["n_events"].tolist() == g.size().tolist()
    for c in ("created_t", "org_id", "signup_path", "asn_type"):
        assert meta[c].tolist() == g[c].min().tolist(), c
    cols = ["asn", "asn_type", "client_ip", "org_id", "user_agent"]
    infra = eng.fetch(
        f"SELECT account_id, {', '.join(cols)}, n FROM acct_infra "
        f"ORDER BY account_id, {', '.join(cols)}"
    )
    want = ev.groupby(["account_id", *cols]).size().reset_index(name="n")
    assert infra["n"].tolist() == want["n"].tolist()
    assert infra[cols].astype(str).values.tolist() == want[cols].astype(str).values.tolist()


def test_account_key_collision_is_mended_with_a_salt(monkeypatch, caplog):
    """The per-account tables group by a 64-bit key of the account id. When two ids share
    a key (forced here: a key of the id's length), the scan sees it, re-keys the events
    with a salt and gives the result of a scan without the collision."""
    from distilltrace.traffic import readers
    from distilltrace.traffic.scanner import scan
    from distilltrace.traffic.simulate import simulate

    log = simulate(n_accounts=300, days=1, seed=5)
    want = scan(log, engine=DuckDBEngine(threads=1), content=False)
    monkeypatch.setattr(readers, "ACCOUNT_KEY", "hash(length(account_id))")
    with caplog.at_level("WARNING", logger="distilltrace.traffic.scanner"):
        got = scan(log, engine=DuckDBEngine(threads=1), content=False)
    assert "share a 64-bit key" in caplog.text
    pd.testing.assert_frame_equal(want.accounts, got.accounts)
    assert [c.to_dict() for c in want.campaigns] == [c.to_dict() for c in got.campaigns]
    assert want.summary["n_flagged_requests"] == got.summary["n_flagged_requests"]


def test_account_key_collisions_that_persist_stop_the_scan(monkeypatch):
    """Keys that still collide after every salt stop the scan with a clear error instead of
    merging accounts."""
    from distilltrace.traffic import readers, scanner
    from distilltrace.traffic.simulate import simulate

    monkeypatch.setattr(readers, "account_key_sql", lambda salt=0: "hash(length(account_id))")
    with pytest.raises(RuntimeError, match="still collide"):
        scanner.scan(
            simulate(n_accounts=300, days=1, seed=5), engine=DuckDBEngine(threads=1), content=False
        )
