"""The fused scan on a small simulated log: which campaigns and look-alikes it flags.

One known failure is kept visible here: in this short (3-day) log the reseller that
mixes a 5% campaign share into its own traffic is missed (its share does not show in
the population's base rate even after the second draw; the 7-day folds of
docs/benchmarks.md, "Traffic: generalisation", find it). `test_full_targets` asserts the
issue's targets and is expected to fail until it is fixed (strict: it will say so when
it is). The enterprise integration that repeats one JSON-extraction instruction line is
no longer flagged (one repeated line is one decision of the intent head)."""

from __future__ import annotations

import pytest

from distilltrace.traffic import scan

simulate = pytest.importorskip("distilltrace.traffic.simulate")

KNOWN_MISSED_ARCHETYPES = {"reseller_mixed"}
KNOWN_FALSE_ALARM_GROUPS: set[str] = set()


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
@pytest.mark.xfail(strict=True, reason="known miss: 5%-mixed reseller in a 3-day log")
def test_full_targets(small_sim):
    truth, res = small_sim
    flagged = set(res.flagged_accounts)
    assert all(_found(truth, flagged).values())
    assert not _flagged_groups(truth, flagged)
