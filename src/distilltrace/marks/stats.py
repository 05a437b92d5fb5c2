"""Exact tail probabilities of the watermark scores, on the log scale (no underflow).

- green-list: K green tuples among n scored, K ~ Binomial(n, gamma) under the null;
  p = P(K' >= K).
- Gumbel: S = sum of -log(1 - u) over n scored tuples, S ~ Gamma(n, 1) under the null;
  p = P(S' >= S) = P(Poisson(S) <= n - 1) (exact for integer n).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special
from scipy import stats as st

from distilltrace.stats import PVALUE_FLOOR

LN10 = math.log(10.0)


def binom_log_sf(k: int, n: int, p: float) -> float:
    """ln P(Binomial(n, p) >= k), exact, finite far into the tail."""
    if k <= 0:
        return 0.0
    if k > n:
        return -math.inf
    v = float(st.binom.logsf(k - 1, n, p))
    if math.isfinite(v) and v > -600:
        return v
    j = np.arange(k, n + 1)
    return float(special.logsumexp(st.binom.logpmf(j, n, p)))


def gamma_log_sf(x: float, n: int) -> float:
    """ln P(Gamma(n, 1) >= x) for integer shape n, exact, finite far into the tail."""
    if n <= 0:
        return 0.0
    if x <= 0:
        return 0.0
    v = float(st.gamma.logsf(x, a=n))
    if math.isfinite(v) and v > -600:
        return v
    k = np.arange(n)  # P(Poisson(x) <= n - 1) = sum_k exp(-x) x^k / k!
    return float(special.logsumexp(k * math.log(x) - x - special.gammaln(k + 1)))


def floor_p(log_p: float) -> tuple[float, bool]:
    """The p-value from its logarithm, floored at PVALUE_FLOOR; and whether it was floored."""
    if log_p < math.log(PVALUE_FLOOR):
        return PVALUE_FLOOR, True
    return min(1.0, math.exp(log_p)), False


def format_p(p: float | None, floored: bool = False) -> str:
    """A p-value for people: '<= 1e-300' when floored, 3 significant digits otherwise."""
    if p is None:
        return "n/a"
    if floored:
        return f"<= {PVALUE_FLOOR:.0e}"
    return f"{p:.3g}"
