"""The weighted watermark test: key scores weighted by a suspect's own probabilities.

Each distinct (window, token) tuple i carries a weight W_i that does not depend on the key
(e.g. the probability a suspect gave the token after that window, less our own model's)
and the scheme's keyed score X_i. The statistic is

    T = sum_i W_i (X_i - E[X])

H0: the weights are independent of the key. Then the X_i of distinct tuples are
independent draws of the scheme's tuple score (the same fact the unweighted detectors rest
on), so T is a weighted sum of independent centred scores with fixed weights. Its exact
law depends on all the weights; the p-value reported is an upper bound on P(T' >= T):

- Chernoff's bound, inf over lambda >= 0 of exp(-lambda T + sum_i K(lambda W_i)), with K
  the scheme's centred cumulant generating function (valid for every scheme that has one);
- for tournament keys, whose centred g-values are fair random signs of size 1/2, also the
  Gaussian comparison of Bentkus and Dzindzalieta (2015, Bernoulli 21(2)): P(T >= x) <=
  c P(N(0, s^2) >= x) with s^2 = Var T and c = 1 / (4 P(N(0, 1) >= sqrt 2)) = 3.178.

Both are bounds, so the test is conservative (never liberal): FPR <= alpha at every alpha.
The z-score T / sd(T) is reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import optimize

from distilltrace.errors import CapabilityError
from distilltrace.marks.detect import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_SCORED,
    MarkTest,
    build_mark_test,
)
from distilltrace.stats import RADEMACHER_GAUSS_C, rademacher_log_sf

__all__ = ["RADEMACHER_GAUSS_C", "aggregate", "chernoff_log_sf", "rademacher_log_sf",
           "weighted_test"]  # fmt: skip


def chernoff_log_sf(
    weights: np.ndarray, statistic: float, cgf: Callable[[np.ndarray], np.ndarray]
) -> float:
    """min over lambda >= 0 of -lambda T + sum_i cgf(lambda w_i): ln of an upper bound on
    P(sum_i w_i Y_i >= T) for independent centred Y_i with cumulant function `cgf`.

    Any lambda gives a valid bound, so the search only affects how tight it is: bounded
    Brent over (0, upper], with upper a few times the Gaussian optimum T / sum(w^2 Var Y),
    clipped to where the cumulant stays finite."""
    w = np.asarray(weights, dtype=np.float64)
    w = w[w != 0]
    if statistic <= 0 or not w.size:
        return 0.0
    var1 = null_variance(cgf)
    upper = 8.0 * statistic / max(var1 * float(w @ w), 1e-300)
    wmax = float(w.max())
    if wmax > 0 and not np.isfinite(cgf(np.array([upper * wmax]))[0]):
        lo, hi = 0.0, upper  # the largest finite lambda, by bisection on the domain
        for _ in range(60):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if np.isfinite(cgf(np.array([mid * wmax]))[0]) else (lo, mid)
        upper = lo

    def f(lam: float) -> float:
        v = -lam * statistic + float(np.sum(cgf(lam * w)))
        return v if math.isfinite(v) else 0.0

    r = optimize.minimize_scalar(f, bounds=(0.0, upper), method="bounded",
                                 options={"xatol": upper * 1e-9})  # fmt: skip
    return min(0.0, float(r.fun), f(upper))


def aggregate(
    seeds: np.ndarray, tokens: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sum the weights of repeated (window seed, token) tuples: distinct tuples carry
    independent scores under H0, repeated ones the same score, so their weights add."""
    w = np.asarray(weights, dtype=np.float64)
    keep = w != 0
    pairs = np.stack(
        [np.asarray(seeds, dtype=np.uint64)[keep], np.asarray(tokens).astype(np.uint64)[keep]], 1
    )
    if not len(pairs):
        return np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0)
    uniq, inv = np.unique(pairs, axis=0, return_inverse=True)
    total = np.bincount(inv.ravel(), weights=w[keep], minlength=len(uniq))
    nz = total != 0
    return uniq[nz, 0], uniq[nz, 1].astype(np.int64), total[nz]


def weighted_test(
    wm: Any,
    seeds: np.ndarray,
    tokens: np.ndarray,
    weights: np.ndarray,
    *,
    alpha: float = DEFAULT_ALPHA,
    min_scored: int = DEFAULT_MIN_SCORED,
    counts: dict[str, int] | None = None,
) -> MarkTest:
    """The weighted test over (window seed, token, weight) triples (module docstring):
    weights of repeated tuples summed, T and its bound under the key's scheme."""
    impl = wm.impl
    try:
        mean = impl.tuple_mean()
    except NotImplementedError:
        raise CapabilityError(
            f"scheme {wm.scheme!r} has no null law for weighted tests (tuple_mean, centred_cgf)"
        ) from None
    s, t, w = aggregate(seeds, tokens, weights)
    n = len(w)
    stat = float(w @ (wm.tuple_scores(s, t) - mean)) if n else 0.0
    var = null_variance(impl.centred_cgf) * float(w @ w)
    z = stat / math.sqrt(var) if var > 0 else 0.0
    log_p = impl.weighted_log_sf(w, stat) if n >= max(1, int(min_scored)) else 0.0
    return build_mark_test(wm, n, stat, 0.0, z if n else None, log_p, alpha=alpha,
                           min_scored=min_scored, null=WEIGHTED_NULL.format(scheme=wm.scheme),
                           counts=counts)  # fmt: skip


def null_variance(cgf: Callable[[np.ndarray], np.ndarray]) -> float:
    """One tuple's score variance under H0, from its cumulant function: K(t) = Var t^2 / 2
    + O(t^3), read at t = 1e-3 (relative error about 1e-4, enough for a z-score)."""
    return float(2 * cgf(np.array([1e-3]))[0] / 1e-6)


WEIGHTED_NULL = (
    "H0: the weights are independent of the key; each distinct (window, token) tuple's "
    "{scheme} score is then an independent draw of its null law, and the weighted sum of "
    "the centred scores is bounded by Chernoff's inequality (and, for tournament keys, the "
    "Bentkus-Dzindzalieta Gaussian comparison); the p-value is that bound"
)
