"""The fused scan on a small simulated log: which campaigns and look-alikes it flags.

Two known failures of the current detector are measured in docs/benchmarks.md
("Traffic: generalisation") and kept visible here: the reseller that mixes a 5%
campaign share into its own traffic is missed, and the enterprise integration that
sends one JSON field-extraction template is flagged. `test_full_targets` asserts the
issue's targets and is expected to fail until both are fixed (strict: it will say so
when they are)."""

from __future__ import annotations

import pytest

from distilltrace.traffic import scan

simulate = pytest.importorskip("distilltrace.traffic.simulate")

KNOWN_MISSED_ARCHETYPES = {"reseller_mixed"}
KNOWN_FALSE_ALARM_GROUPS = {"enterprise_app"}


@pytest.fixture(scope="module")
def small_sim():
    tbl = simulate.simulate(n_accounts=3000, days=3, seed=11)
    truth = simulate.truth_of(tbl)
    return truth, scan(tbl)


def _found(truth, flagged):
    return {
        c["archetype"]: len(set(c["accounts"]) & flagged) > len(c["accounts"]) / 2
        for c in truth["campaigns"]
    }


def _flagged_groups(truth, flagged):
    return {g["name"] for g in truth["groups"] if set(g.get("accounts", [])) & flagged}


@pytest.mark.slow
def test_small_simulation_campaigns_and_lookalikes(small_sim):
    truth, res = small_sim
    flagged = set(res.flagged_accounts)
    found = _found(truth, flagged)
    for archetype, ok in found.items():
        assert ok or archetype in KNOWN_MISSED_ARCHETYPES, archetype
    for name in _flagged_groups(truth, flagged):
        assert name.rsplit("_", 1)[0] in KNOWN_FALSE_ALARM_GROUPS, name
    campaign_accounts = {a for c in truth["campaigns"] for a in c["accounts"]}
    benign_flagged = flagged - campaign_accounts
    assert len(benign_flagged) <= max(1, int(0.001 * res.summary["n_accounts"]))


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="known misses: 5%-mixed reseller, enterprise JSON app")
def test_full_targets(small_sim):
    truth, res = small_sim
    flagged = set(res.flagged_accounts)
    assert all(_found(truth, flagged).values())
    assert not _flagged_groups(truth, flagged)
