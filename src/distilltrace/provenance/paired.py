"""Fixed-sample paired tests across prompts, and the intersection-union combination.

`signflip_test` tests H0: E[d] <= 0 for paired per-prompt differences d_1..d_n drawn
i.i.d. over prompts. It is a studentized sign-flip (randomisation) test: exact when the
null distribution of d is symmetric about 0, and asymptotically valid for a mean-zero
null in general because the statistic is studentized (Janssen 1999). Flipping signs
keeps sum(d^2) fixed, so the t statistic is an increasing function of the mean and the
resampled means are ranked instead (same test, one matrix-vector product per batch).

The Monte Carlo p-value is sequential (Besag & Clifford 1991): resampling stops once `h`
resampled statistics reach the observed one, at draw L, giving p = h / L; otherwise, after
all B draws with k < h exceedances, p = (k + 1) / (B + 1). Both are valid p-values; clear
nulls stop after a few dozen draws.

No floor at 1 / (B + 1) for strong effects: when no draw reaches the observed sum (k = 0),
p is the smaller of 1 / (B + 1) and Hoeffding's bound on the exact randomisation tail,
P(sum e_i d_i >= sum d_i) <= exp(-(sum d_i)^2 / (2 sum d_i^2)) for fair signs e_i,
floored at distilltrace.stats.PVALUE_FLOOR (1e-300) where the bound underflows.
Still valid: for alpha >= 1 / (B + 1) the event {p <= alpha} is the Monte Carlo test's;
below it, it implies the bound, hence the exact p-value, is <= alpha. (The bound is a
decreasing function of the t statistic, and for a mean-zero null that is not symmetric it
is conservative against the normal tail as well.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from distilltrace.provenance.result import TestResult, skipped_test
from distilltrace.stats import floored

DEFAULT_RESAMPLES = 199_999
DEFAULT_EXCEEDANCES = 20
MIN_MARGIN_CONTROLS = 3  # a margin from the controls needs a pair plus a baseline model


@dataclass(frozen=True)
class PairedResult:
    """A one-sided paired test of mean(d) > 0 (`n_resamples`: draws actually made)."""

    n: int
    mean: float
    sd: float
    t: float
    pvalue: float
    n_resamples: int

    # The evidence protocol (distilltrace.evidence.Evidence).
    name = "paired_signflip"
    null = "E[d] <= 0: the paired per-prompt differences have mean at most 0"

    @property
    def statistic(self) -> float:
        return self.t

    @property
    def details(self) -> dict:
        return {"mean": self.mean, "sd": self.sd, "n_resamples": self.n_resamples}

    @property
    def at_floor(self) -> bool:
        """Whether p is the Monte Carlo floor 1 / (B + 1): no resample reached the observed
        sum and the tail bound was larger, so the exact p-value may be smaller still."""
        return self.n_resamples > 0 and self.pvalue == 1.0 / (self.n_resamples + 1)

    def per_control(self) -> dict:
        """This test as one control's entry of a provenance result's `per_control`."""
        return {"pvalue": self.pvalue, "mean_difference": self.mean, "sd": self.sd, "t": self.t,
                "n": self.n, "monte_carlo_floor": self.at_floor}  # fmt: skip

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(name=self.name, null=self.null, statistic=self.statistic, details=self.details)
        return d


def _tstat(x: np.ndarray) -> np.ndarray:
    """Row-wise t statistics (mean / standard error); 0 where the spread is 0."""
    n = x.shape[-1]
    m = x.mean(axis=-1)
    s = x.std(axis=-1, ddof=1) if n > 1 else np.zeros_like(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(s > 0, m / (s / np.sqrt(n)), np.where(m > 0, np.inf, 0.0))
    return t


def _random_signs(rng: np.random.Generator, rows: int, n: int) -> np.ndarray:
    """A (rows, n) matrix of independent fair +-1 signs, 8 per random byte."""
    bits = np.unpackbits(np.frombuffer(rng.bytes(rows * ((n + 7) // 8)), dtype=np.uint8))
    bits = bits.reshape(rows, -1)[:, :n]
    return bits.astype(np.float64) * 2.0 - 1.0


def signflip_test(
    d: Sequence[float],
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    h: int = DEFAULT_EXCEEDANCES,
) -> PairedResult:
    """Studentized sign-flip test of H0: E[d] <= 0 against E[d] > 0 (see module doc);
    at most `n_resamples` draws, stopping after `h` exceedances."""
    x = np.asarray(d, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return PairedResult(0, 0.0, 0.0, 0.0, 1.0, 0)
    t_obs = float(_tstat(x[None, :])[0])
    sd = float(x.std(ddof=1)) if n > 1 else 0.0
    total = float(x.sum())
    rng = np.random.default_rng(seed)
    tol = 1e-9 * float(np.abs(x).sum())
    exceed = 0
    done = 0
    chunk = 256
    while done < n_resamples:
        b = min(chunk, n_resamples - done)
        hits = np.flatnonzero(_random_signs(rng, b, n) @ x >= total - tol)
        if exceed + hits.size >= h:
            draws = done + int(hits[h - exceed - 1]) + 1
            return PairedResult(n, float(x.mean()), sd, t_obs, min(1.0, h / draws), draws)
        exceed += int(hits.size)
        done += b
        chunk = min(chunk * 2, max(256, 2_000_000 // n))
    p = (1 + exceed) / (n_resamples + 1)
    if exceed == 0 and total - tol > 0:  # beyond every draw: the exact tail's bound
        p = min(p, rademacher_tail(total - tol, float(np.dot(x, x))))
    return PairedResult(n, float(x.mean()), sd, t_obs, floored(p), n_resamples)


def rademacher_tail(t: float, sum_sq: float) -> float:
    """Hoeffding's bound on P(sum e_i d_i >= t) for fair signs e_i, given sum d_i^2 (t > 0)."""
    return float(np.exp(-(t * t) / (2.0 * sum_sq))) if sum_sq > 0 else 0.0


def intersection_union(pvalues: Mapping[str, float]) -> float:
    """p-value for "the suspect beats every control": the largest per-control p-value.

    H0 is the union of the per-control nulls, so rejecting it means rejecting each one;
    if one of them is true, that happens with probability at most alpha. No
    multiplicity correction is needed (intersection-union test, Berger 1982).
    """
    return max(pvalues.values(), default=1.0)


def control_pair_means(
    controls: Sequence[str], stat: Callable[[str, str], np.ndarray]
) -> dict[tuple[str, str], float]:
    """The mean of `stat(g, c)` for every ordered pair of distinct controls (empty with
    fewer than MIN_MARGIN_CONTROLS controls, where no baseline model would be left)."""
    if len(controls) < MIN_MARGIN_CONTROLS:
        return {}
    return {(g, c): float(np.nanmean(stat(g, c))) for g in controls for c in controls if g != c}


def control_margin(
    controls: Sequence[str],
    stat: Callable[[str, str], np.ndarray],
    pairs: Mapping[tuple[str, str], float] | None = None,
) -> float:
    """How far apart independent models already are: the largest mean of `stat(g, c)`
    with control g in the suspect's place against another control c (at least 0; 0 with
    fewer than MIN_MARGIN_CONTROLS controls). `pairs`: those means, already computed."""
    pairs = control_pair_means(controls, stat) if pairs is None else pairs
    return max(0.0, max(pairs.values(), default=0.0))


def too_few_for_margin(name: str, null: str, k: int) -> TestResult:
    """A test whose margin cannot be measured with k controls, skipped with the reason."""
    return skipped_test(
        name,
        null,
        f"{k} controls: the margin (how far apart independent models already are) needs "
        f"at least {MIN_MARGIN_CONTROLS}",
    )
