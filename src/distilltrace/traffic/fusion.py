"""Fuse signals into calibrated account risk and campaign scores.

Calibration is against the population itself, which is overwhelmingly benign:

1. Each signal statistic x_f is turned into an empirical upper-tail probability
   u_f(a) = (1 + #{accounts b : x_f(b) >= x_f(a)}) / (N + 1).
2. An account's behaviour score is b(a) = sum_f w_f * -log10 u_f(a); its calibrated
   tail probability u(a) is again the empirical upper tail of b over all accounts.
   Flagging a single account when u(a) <= alpha flags at most alpha * N accounts in
   all, so the benign false-positive rate is at most alpha * N / N_benign.
3. A candidate campaign C (a linkage cluster of >= 2 accounts) is tested with the
   null "C's members are a random sample of the population": then -ln u(a) are
   (approximately) independent Exp(1) and T = sum_{a in C} -ln u(a) ~ Gamma(|C|, 1);
   the campaign p-value is the Gamma upper tail, Bonferroni-adjusted over the clusters
   tested. Many small accounts that each look ordinary add up to a significant T.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

#: Weight of each signal in the behaviour score (signals absent from the data are skipped).
WEIGHTS: dict[str, float] = {
    "elicitation": 1.0,
    "template": 1.0,
    "concentration": 0.5,
    "sweep": 0.3,
    "cadence": 0.5,
    "round_the_clock": 0.3,
    "young_account": 0.5,
    "volume": 0.3,
    "release_pivot": 0.7,
}


def upper_tail(x: np.ndarray) -> np.ndarray:
    """Empirical upper-tail probability of each value within x: (1 + #{x_b >= x_a}) / (N + 1).

    NaN counts as the least suspicious value."""
    x = np.nan_to_num(np.asarray(x, dtype=float), nan=-np.inf)
    n = len(x)
    if n == 0:
        return x
    srt = np.sort(x)
    ge = n - np.searchsorted(srt, x, side="left")
    return (1.0 + ge) / (n + 1.0)


@dataclass
class AccountScores:
    """Per-account calibrated tails and the fused behaviour score."""

    tails: pd.DataFrame  # one column per signal: -log10 u_f
    behaviour: np.ndarray  # b(a)
    tail_p: np.ndarray  # u(a)


def score_accounts(features: pd.DataFrame, weights: dict[str, float] | None = None) -> AccountScores:
    """Calibrate each signal column of ``features`` and fuse them (see module docstring)."""
    w = weights or WEIGHTS
    tails = pd.DataFrame(index=features.index)
    b = np.zeros(len(features))
    for name in features.columns:
        t = -np.log10(upper_tail(features[name].to_numpy(float)))
        tails[name] = t
        b += w.get(name, 0.5) * t
    return AccountScores(tails, b, upper_tail(b))


@dataclass(frozen=True)
class ClusterTest:
    """Gamma (Fisher-type) test of a cluster's members against the population."""

    size: int
    statistic: float
    pvalue: float


def cluster_test(member_tail_p: np.ndarray) -> ClusterTest:
    """Null: the members' calibrated tails u(a) are independent Uniform(0, 1) draws (the
    cluster is a random sample of the population). T = sum -ln u ~ Gamma(k, 1)."""
    u = np.clip(np.asarray(member_tail_p, dtype=float), 1e-300, 1.0)
    k = len(u)
    if k == 0:
        return ClusterTest(0, 0.0, 1.0)
    T = float(-np.log(u).sum())
    return ClusterTest(k, T, float(stats.gamma.sf(T, k)))
