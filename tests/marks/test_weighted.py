"""The weighted watermark test (`marks.weighted`).

H0: the weights do not depend on the key. The p-value is an upper bound on the tail of the
weighted sum of centred key scores (Chernoff; for tournament keys also the Bentkus-
Dzindzalieta Gaussian comparison), so FPR <= alpha at every alpha.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from distilltrace.errors import CapabilityError, InputError
from distilltrace.marks.schemes import get_scheme
from distilltrace.marks.weighted import (
    RADEMACHER_GAUSS_C,
    aggregate,
    chernoff_log_sf,
    rademacher_log_sf,
    weighted_test,
)
from distilltrace.stats import binomial_slack

SCHEMES = {
    "tournament": (get_scheme("tournament")(), lambda rng, n: rng.binomial(30, 0.5, n) - 15.0),
    "greenlist": (
        get_scheme("greenlist")(gamma=0.25),
        lambda rng, n: rng.binomial(1, 0.25, n) - 0.25,
    ),
    "gumbel": (get_scheme("gumbel")(), lambda rng, n: rng.exponential(size=n) - 1.0),
}


def test_the_gaussian_comparison_constant():
    assert RADEMACHER_GAUSS_C == pytest.approx(3.178, abs=1e-3)
    # the smaller of Hoeffding's exp(-z^2 / 2) and c P(N >= z)
    assert rademacher_log_sf(0.1, 1.0) == pytest.approx(-0.005)  # Hoeffding's, near 0
    assert rademacher_log_sf(4.0, 1.0) == pytest.approx(math.log(3.178 * st.norm.sf(4.0)), abs=1e-3)
    assert rademacher_log_sf(8.0, 2.0) == rademacher_log_sf(4.0, 1.0)
    assert rademacher_log_sf(-1.0, 1.0) == 0.0 and rademacher_log_sf(0.0, 1.0) == 0.0


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_cumulants_match_the_null_law(name):
    """K(t) from each scheme equals ln E exp(t (X - mean)) computed by simulation."""
    impl, draw = SCHEMES[name]
    rng = np.random.default_rng(1)
    x = draw(rng, 400_000)
    for t in (-0.3, 0.05, 0.2):
        want = math.log(np.mean(np.exp(t * x)))
        assert float(impl.centred_cgf(np.array([t]))[0]) == pytest.approx(want, rel=0.03, abs=2e-3)
    assert abs(float(np.mean(x))) < 0.02 * max(1.0, impl.tuple_mean())


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_the_bound_holds_for_fixed_weights(name):
    """Simulated null sums with signed, uneven weights: the empirical tail at its 90%,
    99% and 99.9% quantiles never exceeds the bound."""
    impl, draw = SCHEMES[name]
    rng = np.random.default_rng(2)
    w = rng.exponential(size=300) * rng.choice([-1.0, 1.0], 300)
    sims = np.array([draw(rng, 300) @ w for _ in range(20_000)])
    for q in (0.9, 0.99, 0.999):
        x = float(np.quantile(sims, q))
        assert math.exp(impl.weighted_log_sf(w, x)) >= (1 - q) * 0.9, (q, x)


def test_chernoff_is_exact_in_exponent_for_equal_weights():
    """Equal weights on fair bits: Chernoff's exponent is the binomial's large-deviation
    rate, so the bound is within a polynomial factor of the exact tail."""
    impl = get_scheme("tournament")(layers=1)
    n, k = 400, 260  # 260 ones of 400 bits
    exact = st.binom.logsf(k - 1, n, 0.5)
    bound = chernoff_log_sf(np.ones(n), k - n / 2, impl.centred_cgf)
    assert exact <= bound <= exact + math.log(10 * math.sqrt(n))


def _windows(wm, ids):
    """The keyed window seeds of a token stream (window before t, t >= h) and the tokens
    after them: the key enters the test only through these seeds."""
    h = wm.context_width
    return wm.sequence_seeds(ids), np.asarray(ids[h:])


@pytest.mark.parametrize("scheme", ["tournament", "greenlist", "gumbel"])
def test_calibrated_under_random_keys(make_wm, scheme):
    """One key-independent token stream with key-independent weights, 600 fresh keys:
    FPR <= alpha (+ binomial slack) at 0.01, 0.05 and 0.1; the bound is conservative,
    never liberal."""
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 200, 402).tolist()
    weights = rng.dirichlet(np.ones(400)) * rng.choice([-1.0, 1.0], 400)
    ps = np.array(
        [weighted_test(make_wm(scheme), *_windows(make_wm(scheme), ids), weights).pvalue
         for _ in range(600)]
    )  # fmt: skip
    assert ps.min() > 0
    for a in (0.01, 0.05, 0.1):
        assert np.mean(ps <= a) <= a + binomial_slack(len(ps), a), (a, np.mean(ps <= a))
    assert np.mean(ps <= 0.5) > 0.05  # not degenerate at 1


def test_power_when_weights_follow_the_key(make_wm):
    """Weights tilted towards the key's high-scoring tokens (what a student that learned
    the mark shows): detected under that key, not under another."""
    wm = make_wm("tournament")
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 200, 2002).tolist()
    seeds, tokens = _windows(wm, ids)
    x = wm.tuple_scores(seeds, tokens) - 15.0
    weights = 0.1 + 0.02 * x + rng.normal(0, 0.05, 2000)
    t = weighted_test(wm, seeds, tokens, weights)
    assert t.pvalue < 1e-10 and t.z > 6 and t.verdict == "marked"
    other = make_wm("tournament")
    assert weighted_test(other, *_windows(other, ids), weights).pvalue > 1e-3


def test_repeated_tuples_add_their_weights(make_wm):
    wm = make_wm("tournament")
    s = np.array([5, 5, 6, 7, 7], dtype=np.uint64)
    v = np.array([1, 1, 1, 2, 3])
    w = np.array([0.25, 0.5, 0.0, 1.0, -1.0])
    us, uv, uw = aggregate(s, v, w)
    got = sorted(zip(us.tolist(), uv.tolist(), uw.tolist(), strict=True))
    assert got == [(5, 1, 0.75), (7, 2, 1.0), (7, 3, -1.0)]
    one = weighted_test(wm, s, v, w, min_scored=1)
    assert one.n_scored == 3
    want = 0.75 * (wm.tuple_scores(s[:1], v[:1])[0] - 15) + (
        wm.tuple_scores(s[3:], v[3:]) - 15
    ) @ np.array([1.0, -1.0])
    assert one.statistic == pytest.approx(want)


def test_too_little_evidence_and_bad_input(make_wm):
    wm = make_wm("tournament")
    t = weighted_test(wm, np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0))
    assert (t.n_scored, t.pvalue, t.verdict) == (0, None, "not enough evidence")
    with pytest.raises(InputError, match="alpha"):
        weighted_test(wm, np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0), alpha=2)


def test_a_scheme_without_a_null_law_is_refused(make_wm, monkeypatch):
    wm = make_wm("tournament")
    from distilltrace.marks.schemes.base import WatermarkScheme

    monkeypatch.setattr(type(wm.impl), "tuple_mean", WatermarkScheme.tuple_mean)
    with pytest.raises(CapabilityError, match="no null law"):
        weighted_test(wm, np.ones(3, np.uint64), np.arange(3), np.ones(3))
