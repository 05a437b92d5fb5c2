"""The model-level standing check (provenance.standing): calibration on exchangeable
models, power, exact values, and where it reaches the tests, the warnings and the reports."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from distilltrace.provenance.lexical import lexical_test
from distilltrace.provenance.likelihood import likelihood_test
from distilltrace.provenance.result import TestResult
from distilltrace.provenance.simulate import simulated_scores as _sim_scores
from distilltrace.provenance.standing import (
    standing_test,
    standing_warning,
    standing_warnings,
)


def _world(rng, k: int, shift: float = 0.0, noise: float = 0.05):
    """Additive closeness v ~ N(0, 1) per model; D(g, c) = v_g - v_c + noise."""
    v = rng.normal(0, 1, k + 1)
    v[0] += shift
    ctl = [f"c{i}" for i in range(1, k + 1)]
    val = dict(zip(["S", *ctl], v, strict=True))
    s = {c: val["S"] - val[c] + rng.normal(0, noise) for c in ctl}
    pairs = {(g, c): val[g] - val[c] + rng.normal(0, noise) for g in ctl for c in ctl if g != c}
    return s, pairs


@pytest.mark.parametrize("k", [3, 5])
def test_standing_calibrated_on_exchangeable_models(k):
    """Null: the suspect is one more i.i.d. normal model. FPR <= alpha at 0.01/0.05/0.1
    over 4,000 worlds (3 binomial standard errors of slack); the rank p-value is uniform on
    {1/(k+1), ..., 1}."""
    rng = np.random.default_rng(k)
    res = [standing_test(*_world(rng, k)) for _ in range(4000)]
    p = np.array([r.pvalue for r in res])
    for a in (0.01, 0.05, 0.1):
        assert (p <= a).mean() <= a + 3 * np.sqrt(a * (1 - a) / p.size), a
    assert (p <= 0.5).mean() == pytest.approx(0.5, abs=0.03)  # not conservative either
    rank = np.array([r.pvalue_rank for r in res])
    assert rank.min() == pytest.approx(1 / (k + 1))
    assert (rank <= 1 / (k + 1)).mean() == pytest.approx(1 / (k + 1), abs=0.02)


def test_standing_has_power_and_exact_values():
    rng = np.random.default_rng(1)
    s, pairs = _world(rng, 5, shift=15.0)
    r = standing_test(s, pairs)
    assert r.pvalue < 1e-3 and r.pvalue_rank == pytest.approx(1 / 6)
    # by hand: three controls at closeness 0, 1, 2 and a suspect at 4
    v = {"a": 0.0, "b": 1.0, "c": 2.0}
    pairs = {(g, c): v[g] - v[c] for g in v for c in v if g != c}
    r = standing_test({c: 4.0 - v[c] for c in v}, pairs)
    t = (4.0 - 1.0) / (1.0 * np.sqrt(1 + 1 / 3))  # sample sd of 0, 1, 2 is 1
    assert r.statistic == pytest.approx(t)
    assert r.pvalue == pytest.approx(stats.t.sf(t, 2))
    assert r.suspect_standing == pytest.approx(3.0) and r.spread == pytest.approx(1.0)
    assert r.control_standing == pytest.approx({"a": -1.0, "b": 0.0, "c": 1.0})
    assert r.pvalue_rank == pytest.approx(0.25)
    # the suspect below the middle control: ranked third of four
    assert standing_test({c: 0.5 - v[c] for c in v}, pairs).pvalue_rank == pytest.approx(0.75)
    d = r.to_dict()
    assert d["name"] == "model_standing" and "normal" in d["null"]


def test_standing_needs_three_controls_and_finite_means():
    assert standing_test({"a": 1.0, "b": 2.0}, {("a", "b"): 0.1, ("b", "a"): -0.1}) is None
    v = ["a", "b", "c"]
    pairs = {(g, c): 0.0 for g in v for c in v if g != c}
    assert standing_test({"a": 1.0, "b": np.nan, "c": 1.0}, pairs) is None
    pairs.pop(("a", "b"))
    assert standing_test({"a": 1.0, "b": 1.0, "c": 1.0}, pairs) is None


def test_standing_when_the_controls_stand_alike():
    v = ["a", "b", "c"]
    pairs = {(g, c): 0.0 for g in v for c in v if g != c}
    assert standing_test(dict.fromkeys(v, 0.2), pairs).pvalue == 0.0
    assert standing_test(dict.fromkeys(v, 0.0), pairs).pvalue == 0.5
    assert standing_test(dict.fromkeys(v, -0.2), pairs).pvalue == 1.0


def test_likelihood_standing_calibrated_where_the_per_prompt_test_is_not():
    """Models that the reference favours by different amounts (affinity sd 0.15) and
    3,000 prompts: the per-prompt test's null is about these controls, so at the model
    level it rejects more often than alpha (measured: 2.0% at 0.01 over 1,000 worlds); the
    standing, whose randomness is the models', stays at alpha."""
    rng = np.random.default_rng(1)
    ctl = ["c1", "c2", "c3"]
    test_p, stand_p = [], []
    for i in range(400):
        r = likelihood_test(
            _sim_scores(rng, 3000, ctl, affinity_sd=0.15), "R", ctl, suspect="S", seed=i,
            n_resamples=199,
        )  # fmt: skip
        test_p.append(r.pvalue)
        stand_p.append(r.details["standing"]["pvalue"])
    stand_p = np.array(stand_p)
    for a in (0.05, 0.1):
        assert (stand_p <= a).mean() <= a + 3 * np.sqrt(a * (1 - a) / stand_p.size)
    assert (np.array(test_p) <= 0.01).mean() > 0.01  # the reason for the check
    derived = likelihood_test(_sim_scores(rng, 300, ctl, derived=3.0), "R", ctl, suspect="S")
    assert derived.details["standing"]["pvalue"] < 0.01


def test_lexical_result_carries_its_standing():
    rng = np.random.default_rng(3)
    vocab = np.array([f"w{i}" for i in range(40)])
    ctl = ["c1", "c2", "c3"]

    def texts(m, n):
        p = rng.dirichlet(np.ones(40) * (0.3 if m == "R" else 3.0))
        return [" ".join(rng.choice(vocab, 20, p=p)) for _ in range(n)]

    fp = {m: texts(m, 20) for m in ["R", *ctl]}
    test = {m: texts(m, 20) for m in ["S", *ctl]}
    st = lexical_test(fp, test, "R", ctl, suspect="S", n_resamples=199).details["standing"]
    assert st["n"] == 3 and 0 <= st["pvalue"] <= 1 and st["pvalue_rank"] in (0.25, 0.5, 0.75, 1)
    two = lexical_test(fp, test, "R", ctl[:2], suspect="S", n_resamples=199)
    assert two.details["standing"] is None


def test_standing_warning_only_when_the_test_rejects_and_the_standing_does_not():
    st = {"n": 3, "statistic": 1.5, "pvalue": 0.2, "pvalue_rank": 0.25}
    w = standing_warning("likelihood", 1e-5, st, 0.01)
    assert "likelihood" in w and "3 controls" in w and "0.2" in w and "0.25" in w
    assert standing_warning("likelihood", 0.2, st, 0.01) is None  # the test did not reject
    assert standing_warning("likelihood", 1e-5, {**st, "pvalue": 0.001}, 0.01) is None
    tests = {
        "likelihood": TestResult("likelihood", "", 1e-5, details={"standing": st}),
        "lexical_fingerprint": TestResult("lexical_fingerprint", "", 1e-5, details={}),
        "skipped": TestResult("skipped", "", None, skipped="why"),
    }
    assert standing_warnings(tests, 0.01) == [w]


def test_standing_benchmark_pieces():
    """benchmarks/provenance_standing.py: the margin rule's limit with 3 controls (6.6%,
    well above 1%) and the likelihood worlds' p-values."""
    from benchmarks.provenance_standing import likelihood_worlds, main, margin_limit

    assert margin_limit(3, 200_000, np.random.default_rng(0)) == pytest.approx(0.066, abs=0.003)
    assert margin_limit(8, 200_000, np.random.default_rng(0)) < 0.005
    r = likelihood_worlds(6, 200, seed=0)
    assert set(r) == {"test", "standing", "rank"} and all(len(v) == 6 for v in r.values())
    assert all(((v >= 0) & (v <= 1)).all() for v in r.values())
    assert main(["--worlds", "2", "--prompts", "50"]) == 0
