"""Fixed-sample paired tests across prompts, and the intersection-union combination.

`signflip_test` tests H0: E[d] <= 0 for paired per-prompt differences d_1..d_n drawn
i.i.d. over prompts. It is a studentized sign-flip (randomisation) test: exact when the
null distribution of d is symmetric about 0, and asymptotically valid for a mean-zero
null in general because the statistic is studentized (Janssen 1999). The p-value is
(1 + #{t* >= t}) / (B + 1), so it is never below 1 / (B + 1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class PairedResult:
    """A one-sided paired test of mean(d) > 0."""

    n: int
    mean: float
    sd: float
    t: float
    pvalue: float
    n_resamples: int

    def to_dict(self) -> dict:
        return asdict(self)


def _tstat(x: np.ndarray) -> np.ndarray:
    """Row-wise t statistics (mean / standard error); 0 where the spread is 0."""
    n = x.shape[-1]
    m = x.mean(axis=-1)
    s = x.std(axis=-1, ddof=1) if n > 1 else np.zeros_like(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(s > 0, m / (s / np.sqrt(n)), np.where(m > 0, np.inf, 0.0))
    return t


def signflip_test(d: Sequence[float], *, n_resamples: int = 9999, seed: int = 0) -> PairedResult:
    """Studentized sign-flip test of H0: E[d] <= 0 against E[d] > 0 (see module doc)."""
    x = np.asarray(d, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return PairedResult(0, 0.0, 0.0, 0.0, 1.0, 0)
    t_obs = float(_tstat(x[None, :])[0])
    rng = np.random.default_rng(seed)
    exceed = 0
    done = 0
    chunk = max(1, min(n_resamples, 2_000_000 // max(n, 1)))
    while done < n_resamples:
        b = min(chunk, n_resamples - done)
        signs = rng.integers(0, 2, size=(b, n), dtype=np.int8) * 2 - 1
        t_star = _tstat(signs * x[None, :])
        exceed += int(np.sum(t_star >= t_obs - 1e-12))
        done += b
    p = (1 + exceed) / (n_resamples + 1)
    sd = float(x.std(ddof=1)) if n > 1 else 0.0
    return PairedResult(n, float(x.mean()), sd, t_obs, float(min(1.0, p)), n_resamples)


def intersection_union(pvalues: Mapping[str, float]) -> float:
    """p-value for "the suspect beats every control": the largest per-control p-value.

    H0 is the union of the per-control nulls, so rejecting it means rejecting each one;
    if one of them is true, that happens with probability at most alpha. No
    multiplicity correction is needed (intersection-union test, Berger 1982).
    """
    return max(pvalues.values(), default=1.0)
