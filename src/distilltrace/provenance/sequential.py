"""Anytime-valid sequential tests: betting e-processes on bounded paired differences.

Null hypothesis (per stream): every observation d_t lies in [-1, 1] and its conditional
mean given the past is at most 0 (for i.i.d. draws: E[d] <= 0). The wealth of a bettor
who stakes a predictable fraction lambda_t in [0, 0.8] on "d_t > 0",
K_t = prod_s (1 + lambda_s d_s), is then a nonnegative supermartingale with K_0 = 1, so by
Ville's inequality P(sup_t K_t >= 1/alpha) <= alpha. The running p-value
p_t = min(1, 1 / max_{s<=t} K_s) is therefore valid at every time and at any stopping
time, whatever rule decided to stop (optional stopping).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from distilltrace.stats import floored

_ONS_RATE = 2.0 / (2.0 - math.log(3.0))
LAMBDA_MAX = 0.8


@dataclass
class BettingEProcess:
    """One test martingale for H0: E[d_t | past] <= 0 with d_t in [-1, 1].

    Bets are chosen by online Newton steps (Cutkosky & Orabona 2018), a standard
    choice that is predictable (uses only past data) and so keeps validity.
    """

    log_wealth: float = 0.0
    max_log_wealth: float = 0.0
    n: int = 0
    _lam: float = 0.0
    _a: float = 1.0
    history: list[float] = field(default_factory=list)  # running p-value after each step

    def update(self, d: float) -> float:
        """Add one observation in [-1, 1]; returns the running anytime-valid p-value."""
        if not -1.0 - 1e-12 <= d <= 1.0 + 1e-12 or not math.isfinite(d):
            raise ValueError(f"observation {d} outside [-1, 1]")
        d = min(1.0, max(-1.0, float(d)))
        lam = self._lam
        self.log_wealth += math.log1p(lam * d)
        self.max_log_wealth = max(self.max_log_wealth, self.log_wealth)
        self.n += 1
        grad = d / (1.0 + lam * d)
        self._a += grad * grad
        self._lam = min(LAMBDA_MAX, max(0.0, lam + _ONS_RATE * grad / self._a))
        p = self.pvalue
        self.history.append(p)
        return p

    def extend(self, ds: Sequence[float]) -> float:
        """Add several observations in order; returns the running p-value."""
        for d in ds:
            self.update(d)
        return self.pvalue

    @property
    def pvalue(self) -> float:
        """min(1, 1 / max wealth so far): valid under optional stopping (floored at
        PVALUE_FLOOR where exp underflows)."""
        return floored(math.exp(-self.max_log_wealth))

    @property
    def e_value(self) -> float:
        """Current wealth (an e-value at any stopping time)."""
        return float(math.exp(min(self.log_wealth, 700.0)))


def anytime_pvalues(ds: Sequence[float]) -> np.ndarray:
    """Running anytime-valid p-values of one stream of differences in [-1, 1]."""
    ep = BettingEProcess()
    return np.array([ep.update(float(d)) for d in ds], dtype=float)


@dataclass
class IntersectionUnionSequential:
    """Several streams (one per control); H0 is the union of the per-stream nulls.

    The suspect must beat every control, so the running p-value is the largest of
    the per-control anytime p-values. This is valid without a multiplicity correction:
    if any one per-control null is true, rejecting all of them needs that one to be
    rejected, which happens with probability at most alpha (Berger 1982).
    """

    names: tuple[str, ...]
    processes: dict[str, BettingEProcess] = field(default_factory=dict)
    futility: dict[str, BettingEProcess] = field(default_factory=dict)
    history: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        for n in self.names:
            self.processes.setdefault(n, BettingEProcess())
            self.futility.setdefault(n, BettingEProcess())

    def update(self, diffs: dict[str, float]) -> float:
        """One paired observation per control; returns the running IUT p-value."""
        for name in self.names:
            self.processes[name].update(diffs[name])
            self.futility[name].update(-diffs[name])
        p = self.pvalue
        self.history.append(p)
        return p

    @property
    def pvalue(self) -> float:
        return max((pr.pvalue for pr in self.processes.values()), default=1.0)

    @property
    def n(self) -> int:
        return len(self.history)

    def futile(self, level: float) -> bool:
        """True when some control is, with anytime-valid evidence at `level`, at least as
        close to the suspect as the reference is (stopping then costs no validity)."""
        return any(pr.pvalue <= level for pr in self.futility.values())

    def per_control(self) -> dict[str, float]:
        return {n: pr.pvalue for n, pr in self.processes.items()}
