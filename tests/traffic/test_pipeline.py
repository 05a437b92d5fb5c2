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
        eng.execute(st.name, st.sql)
    events = eng.fetch("SELECT * FROM events")
    yield eng, events
    eng.close()


def test_inter_arrival_gaps_with_ties(reduced):
    """Gaps are the differences of each account's sorted times: ties give 0 whichever
    request comes first, so no tie-break is needed."""
    eng, ev = reduced
    got = eng.fetch("SELECT * FROM acct_iat ORDER BY account_id").set_index("account_id")
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
