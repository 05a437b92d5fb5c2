"""Shared statistics: multiple-testing control, p-value combination, calibration checks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import special as _special
from scipy import stats as _st

# Bentkus and Dzindzalieta (2015, Bernoulli 21(2)): for fair signs e_i and sum a_i^2 <= 1,
# P(sum a_i e_i >= x) <= c P(N(0, 1) >= x) for every x, with this optimal c
RADEMACHER_GAUSS_C = 1.0 / (4.0 * float(_st.norm.sf(math.sqrt(2.0))))

# The smallest p-value any test reports: below it a float64 tail bound or exact tail can
# underflow to 0.0, which would read as "impossible under the null" rather than "beyond
# what is computed". Reports print a floored p as "<= 1e-300".
PVALUE_FLOOR = 1e-300


def floored(p: float) -> float:
    """p kept within [PVALUE_FLOOR, 1] (a p of 0.0 from an underflowed tail is floored)."""
    return float(min(1.0, max(PVALUE_FLOOR, p)))


def rademacher_log_sf(t: float, sd: float) -> float:
    """ln of a bound on P(S >= t) for S a weighted sum of fair random signs with standard
    deviation sd: the smaller of Hoeffding's exp(-z^2 / 2) and Bentkus and Dzindzalieta's
    c P(N >= z), z = t / sd; 0 for t <= 0."""
    if t <= 0 or not sd > 0:
        return 0.0 if t <= 0 else -math.inf
    z = t / sd
    return min(0.0, -z * z / 2, math.log(RADEMACHER_GAUSS_C) + float(_special.log_ndtr(-z)))


@dataclass(frozen=True)
class HolmResult:
    """Holm step-down adjusted p-values and rejections at family-wise level alpha."""

    pvalues: tuple[float, ...]
    adjusted: tuple[float, ...]
    reject: tuple[bool, ...]
    alpha: float

    # The evidence protocol (distilltrace.evidence.Evidence): the global null.
    name = "holm"
    null = "every null hypothesis in the family is true"

    @property
    def statistic(self) -> float:
        return self.pvalue

    @property
    def pvalue(self) -> float:
        """Smallest adjusted p-value (Bonferroni's min-p): valid for the global null."""
        return min(self.adjusted, default=1.0)

    @property
    def n(self) -> int:
        return len(self.pvalues)

    @property
    def details(self) -> dict:
        return {"adjusted": list(self.adjusted), "reject": list(self.reject), "alpha": self.alpha}

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(name=self.name, null=self.null, statistic=self.statistic, pvalue=self.pvalue)
        d.update(n=self.n, details=self.details)
        return d


def holm(pvalues: Sequence[float], alpha: float = 0.05) -> HolmResult:
    """Holm family-wise error control over a family of p-values."""
    p = np.asarray(pvalues, dtype=float)
    if p.size == 0:
        return HolmResult((), (), (), alpha)
    # Same numbers as statsmodels' multipletests(method="holm") (checked in the tests),
    # which runs gc.collect() on every call: ~0.1 s each once torch is loaded.
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    adj = np.empty(m)
    adj[order] = np.minimum(stepped, 1.0)
    reject = adj <= alpha
    return HolmResult(
        tuple(float(x) for x in p),
        tuple(float(x) for x in adj),
        tuple(bool(x) for x in reject),
        alpha,
    )


def combine_pvalues(pvalues: Sequence[float], method: str = "fisher") -> float:
    """Combine p-values of independent tests ("fisher", "stouffer") or of dependent
    tests ("bonferroni": min-p times k, valid under any dependence)."""
    p = np.clip(np.asarray(pvalues, dtype=float), PVALUE_FLOOR, 1.0)
    if p.size == 0:
        return 1.0
    if method == "bonferroni":
        return float(min(1.0, p.min() * p.size))
    return float(_st.combine_pvalues(p, method=method).pvalue)


@dataclass(frozen=True)
class CalibrationResult:
    """Whether p-values computed under a true null look valid."""

    n: int
    ks_statistic: float
    ks_pvalue: float
    fpr: dict[float, float]  # alpha -> empirical false-positive rate

    def ok(self, ks_level: float = 0.01, slack: float = 0.0) -> bool:
        """Uniform at ks_level and every empirical FPR <= alpha + slack."""
        return self.ks_pvalue >= ks_level and all(rate <= a + slack for a, rate in self.fpr.items())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fpr"] = {str(k): v for k, v in self.fpr.items()}
        return d


def calibration(
    null_pvalues: Sequence[float], alphas: Sequence[float] = (0.01, 0.05, 0.1)
) -> CalibrationResult:
    """KS test of uniformity and false-positive rates for p-values under a true null.

    Discrete or conservative tests give super-uniform p-values; use `ok(slack=...)`
    with a binomial allowance when the sample is small.
    """
    p = np.asarray(null_pvalues, dtype=float)
    ks = _st.kstest(p, "uniform")
    return CalibrationResult(
        n=int(p.size),
        ks_statistic=float(ks.statistic),
        ks_pvalue=float(ks.pvalue),
        fpr={float(a): float(np.mean(p <= a)) for a in alphas},
    )


def binomial_slack(n: int, alpha: float, level: float = 0.001) -> float:
    """How far above alpha an empirical FPR over n null draws may sit by chance."""
    upper = _st.binom.ppf(1 - level, n, alpha) / max(n, 1)
    return float(max(0.0, upper - alpha))
