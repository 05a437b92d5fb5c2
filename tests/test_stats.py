"""Shared statistics: Holm, p-value combination and the calibration checks themselves."""

import numpy as np
import pytest

from distilltrace.stats import binomial_slack, calibration, combine_pvalues, holm


def test_holm_matches_hand_computed_step_down():
    p = [0.01, 0.04, 0.03, 0.005]
    res = holm(p, alpha=0.05)
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> monotone 0.06
    assert res.adjusted == pytest.approx((0.03, 0.06, 0.06, 0.02))
    assert res.reject == (True, False, False, True)


def test_holm_agrees_with_statsmodels():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(3)
    for _ in range(20):
        p = rng.uniform(size=7) ** 3
        reject, adj, _, _ = multipletests(p, alpha=0.05, method="holm")
        res = holm(p, 0.05)
        assert np.allclose(res.adjusted, adj)
        assert res.reject == tuple(bool(x) for x in reject)


def test_holm_controls_familywise_error_under_global_null():
    rng = np.random.default_rng(0)
    fwer = np.mean([any(holm(rng.uniform(size=5), 0.05).reject) for _ in range(4000)])
    assert fwer <= 0.05 + binomial_slack(4000, 0.05)


def test_holm_empty_family():
    assert holm([]).reject == ()


def test_combined_pvalues_are_calibrated_under_the_null():
    rng = np.random.default_rng(1)
    for method in ("fisher", "stouffer", "bonferroni"):
        ps = [combine_pvalues(rng.uniform(size=3), method) for _ in range(3000)]
        cal = calibration(ps)
        slack = binomial_slack(3000, 0.05)
        assert all(rate <= a + slack for a, rate in cal.fpr.items()), method
        if method != "bonferroni":  # bonferroni is conservative, not uniform
            assert cal.ks_pvalue > 0.001, method


def test_calibration_detects_anticonservative_pvalues():
    rng = np.random.default_rng(2)
    good = calibration(rng.uniform(size=2000))
    bad = calibration(rng.uniform(size=2000) ** 2)  # too many small p-values
    assert good.ok(slack=binomial_slack(2000, 0.05))
    assert not bad.ok()
    assert bad.fpr[0.05] > 0.15
