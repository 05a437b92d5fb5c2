"""Fuse signals into calibrated account risk and campaign scores.

Calibration is against the population itself, which is overwhelmingly benign:

1. Each signal statistic x_f is turned into an upper-tail probability u_f(a) against
   the bulk of the population: the empirical tail (1 + #{b : x_f(b) >= x_f(a)}) / (N + 1)
   up to the 95th percentile, and an exponential (peaks-over-threshold) tail
   beyond the 95th percentile, with its scale from the 80th and 95th percentiles, so that campaign accounts in
   the top 5% neither shape the fit nor hide each other through ties.
2. An account's behaviour score is b(a) = sum_f w_f * -log10 u_f(a); its calibrated
   tail probability u(a) is again the robust upper tail of b over all accounts. The
   scan flags a lone account on the Bonferroni union of u(a) and the extraction tail,
   requiring extraction evidence either way (checked on benign-only traffic by the
   calibration test).
3. A candidate campaign C (a linkage cluster of >= 2 accounts) is tested with the
   null "C's independent units are a random sample of the population": then capped
   -ln u are (at most) independent Exp(1) and T = sum over units ~ Gamma(k, 1);
   accounts of one declared customer form one unit (their mean). The campaign p-value
   is the Gamma upper tail, Bonferroni-adjusted over the clusters tested. Many small
   accounts that each look ordinary add up to a significant T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

#: Weight of a signal that names none (the registry, `features.SIGNALS`, gives each its own).
DEFAULT_WEIGHT = 0.5


#: Below this many accounts every calibrated tail is the empirical one (a rank).
MIN_CALIBRATED = 50


#: Tail scale used when fewer than 5 values fall in the fitting band (one unit of the
#: statistic; for -log10 p-value statistics this is 2.3x their null scale, conservative).
FALLBACK_SCALE = 1.0


def upper_tail(
    x: np.ndarray, *, body: float = 0.80, scale_at: float = 0.95, min_scale: float = 0.0
) -> np.ndarray:
    """Tail probability of each value against the bulk of x (robust to a contaminated top).

    Up to the ``scale_at`` quantile h: the empirical upper tail (1 + #{x_b >= x_a}) / (N + 1).
    Beyond h: a peaks-over-threshold exponential tail, P(X > x) = P(X > h) * exp(-(x - h) / beta),
    with beta from two quantiles of the bulk, beta = (h - x_[body]) / ln((1 - body) /
    (1 - scale_at)) (exact for an exponential tail), so up to 1 - scale_at = 5% of
    accounts (where campaigns sit) can lie in the top without shaping the fit, nor hide
    each other through ties. When the two quantiles coincide, beta = FALLBACK_SCALE. NaN
    counts as the least suspicious value. ``min_scale`` floors beta (for -log10 p-value
    statistics, whose null scale is 1/ln 10 = 0.43, a floor of 1 allows for overdispersion
    and keeps a zero-inflated bulk from implying an implausibly light tail).
    """
    x = np.nan_to_num(np.asarray(x, dtype=float), nan=-np.inf)
    n = len(x)
    if n == 0:
        return x
    srt = np.sort(x)
    ge = n - np.searchsorted(srt, x, side="left")
    emp = (1.0 + ge) / (n + 1.0)
    fin = srt[np.isfinite(srt)]
    if n < MIN_CALIBRATED or len(fin) == 0:
        return emp
    q = float(np.quantile(fin, body))
    hi = float(np.quantile(fin, scale_at))
    beta = (hi - q) / np.log((1 - body) / (1 - scale_at)) if hi > q else FALLBACK_SCALE
    beta = max(beta, min_scale)
    p_hi = (1.0 + (n - np.searchsorted(srt, hi, side="right"))) / (n + 1.0)
    tail = p_hi * np.exp(-np.maximum(x - hi, 0.0) / beta)  # used only where x > hi: no overflow
    return np.where(x > hi, np.minimum(tail, emp), emp).clip(1e-300, 1.0)


@dataclass
class AccountScores:
    """Per-account calibrated tails and the fused behaviour score."""

    tails: pd.DataFrame  # one column per signal: -log10 u_f
    behaviour: np.ndarray  # b(a)
    tail_p: np.ndarray  # u(a)


def pvalue_tail(x: np.ndarray, *, bulk: float = 0.8) -> np.ndarray:
    """Tail probability of a statistic that is already a -log10 p-value (valid under its
    own null), calibrated against the population without trusting its top.

    Up to the ``bulk`` quantile h the empirical tail is used. Beyond it, the null's own
    tail inflated by what the bulk shows: P(X >= x) = c 10^-x, with c the largest ratio
    of the empirical tail to 10^-t over the bulk's quantiles t (50th to 80th percentile),
    floored at 1. c = 1 when the bulk behaves as the null says (or better, as a discrete
    or conservative p-value does); c > 1 when benign accounts are overdispersed. Only
    the bulk shapes c, so up to 1 - bulk = 20% of accounts (a large campaign) can sit in
    the top without weakening each other (`upper_tail` tolerates 5%), and the result is
    never smaller than 10^-x, so it stays valid under the statistic's null.
    """
    x = np.nan_to_num(np.asarray(x, dtype=float), nan=-np.inf)
    n = len(x)
    if n == 0:
        return x
    srt = np.sort(x)
    emp = (1.0 + n - np.searchsorted(srt, x, side="left")) / (n + 1.0)
    fin = srt[np.isfinite(srt)]
    if n < MIN_CALIBRATED or len(fin) == 0:
        return emp
    c, h = _inflation(srt, fin, bulk)
    model = np.minimum(1.0, c * 10.0 ** (-np.clip(x, 0, None)))
    return np.where(x > h, np.minimum(model, emp), emp).clip(1e-300, 1.0)


def _inflation(srt: np.ndarray, fin: np.ndarray, bulk: float) -> tuple[float, float]:
    """`pvalue_tail`'s inflation c over the null tail 10^-t, and the bulk quantile h, from
    the sorted values (``srt``) and their finite ones (``fin``)."""
    n = len(srt)
    grid = np.quantile(fin, np.linspace(0.5, bulk, 4))
    surv = (1.0 + n - np.searchsorted(srt, grid, side="left")) / (n + 1.0)
    c = float(max(1.0, np.max(surv / 10.0 ** (-np.clip(grid, 0, None)))))
    return c, float(grid[-1])


#: A reference population is flagged as not mostly benign when its harvest evidence is
#: discounted by at least this many orders of magnitude (`reference_check`).
REFERENCE_DISCOUNT_WARN = 1.0


def reference_check(x: np.ndarray, *, bulk: float = 0.8, level: float = 2.0) -> dict:
    """How far the population a -log10 p-value statistic is calibrated against
    (`pvalue_tail`) departs from the statistic's own null, which the calibration assumes
    for most accounts.

    ``share``: the fraction of accounts with x >= ``level`` (p <= 1% under the null, where
    about 1% are expected); ``bulk_quantile``: the ``bulk`` quantile of x;
    ``discount_log10``: log10 of the inflation c, the orders of magnitude by which every
    account's evidence is discounted. ``suspect``: a discount of
    `REFERENCE_DISCOUNT_WARN` orders of magnitude or more, where a campaign can look
    typical among the accounts it is calibrated against. The calibration tolerates
    1 - ``bulk`` of accounts in the top; past that (``bulk_quantile`` >= ``level``) the
    discount is at least log10((1 - bulk) / 10^-level) = 1.3. Fewer than 50 accounts:
    ranks only, no discount (None)."""
    x = np.nan_to_num(np.asarray(x, dtype=float), nan=-np.inf)
    srt = np.sort(x)
    fin = srt[np.isfinite(srt)]
    if len(x) < MIN_CALIBRATED or len(fin) == 0:
        return {"n": int(len(x)), "share": None, "bulk_quantile": None,
                "discount_log10": None, "suspect": False}  # fmt: skip
    c, h = _inflation(srt, fin, bulk)
    d = round(float(np.log10(c)), 3)
    return {
        "n": int(len(x)),
        "share": round(float(np.mean(x >= level)), 4),
        "bulk_quantile": round(h, 3),
        "discount_log10": d,
        "suspect": bool(d >= REFERENCE_DISCOUNT_WARN),
    }


#: Floor of the tail scale (`upper_tail`) for statistics that are -log10 p-values.
PVALUE_STAT_MIN_SCALE = 1.0


def score_accounts(
    features: pd.DataFrame,
    weights: dict[str, float] | None = None,
    pvalue_stats: frozenset[str] | set[str] = frozenset(),
    null_stats: frozenset[str] | set[str] = frozenset(),
) -> AccountScores:
    """Calibrate each signal column of ``features`` and fuse them (see module docstring).
    ``pvalue_stats``: columns that are -log10 p-values whose benign spread is wide (the
    `upper_tail` scale floored); ``null_stats``: -log10 p-values whose null is trusted up
    to an inflation the bulk shows (`pvalue_tail`, robust to a large campaign)."""
    w = weights or {}
    tails = pd.DataFrame(index=features.index)
    b = np.zeros(len(features))
    for name in features.columns:
        x = features[name].to_numpy(float)
        if name in null_stats:
            u = pvalue_tail(x)
        else:
            u = upper_tail(x, min_scale=PVALUE_STAT_MIN_SCALE if name in pvalue_stats else 0.0)
        t = -np.log10(u)
        tails[name] = t
        b += w.get(name, DEFAULT_WEIGHT) * t
    return AccountScores(tails, b, upper_tail(b))


@dataclass(frozen=True)
class ClusterTest:
    """Gamma (Fisher-type) test of a cluster's members against the population."""

    size: int
    statistic: float
    pvalue: float

    # The evidence protocol (distilltrace.evidence.Evidence).
    name = "cluster_test"
    null = (
        "the cluster's independent units are a random sample of the population (their "
        "calibrated tails are independent Uniform(0, 1), so T = sum of capped -ln u is "
        "at most Gamma(k, 1) in the tail)"
    )

    @property
    def n(self) -> int:
        return self.size

    @property
    def details(self) -> dict:
        return {"units": self.size}

    def to_dict(self) -> dict:
        return {
            "size": self.size,
            "statistic": self.statistic,
            "pvalue": self.pvalue,
            "name": self.name,
            "null": self.null,
            "n": self.n,
            "details": self.details,
        }


#: Most evidence one unit can add to a cluster test (-ln u capped at -ln 1e-4), so a
#: single extreme member cannot carry an otherwise ordinary cluster.
UNIT_CAP = float(-np.log(1e-4))


def cluster_test(
    member_tail_p: np.ndarray, units: np.ndarray | None = None, cap: float = UNIT_CAP
) -> ClusterTest:
    """Gamma test of a cluster against the population.

    Null: the cluster's independent units are a random sample of the population, so
    their calibrated tails u are independent Uniform(0, 1) and T = sum min(-ln u, cap)
    is stochastically below Gamma(k, 1). Accounts of one declared customer (same
    ``units`` label: org and payment instrument) are not independent draws: they form
    one unit whose evidence is the mean of its members' (capped) -ln u, which under the
    null is no larger in the tail than one Exp(1) draw. ``size`` is the number of units.
    """
    u = np.clip(np.asarray(member_tail_p, dtype=float), 1e-300, 1.0)
    if len(u) == 0:
        return ClusterTest(0, 0.0, 1.0)
    e = np.minimum(-np.log(u), cap)
    if units is None:
        vals = e
    else:
        _, inv = np.unique(np.asarray(units), return_inverse=True)
        vals = np.bincount(inv, weights=e) / np.bincount(inv)
    k = len(vals)
    T = float(vals.sum())
    return ClusterTest(k, T, float(stats.gamma.sf(T, k)))
