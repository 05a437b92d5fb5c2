"""The fused scan on a small simulated log: the exact set of flagged campaigns."""

from __future__ import annotations

import pytest

from distilltrace.traffic import scan

simulate = pytest.importorskip("distilltrace.traffic.simulate")


@pytest.mark.slow
def test_small_simulation_exact_campaigns():
    tbl = simulate.simulate(n_accounts=3000, days=3, seed=11)
    truth = simulate.truth_of(tbl)
    res = scan(tbl)
    flagged = set(res.flagged_accounts)
    # every campaign: most of its accounts flagged
    for c in truth["campaigns"]:
        acc = set(c["accounts"])
        assert len(acc & flagged) > len(acc) / 2, c["name"]
    # no benign hard-case account flagged, and nothing else beyond the FPR budget
    campaign_accounts = {a for c in truth["campaigns"] for a in c["accounts"]}
    for g in truth["groups"]:
        assert not (set(g.get("accounts", [])) & flagged), g["name"]
    benign_flagged = flagged - campaign_accounts
    assert len(benign_flagged) <= max(1, int(0.001 * res.summary["n_accounts"]))
