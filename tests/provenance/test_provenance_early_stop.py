"""Stopping a reference once it is decided (ProvenanceConfig.stop_when_decided): the tests
not run and the greedy stream count as p = 1 in the Bonferroni combination, so the
combined p-value is never smaller than the full procedure's (and stays valid); the
sampled outputs are generated only when a test reads them."""

from __future__ import annotations

import pytest

from distilltrace.provenance.config import DEFAULT_TESTS, ProvenanceConfig
from distilltrace.provenance.report import write_report
from distilltrace.provenance.tester import test_provenance
from tests.provenance.test_provenance_registry import FAST, Fake, SampledExactMatch

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # no empty-slice means
TOY = SampledExactMatch.name
FIXED = ("likelihood", "likelihood_reverse", "lexical_fingerprint")


@pytest.fixture
def toy():
    from distilltrace.provenance import register, unregister

    test = register(SampledExactMatch())
    yield test
    unregister(test.name)


def _cfg(stop: bool, seed: int = 0) -> ProvenanceConfig:
    return ProvenanceConfig(
        **FAST,
        tests=(*DEFAULT_TESTS, TOY),
        fixed_order=(TOY, *FIXED),  # the toy test first: it decides a copying suspect
        target_p=1e-2,
        stop_when_decided=stop,
        seed=seed,
    )


def _models(copy: float, seed: int = 0):
    r, r2 = Fake(f"R{seed}"), Fake(f"R2-{seed}")
    ctrls = [Fake(f"C1-{seed}"), Fake(f"C2-{seed}"), Fake(f"C3-{seed}")]
    return Fake(f"S{seed}", parent=r, copy=copy), [r, r2], ctrls


def test_a_decided_reference_skips_the_rest_and_counts_them_as_one(toy, tmp_path):
    s, refs, ctrls = _models(copy=0.9)
    early = test_provenance(s, refs, ctrls, budget=400, config=_cfg(True))
    full = test_provenance(s, refs, ctrls, budget=400, config=_cfg(False))
    r, r_full = early.references[0], full.references[0]
    level = 1e-2 / (5 * 2)  # target_p over 5 tests and 2 references
    assert r.tests[TOY].pvalue <= level
    for name in FIXED:  # not run, counted as p = 1, and said so
        t = r.tests[name]
        assert t.ran and t.pvalue == 1.0 and t.skipped.startswith("not run")
    greedy = r.tests["greedy_agreement"]
    assert greedy.n == 0 and greedy.pvalue == 1.0
    assert greedy.details["stream_stop"].startswith("not run")
    assert greedy.looked_at_no_data and "no greedy probe drawn" in greedy.skipped
    assert all(r.tests[name].looked_at_no_data for name in FIXED)
    page = " ".join(write_report(early, tmp_path)["html"].read_text().split())
    assert "skipped: no greedy probe drawn (counted as p = 1); the stream: not run" in page
    assert r.combined_pvalue == pytest.approx(min(1.0, 5 * r.tests[TOY].pvalue))
    assert early.plausible_parents == full.plausible_parents == [r.reference]
    # the toy test's p-value is the same either way; the combined one is never smaller
    assert r.tests[TOY].pvalue == r_full.tests[TOY].pvalue
    assert r.combined_pvalue >= r_full.combined_pvalue
    assert r_full.tests["greedy_agreement"].n > 0
    assert not any(t.looked_at_no_data for t in r_full.tests.values())
    # the undecided reference ran everything, as in the full run
    other = early.references[1]
    assert not any((t.skipped or "").startswith("not run") for t in other.tests.values())
    assert early.suspect_queries < full.suspect_queries


def test_the_reference_no_test_reads_costs_no_sampled_outputs(toy):
    """Lazy outputs: with every fixed test after the first decided for the one
    reference, its fingerprint outputs are never generated."""
    s, refs, ctrls = _models(copy=0.9)
    early = test_provenance(s, refs[:1], ctrls, budget=400, config=_cfg(True))
    full = test_provenance(s, refs[:1], ctrls, budget=400, config=_cfg(False))
    r = early.references[0].reference
    assert early.queries[r]["generate"] < full.queries[r]["generate"]
    assert early.suspect_queries < full.suspect_queries
    # the p-value curve starts at the queries actually made, not the planned ones
    ref = early.references[0]
    assert ref.trajectory[-1][0] == early.suspect_queries
    assert ref.queries_to["p<=0.01"] == early.suspect_queries


def test_early_stopping_never_lowers_the_combined_pvalue_and_null_stays_calibrated(toy):
    """On null suspects (copy 0) and derived ones, seed by seed: the early-stopped combined
    p-value is at least the full procedure's (the proof of validity), and no null suspect
    is attributed at alpha = 0.05."""
    for seed in range(6):
        for copy in (0.0, 0.5):
            s, refs, ctrls = _models(copy=copy, seed=seed)
            early = test_provenance(s, refs, ctrls, budget=300, config=_cfg(True, seed))
            full = test_provenance(s, refs, ctrls, budget=300, config=_cfg(False, seed))
            for a, b in zip(early.references, full.references, strict=True):
                assert a.combined_pvalue >= b.combined_pvalue - 1e-12
            if copy == 0.0:
                assert early.plausible_parents == []
