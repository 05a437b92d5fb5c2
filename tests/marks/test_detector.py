"""Detectors on synthetic token streams: calibration, hand-computed values, scoring rules."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from distilltrace.marks.detect import (
    MARKED,
    NOT_ENOUGH,
    TupleScorer,
    mark_test,
    normalize_text,
    windows_of,
)
from distilltrace.marks.hashing import pair_uniforms, row_bits
from distilltrace.marks.stats import PVALUE_FLOOR, binom_log_sf, floor_p, gamma_log_sf
from distilltrace.stats import binomial_slack, calibration

V = 200  # synthetic vocabulary


def _ok(ps, alphas=(0.01, 0.05, 0.1)):
    """Uniform (KS) and FPR <= alpha + binomial slack."""
    cal = calibration(ps, alphas)
    slack = max(binomial_slack(len(ps), a) for a in alphas)
    return cal, cal.ok(ks_level=0.001, slack=slack)


def _valid(tests, rng, alphas=(0.01, 0.05, 0.1)):
    """For the discrete green-list test: reported p-values are super-uniform (FPR <= alpha,
    one-sided KS), and randomised p-values P(K > k) + U P(K = k) are exactly uniform."""
    ps = np.array([t.pvalue for t in tests])
    slack = max(binomial_slack(len(ps), a) for a in alphas)
    fpr_ok = all(np.mean(ps <= a) <= a + slack for a in alphas)
    one_sided = st.kstest(ps, "uniform", alternative="greater").pvalue
    g = tests[0].expected / tests[0].n_scored
    rand = [
        st.binom.sf(t.statistic, t.n_scored, g)
        + rng.random() * st.binom.pmf(t.statistic, t.n_scored, g)
        for t in tests
    ]
    cal = calibration(rand, alphas)
    return (cal, one_sided), fpr_ok and one_sided > 0.001 and cal.ok(0.001, slack)


def _check(wm, tests, rng):
    if wm.scheme == "greenlist":
        return _valid(tests, rng)
    return _ok([t.pvalue for t in tests])


def marked_stream(wm, n, rng, strength=1.0, start=None, vocab=V):
    """A synthetic marked token stream: each token green (greenlist) or the Gumbel-max pick
    over a random distribution, with probability `strength`; otherwise uniform."""
    h = wm.context_width
    ids = list(start) if start is not None else rng.integers(0, V, h).tolist()
    for _ in range(n):
        seed = wm.window_seed(ids[-h:])
        if rng.random() < strength:
            if wm.scheme == "greenlist":
                green = np.flatnonzero(wm.green_mask(seed, vocab))
                ids.append(int(rng.choice(green)) if green.size else int(rng.integers(0, vocab)))
            else:
                p = rng.dirichlet(np.full(vocab, 0.3))
                u = wm.row_uniforms(seed, vocab)
                ids.append(int(np.argmax(np.log(u) / p)))
        else:
            ids.append(int(rng.integers(0, vocab)))
    return ids


@pytest.mark.parametrize("scheme", ["greenlist", "gumbel"])
def test_random_keys_on_unmarked_streams_are_calibrated(make_wm, scheme):
    rng = np.random.default_rng(1)
    tests = []
    for _ in range(400):
        wm = make_wm(scheme)  # a fresh random key each time
        sc = TupleScorer(wm)
        sc.add_sequence(rng.integers(0, V, 150).tolist())
        tests.append(sc.test())
    cal, ok = _check(wm, tests, rng)
    assert ok, cal


@pytest.mark.parametrize("scheme", ["greenlist", "gumbel"])
def test_one_key_on_many_unmarked_texts_is_calibrated(make_wm, scheme):
    wm = make_wm(scheme, context_width=1, seeding="minhash")
    rng = np.random.default_rng(2)
    tests = []
    for _ in range(400):
        sc = TupleScorer(wm)
        sc.add_sequence(rng.integers(0, V, 120).tolist())
        tests.append(sc.test())
    cal, ok = _check(wm, tests, rng)
    assert ok, cal


@pytest.mark.parametrize("scheme", ["greenlist", "gumbel"])
def test_power_on_marked_streams(make_wm, scheme):
    rng = np.random.default_rng(3)
    wm = make_wm(scheme)
    for _ in range(5):
        sc = TupleScorer(wm)
        sc.add_sequence(marked_stream(wm, 200, rng, strength=0.5))
        t = sc.test()
        assert t.pvalue < 1e-6 and t.verdict == MARKED
    other = make_wm(scheme)  # the wrong key sees nothing
    ps = []
    for _ in range(100):
        sc = TupleScorer(other)
        sc.add_sequence(marked_stream(wm, 150, rng, strength=1.0))
        ps.append(sc.test().pvalue)
    assert np.mean(np.array(ps) <= 0.01) <= 0.01 + binomial_slack(100, 0.01)


def test_hand_computed_greenlist_values(make_wm):
    wm = make_wm("greenlist", gamma=0.25)
    scores = [1.0] * 12 + [0.0] * 8  # 12 green of 20
    t = mark_test(wm, scores, min_scored=1)
    assert t.statistic == 12 and t.expected == 5.0
    assert t.z == pytest.approx((12 - 5) / math.sqrt(20 * 0.25 * 0.75))
    exact = sum(math.comb(20, j) * 0.25**j * 0.75 ** (20 - j) for j in range(12, 21))
    assert t.pvalue == pytest.approx(exact, rel=1e-10)
    assert t.log10_pvalue == pytest.approx(math.log10(exact), rel=1e-10)


def test_hand_computed_gumbel_values(make_wm):
    wm = make_wm("gumbel")
    scores = [3.0, 2.5, 1.5, 4.0, 1.0]  # S = 12, n = 5
    t = mark_test(wm, scores, min_scored=1)
    exact = math.exp(-12) * sum(12**k / math.factorial(k) for k in range(5))
    assert t.statistic == 12 and t.expected == 5
    assert t.z == pytest.approx((12 - 5) / math.sqrt(5))
    assert t.pvalue == pytest.approx(exact, rel=1e-10)


def test_exact_binomial_agrees_with_normal_approximation_in_the_bulk():
    n, g = 20000, 0.25
    for z in (1.0, 2.0, 3.0):
        k = int(math.ceil(n * g + z * math.sqrt(n * g * (1 - g))))
        exact = math.exp(binom_log_sf(k, n, g))
        zk = (k - 0.5 - n * g) / math.sqrt(n * g * (1 - g))  # continuity-corrected
        assert exact == pytest.approx(st.norm.sf(zk), rel=0.05)
    # ...and not in the far tail of a small sample, where only the exact tail is valid
    exact_small = math.exp(binom_log_sf(10, 10, g))
    assert exact_small == pytest.approx(g**10)
    assert st.norm.sf((10 - 2.5) / math.sqrt(10 * g * (1 - g))) < exact_small / 10


def test_far_tails_are_finite_and_floored():
    lp = binom_log_sf(60000, 100000, 0.25)
    assert math.isfinite(lp) and lp < -5000
    lg = gamma_log_sf(5000.0, 1000)
    assert math.isfinite(lg) and lg < -1000
    # the Poisson identity agrees with scipy where scipy is finite
    assert gamma_log_sf(30.0, 10) == pytest.approx(st.gamma.logsf(30.0, a=10), rel=1e-9)
    p, floored = floor_p(lp)
    assert p == PVALUE_FLOOR and floored
    assert floor_p(math.log(0.2)) == (pytest.approx(0.2), False)


def test_uniforms_are_keyed_and_consistent(make_wm):
    a, b = make_wm(), make_wm()
    w = [5, 7]
    assert a.window_seed(w) == a.window_seed(w) != b.window_seed(w)
    s = a.window_seed(w)
    row = a.row_uniforms(s, V)
    assert np.allclose(row[[3, 9]], pair_uniforms(np.array([s, s], dtype=np.uint64), [3, 9]))
    assert 0 < row.min() and row.max() < 1
    assert row_bits(s, V).dtype == np.uint64
    assert abs(a.green_mask(s, 100000).mean() - 0.25) < 0.01


def test_not_enough_evidence(make_wm):
    wm = make_wm()
    sc = TupleScorer(wm)
    sc.add_sequence([1, 2, 3, 4, 5, 6])
    t = sc.test(min_scored=16)
    assert t.verdict == NOT_ENOUGH and t.pvalue is None and t.n_scored == 4
    assert t.to_dict()["pvalue_text"] == "n/a"


def test_repeated_text_naive_scoring_is_invalid_dedup_is_valid(make_wm):
    """A short unmarked phrase repeated 15 times: counting every occurrence multiplies one
    coin flip, so naive p-values are far too small too often; de-duplicated ones are valid."""
    rng = np.random.default_rng(5)
    naive, dedup = [], []
    for _ in range(400):
        wm = make_wm("greenlist")
        ids = rng.integers(0, V, 12).tolist() * 15
        seeds = wm.sequence_seeds(ids)
        naive.append(mark_test(wm, wm.tuple_scores(seeds, np.array(ids[2:])), min_scored=1).pvalue)
        sc = TupleScorer(wm)
        sc.add_sequence(ids)
        dedup.append(sc.test(min_scored=1))
        assert sc.n_duplicate > 100
    assert np.mean(np.array(naive) <= 0.01) > 0.05  # naive: falsely significant
    cal, ok = _valid(dedup, rng)
    assert ok, cal


def test_prompt_copy_naive_is_significant_exclusion_is_not(make_wm):
    """A null 'suspect' that copies marked text from its prompt: excluding prompt windows
    removes the copied evidence."""
    rng = np.random.default_rng(6)
    wm = make_wm("greenlist")
    prompt = marked_stream(wm, 150, rng, strength=1.0)
    output = prompt[20:140] + rng.integers(0, V, 60).tolist()  # copy, then its own tokens
    naive = TupleScorer(wm)
    naive.add_sequence(output)
    assert naive.test().pvalue < 1e-10
    seeds = {int(s) for s in wm.sequence_seeds(prompt)}
    fixed = TupleScorer(wm, exclude_seeds=seeds)
    fixed.add_sequence(output)
    t = fixed.test(min_scored=1)
    assert t.n_excluded >= 115
    assert t.pvalue is not None and t.pvalue > 1e-3


def test_copying_model_in_marked_context_needs_repeated_window_rule(make_wm):
    """Open mode: a key-independent 'model' that predicts by copying what followed the same
    window earlier in its context looks radioactive unless repeated windows are skipped."""
    rng = np.random.default_rng(7)
    naive_ps, rule_ps = [], []
    for _ in range(100):
        wm = make_wm("greenlist", context_width=1)
        ctx = marked_stream(wm, 200, rng, strength=1.0, start=[0], vocab=30)  # windows repeat
        # induction predictor: last token that followed the current window, else random
        last: dict[int, int] = {}
        pred = [-1]
        for t in range(1, len(ctx)):
            pred.append(last.get(ctx[t - 1], int(rng.integers(0, V))))
            last[ctx[t - 1]] = ctx[t]
        a, b = TupleScorer(wm), TupleScorer(wm)
        a.add_sequence(ctx, start=1, tokens=pred)
        b.add_sequence(ctx, start=1, tokens=pred, context_is_marked=True)
        naive_ps.append(a.test(min_scored=1).pvalue)
        rule_ps.append(b.test(min_scored=1).pvalue)
    assert np.mean(np.array(naive_ps) <= 0.01) > 0.1
    assert np.mean(np.array(rule_ps) <= 0.01) <= 0.01 + binomial_slack(100, 0.01)


def test_windows_locate_a_marked_span(make_wm):
    rng = np.random.default_rng(8)
    wm = make_wm("greenlist")
    ids = rng.integers(0, V, 200).tolist()
    ids = marked_stream(wm, 200, rng, strength=1.0, start=ids)
    ids += rng.integers(0, V, 200).tolist()
    sc = TupleScorer(wm)
    scored = sc.add_sequence(ids)
    wins = windows_of(wm, scored, width=50)
    best = max(wins, key=lambda w: w.z)
    assert 200 <= best.start_token and best.end_token <= 410 and best.z > 5
    assert min(w.z for w in wins if w.end_token <= 200) < 3


def test_normalisation():
    assert normalize_text("  A\u00a0b \n c ", ["nfkc", "whitespace", "lower"]) == "a b c"
    with pytest.raises(Exception, match="unknown normalisation"):
        normalize_text("x", ["stem"])
