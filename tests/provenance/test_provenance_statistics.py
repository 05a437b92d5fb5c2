"""Calibration, power and validity of the provenance statistics, on simulated data (no models)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from distilltrace.provenance.agreement import greedy_agreement_test
from distilltrace.provenance.lexical import lexical_test
from distilltrace.provenance.likelihood import likelihood_test, reverse_likelihood_test
from distilltrace.provenance.paired import intersection_union, rademacher_tail, signflip_test
from distilltrace.provenance.sequential import BettingEProcess, anytime_pvalues
from distilltrace.provenance.simulate import simulated_scores as _sim_scores
from distilltrace.provenance.textmatch import prefix_agreement
from distilltrace.stats import binomial_slack, calibration, combine_pvalues, holm


def _fpr_ok(pvals, alphas=(0.01, 0.05)):
    cal = calibration(pvals, alphas=alphas)
    for a, rate in cal.fpr.items():
        assert rate <= a + binomial_slack(cal.n, a), (a, rate, cal)
    return cal


def _superuniform(pvals, level=0.01):
    """Valid p-values may be conservative: test only 'stochastically smaller than uniform'."""
    assert st.kstest(pvals, "uniform", alternative="greater").pvalue >= level


# ------------------------------------------------------------- sequential e-process


def test_eprocess_type_one_error_under_optional_stopping():
    """Peek after every observation, stop at the first p <= alpha: the FPR stays <= alpha."""
    rng = np.random.default_rng(0)
    reps, horizon = 1500, 300
    hits = {0.05: 0, 0.01: 0}
    dists = [
        lambda n: rng.choice([-1.0, 0.0, 0.0, 1.0], size=n),  # agreement differences
        lambda n: np.clip(rng.normal(0.0, 0.5, n), -1, 1),
        lambda n: rng.uniform(-1, 1, n),
    ]
    for r in range(reps):
        d = dists[r % 3](horizon)
        pmin = anytime_pvalues(d).min()  # stopping at the first crossing == min over time
        for a in hits:
            hits[a] += pmin <= a
    for a, h in hits.items():
        assert h / reps <= a + binomial_slack(reps, a), (a, h / reps)


def test_naive_peeking_would_fail_where_eprocess_holds():
    """Contrast: a t-test re-run after every observation rejects far more often than alpha."""
    rng = np.random.default_rng(1)
    reps, horizon, fp = 300, 200, 0
    for _ in range(reps):
        d = rng.choice([-1.0, 0.0, 1.0], size=horizon)
        c = np.cumsum(d)
        n = np.arange(1, horizon + 1)
        sd = np.array([d[:k].std(ddof=1) if k > 1 else 1.0 for k in n])
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(sd > 0, (c / n) / (sd / np.sqrt(n)), 0)
        p = st.t.sf(t[9:], df=n[9:] - 1)
        fp += p.min() <= 0.05
    assert fp / reps > 0.1  # the naive sequential t-test is invalid


def test_eprocess_power_reaches_small_p():
    rng = np.random.default_rng(2)
    d = np.clip(rng.normal(0.25, 0.4, 400), -1, 1)
    p = anytime_pvalues(d)
    assert p[-1] <= 1e-6
    assert np.all(np.diff(p) <= 1e-15)  # running p never increases


def test_eprocess_rejects_out_of_range():
    with pytest.raises(ValueError):
        BettingEProcess().update(1.5)


# ------------------------------------------------------------- fixed-n paired tests


@pytest.mark.parametrize("kind", ["normal", "skewed", "discrete"])
def test_signflip_calibrated_under_mean_zero(kind):
    rng = np.random.default_rng(3)
    gen = {
        "normal": lambda: rng.normal(0, 1, 80),
        "skewed": lambda: rng.exponential(1, 80) - 1,
        "discrete": lambda: rng.choice([-1, 0, 0, 1], 80).astype(float),
    }[kind]
    p = [signflip_test(gen(), n_resamples=499, seed=i).pvalue for i in range(300)]
    cal = _fpr_ok(p)
    if kind == "normal":
        assert cal.ks_pvalue >= 0.001  # exact under symmetry: uniform
    _superuniform(p)


def test_signflip_power_and_no_floor():
    rng = np.random.default_rng(4)
    x = rng.normal(0.6, 1, 100)
    r = signflip_test(x, n_resamples=999)
    bound = rademacher_tail(float(x.sum()), float(np.dot(x, x)))
    assert bound < 1 / 1000 and r.pvalue == pytest.approx(bound)  # not the 1/(B+1) floor
    assert not r.at_floor and r.per_control()["monte_carlo_floor"] is False
    weak = rng.normal(0.25, 1, 40)  # no draw beyond it, but a bound above the floor
    w = signflip_test(weak, n_resamples=99, seed=1)
    assert w.pvalue <= 1 / 100
    assert w.at_floor == (w.pvalue == 1 / 100) and w.per_control()["pvalue"] == w.pvalue
    # 27 of 40 at +1: no draw of 19 reaches it, and Hoeffding's bound (0.087) is above 1/20
    floor = signflip_test([1.0] * 27 + [-1.0] * 13, n_resamples=19, seed=2)
    assert floor.pvalue == 1 / 20 and floor.at_floor
    assert not signflip_test(rng.normal(0, 1, 40), n_resamples=99).at_floor
    assert signflip_test([]).pvalue == 1.0
    assert signflip_test(np.zeros(20)).pvalue == 1.0


def test_pvalues_are_floored_where_their_tails_underflow():
    """A p of 0.0 would read as impossible under the null; where the exact tail or its
    bound underflows float64, every provenance test reports PVALUE_FLOOR instead."""
    from distilltrace.provenance.firstwords import mcnemar_exact
    from distilltrace.stats import PVALUE_FLOOR

    x = np.full(2_000, 1.0) + np.linspace(0, 0.01, 2_000)  # bound exp(-1000): 0.0 in float64
    assert rademacher_tail(float(x.sum()), float(np.dot(x, x))) == 0.0
    r = signflip_test(x, n_resamples=99)
    assert r.pvalue == PVALUE_FLOOR and r.per_control()["pvalue"] == PVALUE_FLOOR
    assert mcnemar_exact([True] * 1_200, [False] * 1_200).pvalue == PVALUE_FLOOR
    e = BettingEProcess()
    e.extend([1.0] * 2_000)  # wealth beyond exp(745)
    assert e.max_log_wealth > 745 and e.pvalue == PVALUE_FLOOR


def test_rademacher_bound_is_above_the_exact_tail():
    """Hoeffding's bound is at least the exact sign-flip tail (all 2^12 sign vectors)."""
    import itertools

    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=12)))
    rng = np.random.default_rng(8)
    for _ in range(200):
        x = rng.normal(rng.uniform(0, 1.5), 1, 12)
        if x.sum() <= 0:
            continue
        exact = float(np.mean(signs @ x >= x.sum() - 1e-12))
        assert rademacher_tail(float(x.sum()), float(np.dot(x, x))) >= exact


@pytest.mark.parametrize("kind", ["normal", "skewed"])
def test_signflip_with_few_draws_stays_valid_below_the_floor(kind):
    """With B = 19 draws, 1 in 20 null samples has no draw beyond it and gets the bound:
    the rate of p <= alpha stays <= alpha at alphas below 1 / (B + 1)."""
    rng = np.random.default_rng(9)
    gen = {"normal": lambda: rng.normal(0, 1, 30), "skewed": lambda: rng.exponential(1, 30) - 1}
    p = np.array([signflip_test(gen[kind](), n_resamples=19, seed=i).pvalue for i in range(4000)])
    for alpha in (0.005, 0.01, 0.02, 0.05):
        # binomial slack: 3 standard errors above alpha
        assert np.mean(p <= alpha) <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / p.size)


def test_signflip_sequential_stops_early_and_reaches_small_p():
    rng = np.random.default_rng(5)
    null = signflip_test(rng.normal(0, 1, 100))
    assert null.n_resamples < 2_000  # Besag-Clifford: stops after h exceedances
    assert null.pvalue > 0.001
    strong = signflip_test(rng.normal(0.8, 1, 100))
    assert strong.pvalue <= 1e-9  # no draw reaches it: Hoeffding's bound, no 1/200,000 floor
    # the ranking by the mean is the ranking by the t statistic (sum of squares is fixed)
    x = rng.normal(0.1, 1, 30)
    flips = rng.choice([-1.0, 1.0], size=(200, 30)) * x
    t = [float(np.mean(f) / (np.std(f, ddof=1) / np.sqrt(30))) for f in flips]
    assert np.all(np.diff(np.asarray(t)[np.argsort(flips.sum(axis=1))]) >= -1e-9)


def test_intersection_union_is_the_max():
    assert intersection_union({"a": 0.001, "b": 0.2}) == 0.2
    assert intersection_union({}) == 1.0


# ------------------------------------------------------------- greedy agreement: simulated null


def _simulate_models(rng, n_prompts, n_models, n_answers=4, k=6, shared=None):
    """Each 'model' answers each prompt with one of n_answers word sequences, from its own
    random preferences; independent models are exchangeable, so a(S,R) and a(S,C) have equal
    means (the boundary of the null, where a test is most likely to be wrong)."""
    answers = [
        [[f"w{p}_{a}_{j}" if j else f"start{a % 2}" for j in range(k)] for a in range(n_answers)]
        for p in range(n_prompts)
    ]
    pick = rng.integers(0, n_answers, size=(n_models, n_prompts))
    if (
        shared is not None
    ):  # model shared[0] copies model shared[1] on a fraction shared[2] of prompts
        dst, src, frac = shared
        copy = rng.random(n_prompts) < frac
        pick[dst, copy] = pick[src, copy]
    return [[answers[p][pick[m, p]] for p in range(n_prompts)] for m in range(n_models)]


def _agreements(models, k=6):
    s, r, *cs = models
    a_r = [prefix_agreement(x, y, k) for x, y in zip(s, r, strict=True)]
    a_c = {
        f"c{i}": [prefix_agreement(x, y, k) for x, y in zip(s, c, strict=True)]
        for i, c in enumerate(cs)
    }
    return a_r, a_c


def test_greedy_agreement_calibrated_on_simulated_independent_models():
    rng = np.random.default_rng(5)
    p = []
    for _ in range(400):
        a_r, a_c = _agreements(_simulate_models(rng, 150, 4))
        p.append(greedy_agreement_test(a_r, a_c).pvalue)
    _fpr_ok(p, alphas=(0.01, 0.05, 0.1))
    _superuniform(p)


def test_greedy_agreement_valid_when_only_one_control_is_close():
    """H0 holds through one control (as close to S as R is); the others are far. The IUT
    p-value (max over controls) must still be valid."""
    rng = np.random.default_rng(6)
    p = []
    for _ in range(300):
        # models: S, R, C0, C1 ; S copies R on 40% and C0 on 40% of prompts (disjointly random)
        ms = _simulate_models(rng, 150, 4, n_answers=6)
        s, r, c0, c1 = ms
        u = rng.random(150)
        s = [r[i] if u[i] < 0.4 else (c0[i] if u[i] < 0.8 else s[i]) for i in range(150)]
        a_r, a_c = _agreements([s, r, c0, c1])
        p.append(greedy_agreement_test(a_r, a_c).pvalue)
    _fpr_ok(p)


def test_greedy_agreement_power_on_simulated_student():
    rng = np.random.default_rng(7)
    ms = _simulate_models(rng, 300, 4, shared=(0, 1, 0.5))
    a_r, a_c = _agreements(ms)
    res = greedy_agreement_test(a_r, a_c)
    assert res.pvalue <= 1e-4
    assert res.effect > 0.2


# ------------------------------------------------------------- likelihood: simulated scores


def test_likelihood_forward_calibrated_with_model_level_differences():
    """Forward null with independent models that the reference favours by different
    amounts (a model-level random effect, as between seeds): the leave-one-out margin
    keeps the false-positive rate at or below alpha."""
    rng = np.random.default_rng(8)
    ctl = ["c1", "c2", "c3"]
    p_f = []
    for i in range(250):
        sc = _sim_scores(rng, 60, ctl, affinity_sd=0.15)
        p_f.append(likelihood_test(sc, "R", ctl, suspect="S", seed=i, n_resamples=199).pvalue)
    _fpr_ok(p_f)
    res = likelihood_test(_sim_scores(rng, 60, ctl, derived=0.8), "R", ctl, suspect="S")
    assert res.pvalue <= 1e-3
    assert res.details["margin"] >= 0


def test_likelihood_forward_margin_is_zero_with_two_controls():
    rng = np.random.default_rng(9)
    res = likelihood_test(_sim_scores(rng, 40, ["c1", "c2"]), "R", ["c1", "c2"], suspect="S")
    assert res.details["margin"] == 0.0


@pytest.mark.parametrize("n_controls", [2, 3, 4])
def test_likelihood_forward_reads_only_the_scores_it_queries(n_controls):
    """The registered test queries only likelihood_pairs (no control scores its own
    outputs): the statistic computed from those scores alone is the one from every pair."""
    from distilltrace.provenance.likelihood import likelihood_pairs

    rng = np.random.default_rng(n_controls)
    ctl = [f"c{i}" for i in range(n_controls)]
    full = _sim_scores(rng, 40, ctl, derived=0.3)
    pairs = likelihood_pairs("R", ctl, "S")
    assert len(pairs) == len(set(pairs)) == (1 + n_controls) * (1 + n_controls) - n_controls
    assert not any(a == g for a, g in pairs)
    only = {k: full[k] for k in pairs}
    a = likelihood_test(full, "R", ctl, suspect="S", seed=3).to_dict()
    b = likelihood_test(only, "R", ctl, suspect="S", seed=3).to_dict()
    assert a == b


def test_likelihood_reverse_calibrated_at_its_null_boundary_and_powered():
    """Reverse null: the suspect models R's outputs no better than each control, up to the
    margin. At the boundary (skills differing by less than the margin) FPR <= alpha."""
    rng = np.random.default_rng(10)
    ctl = ["c1", "c2", "c3"]
    m = 0.05
    p_r = []
    for i in range(250):
        skill = {k: rng.uniform(-m / 2, m / 2) for k in ["S", *ctl]}
        skill["R"] = 0.0
        sc = _sim_scores(rng, 60, ctl, skill=skill)
        p_r.append(
            reverse_likelihood_test(
                sc, "R", ctl, suspect="S", seed=i, n_resamples=199, margin=m
            ).pvalue
        )
    _fpr_ok(p_r)
    skill = {k: 0.0 for k in ["R", "S", *ctl]}
    res = reverse_likelihood_test(
        _sim_scores(rng, 60, ctl, derived=0.4, skill=skill), "R", ctl, suspect="S", margin=m
    )
    assert res.pvalue <= 1e-3
    assert res.details["margin"] == m
    with pytest.raises(ValueError):
        reverse_likelihood_test(_sim_scores(rng, 10, ctl), "R", ctl, suspect="S", margin=-1)


def test_likelihood_reverse_discounts_a_more_capable_suspect():
    """A suspect that models every text better than the controls (skill +0.3) is not
    accused: its advantage on the other controls' outputs raises the margin. A student of
    R with the same skill edge is still found."""
    rng = np.random.default_rng(11)
    ctl = ["c1", "c2", "c3"]
    skill = {"R": 0.0, "S": 0.3, "c1": 0.0, "c2": 0.0, "c3": 0.0}
    p = [
        reverse_likelihood_test(
            _sim_scores(rng, 150, ctl, skill=skill), "R", ctl, suspect="S", seed=i, n_resamples=199
        ).pvalue
        for i in range(100)
    ]
    _fpr_ok(p)
    res = reverse_likelihood_test(
        _sim_scores(rng, 150, ctl, skill=skill, derived=0.6), "R", ctl, suspect="S"
    )
    assert res.pvalue <= 1e-3
    gaps = res.details["capability_gap_per_control"]
    assert all(0.15 < g < 0.45 for g in gaps.values()), gaps
    margins = res.details["margin_per_control"]
    assert all(margins[c] >= g for c, g in gaps.items())


# ------------------------------------------------------------- lexical fingerprint: simulated text


def _unigram_model(rng, vocab, conc=0.3):
    return rng.dirichlet(np.full(len(vocab), conc))


def _texts(rng, vocab, probs, n, length=12):
    return [" ".join(rng.choice(vocab, size=length, p=probs)) for _ in range(n)]


def test_lexical_calibrated_at_the_null_boundary_and_powered():
    """Boundary of the null: the suspect and the controls write from one distribution, so
    E[f(y_S)] = E[f(y_C)] for any fingerprint f learned without them."""
    rng = np.random.default_rng(9)
    vocab = np.array([f"word{i}" for i in range(60)])
    ctl = ["c1", "c2", "c3"]
    p = []
    for i in range(150):
        shared = _unigram_model(rng, vocab)
        dist = {m: shared for m in ["S", *ctl]}
        dist["R"] = _unigram_model(rng, vocab)
        fp = {m: _texts(rng, vocab, dist[m], 30) for m in ["R", *ctl]}
        test = {m: _texts(rng, vocab, dist[m], 30) for m in ["S", *ctl]}
        p.append(lexical_test(fp, test, "R", ctl, suspect="S", seed=i, n_resamples=199).pvalue)
    _fpr_ok(p)
    dist = {m: _unigram_model(rng, vocab) for m in ["R", *ctl]}
    dist["S"] = 0.8 * dist["R"] + 0.2 * _unigram_model(rng, vocab)
    fp = {m: _texts(rng, vocab, dist[m], 60) for m in ["R", *ctl]}
    test = {m: _texts(rng, vocab, dist[m], 60) for m in ["S", *ctl]}
    res = lexical_test(fp, test, "R", ctl, suspect="S")
    assert res.pvalue <= 1e-3
    assert res.details["shared_overrepresented"]


def test_lexical_margin_keeps_heterogeneous_independent_models_calibrated():
    """Every model independent with its own word distribution: a suspect that happens to
    share more of R's words than some controls is not accused (the controls' own spread
    sets the margin); a student that mixes in R's distribution is still found."""
    rng = np.random.default_rng(12)
    vocab = np.array([f"word{i}" for i in range(60)])
    ctl = ["c1", "c2", "c3", "c4"]
    p = []
    for i in range(120):
        dist = {m: _unigram_model(rng, vocab, conc=1.0) for m in ["R", "S", *ctl]}
        fp = {m: _texts(rng, vocab, dist[m], 30) for m in ["R", *ctl]}
        test = {m: _texts(rng, vocab, dist[m], 30) for m in ["S", *ctl]}
        p.append(lexical_test(fp, test, "R", ctl, suspect="S", seed=i, n_resamples=199).pvalue)
    _fpr_ok(p)
    dist = {m: _unigram_model(rng, vocab, conc=1.0) for m in ["R", *ctl]}
    dist["S"] = 0.7 * dist["R"] + 0.3 * _unigram_model(rng, vocab, conc=1.0)
    fp = {m: _texts(rng, vocab, dist[m], 60) for m in ["R", *ctl]}
    test = {m: _texts(rng, vocab, dist[m], 60) for m in ["S", *ctl]}
    res = lexical_test(fp, test, "R", ctl, suspect="S")
    assert res.pvalue <= 1e-3 and res.details["margin"] > 0


# ------------------------------------------------------------- combination and Holm


def test_bonferroni_combination_valid_under_dependence():
    """Three tests computed on the same data (strongly dependent): min-p x 3 stays valid."""
    rng = np.random.default_rng(10)
    comb = []
    for i in range(300):
        d = rng.choice([-1.0, 0.0, 1.0], 60)
        p1 = signflip_test(d, n_resamples=199, seed=i).pvalue
        p2 = signflip_test(d + rng.normal(0, 0.1, 60), n_resamples=199, seed=i + 1).pvalue
        p3 = float(anytime_pvalues(d)[-1])
        comb.append(combine_pvalues([p1, p2, p3], method="bonferroni"))
    _fpr_ok(comb)


def _holm_bruteforce(p):
    m = len(p)
    order = np.argsort(p)
    adj = np.empty(m)
    run = 0.0
    for rank, i in enumerate(order):
        run = max(run, min(1.0, (m - rank) * p[i]))
        adj[i] = run
    return adj


def test_holm_matches_definition_and_controls_fwer():
    rng = np.random.default_rng(11)
    for _ in range(50):
        p = rng.uniform(0, 0.2, size=rng.integers(1, 6))
        h = holm(p, alpha=0.05)
        np.testing.assert_allclose(h.adjusted, _holm_bruteforce(p), rtol=1e-12)
        assert list(h.reject) == [a <= 0.05 for a in h.adjusted]
    # FWER: 3 true nulls (uniform) + 1 false: any null rejected at most alpha of the time.
    fw = 0
    for _ in range(2000):
        p = np.r_[rng.uniform(size=3), 1e-6]
        fw += any(holm(p, alpha=0.05).reject[:3])
    assert fw / 2000 <= 0.05 + binomial_slack(2000, 0.05)


def test_bench_scoring():
    from distilltrace.bench.provenance import PairOutcome, score_pairs

    def pair(s, t, derived, p, rejected, q=None):
        return PairOutcome(s, t, derived, p, p, rejected, {}, 100, q, q, ["c1", "c2"])

    pairs = [
        pair("s1", "A", True, 1e-6, True, 40),
        pair("s1", "B", False, 0.5, False),
        pair("s2", "A", True, 0.2, False),
        pair("s2", "B", False, 0.004, True),
        pair("h", "A", False, 1.0, False),
        pair("h", "B", False, 0.9, False),
    ]
    m = score_pairs(pairs, 0.01)
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 1)
    assert m["precision"] == 0.5 and m["recall"] == 0.5
    assert m["null_fpr"]["0.01"] == 0.25
    assert m["queries_to_p01"]["reached"] == 1 and m["queries_to_p01"]["of"] == 2
    assert m["students_attributed_1e4"] == 1 and m["students_attributed_1e4_names"] == ["s1"]


# ------------------------------------------------------------- bench: recipe-matched controls


def test_bench_controls_match_the_suspects_recipe():
    from distilltrace.bench.provenance import comparable
    from distilltrace.distill.zoo import ZooMember

    def m(arch, steps=None, div=None, tokens=None, method="seq-kd"):
        train = {k: v for k, v in (("steps", steps), ("divergence", div)) if v is not None}
        data = {"tokens": tokens} if tokens else {}
        return ZooMember("x", "student", method, [], arch, 0, data, train)

    s = m("small-4l", steps=200)
    assert comparable(s, m("small-4l", steps=152)) is None
    assert comparable(s, m("small-4l", steps=200, method="mix")) is None
    assert "human text" in comparable(s, m("small-4l", steps=152, method="human-text"))
    assert "architecture" in comparable(s, m("base-8l", steps=200))
    assert "training amount" in comparable(s, m("small-4l", steps=50))
    assert "loss" in comparable(m("small-4l", 200, "fkl"), m("small-4l", 200))
    assert comparable(m("small-4l", 200, "fkl"), m("small-4l", 200, "fkl")) is None
    assert comparable(m("small-4l", 200, "fkl"), m("small-4l", 200), same_loss=False) is None
    # amounts unknown on one side: not held against the control
    assert comparable(m("tiny-2l"), m("tiny-2l", steps=10)) is None
    assert comparable(m("tiny-2l", tokens=1000), m("tiny-2l", tokens=4000)) is not None


def test_recipe_controls_fall_back_to_other_losses_only_when_needed():
    from distilltrace.bench.provenance import recipe_controls
    from distilltrace.distill.zoo import ZooMember

    def m(name, div=None, method="seq-kd"):
        train = {"steps": 200, **({"divergence": div} if div else {})}
        return ZooMember(name, "student", method, [], "small-4l", 0, {}, train)

    s = m("fkl-s0", "fkl")
    seqkd = [m("a"), m("b")]
    picked, how = recipe_controls(s, [*seqkd, m("h", method="human-text")])
    assert [c.name for c in picked] == ["a", "b"] and "except" in how
    picked, how = recipe_controls(s, [*seqkd, m("fkl-s1", "fkl"), m("fkl-s2", "fkl")])
    assert [c.name for c in picked] == ["fkl-s1", "fkl-s2"] and how == "recipe"
    picked, how = recipe_controls(s, [m("a"), m("h", method="human-text")])
    assert picked == [] and how == "recipe"  # too few either way: the pair is skipped


def test_full_zoo_plan_gives_comparable_controls():
    """Every pair of the full tier has >= 2 controls of the suspect's recipe (for the
    logit-KD students on their own teacher: of its recipe except the loss, since no other
    teacher shares the students' tokenizer), except the big seq-KD students on the other
    teacher (2 seeds per teacher, for build time)."""
    from distilltrace.bench.provenance import recipe_controls
    from distilltrace.distill.zoo import ZooMember, zoo_plan

    plan = zoo_plan("full")
    amount = {"seq-kd": 200, "mix": 200, "logit-kd": 200, "human-text": 150}

    def member(sp):
        steps = int(amount[sp.method] * sp.data_fraction)
        div = {"divergence": sp.divergence} if sp.method == "logit-kd" else {}
        return ZooMember(
            sp.name,
            "student",
            sp.method,
            list(sp.teachers),
            sp.arch,
            sp.seed,
            {},
            {"steps": steps, **div},
        )

    ms = [member(sp) for sp in plan.students]
    lacking, loose = [], []
    for s in ms:
        for t in [t.name for t in plan.teachers]:
            cands = [c for c in ms if c is not s and t not in c.teachers]
            picked, how = recipe_controls(s, cands)
            if len(picked) < 2:
                lacking.append((s.name, t in s.teachers))
            elif how != "recipe":
                loose.append(s.name)
    assert lacking and all("seqkd-base-8l" in n and not derived for n, derived in lacking)
    assert loose and all("logitkd" in n for n in loose)
