"""The green-list scheme (Kirchenbauer et al. 2023).

Token v is green under a window when u(window, v) < gamma; generation adds `delta` to the
green tokens' scores. Under H0 each distinct (window, token) tuple is green with
probability gamma, independently, so the green count K of n tuples is Binomial(n, gamma).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from distilltrace.marks.hashing import RowHasher, row_bits
from distilltrace.marks.schemes.base import KeyedProcessor, NullTest, WatermarkScheme, z_score
from distilltrace.marks.stats import binom_log_sf

_S11 = np.uint64(11)


@dataclass(frozen=True)
class GreenList(WatermarkScheme):
    """gamma: green fraction of the vocabulary; delta: logit bias of green tokens."""

    name: ClassVar[str] = "greenlist"
    gamma: float = 0.25
    delta: float = 4.0  # see docs/marks.md, "Choosing the strength"

    def __post_init__(self) -> None:
        object.__setattr__(self, "gamma", float(self.gamma))
        object.__setattr__(self, "delta", float(self.delta))
        if not 0.0 < self.gamma < 1.0:
            raise ValueError("gamma must be in (0, 1)")
        if not 0.0 <= self.delta < 100.0:
            raise ValueError("delta must be in [0, 100)")

    @property
    def green_limit(self) -> np.uint64:
        """Green iff (hash >> 11) is below this (53-bit uniform below gamma)."""
        return np.uint64(int(round(self.gamma * 2.0**53)))

    def green_bits_limit(self) -> np.uint64:
        """Green iff a token's uint64 hash is below this (same rule as `green_mask`)."""
        return np.uint64(int(self.green_limit) << 11)

    def green_mask(self, seed: int, vocab_size: int) -> np.ndarray:
        """Which tokens are green under one window seed."""
        return (row_bits(seed, vocab_size) >> _S11) < self.green_limit

    def score(self, bits: np.ndarray) -> np.ndarray:
        return ((bits >> _S11) < self.green_limit).astype(np.float64)

    def null(self, n: int, statistic: float) -> NullTest:
        g = self.gamma
        expected = g * n
        z = z_score(statistic, expected, n * g * (1 - g))
        return NullTest(expected, z, binom_log_sf(int(round(statistic)), n, g))

    def null_text(self) -> str:
        return f"the green count is Binomial(n, gamma={self.gamma})"

    def processor(self, wm: Any) -> GreenListProcessor:
        return GreenListProcessor(wm)

    def tuple_mean(self) -> float:
        return self.gamma

    def centred_cgf(self, t: np.ndarray) -> np.ndarray:
        """A Bernoulli(gamma) indicator, centred: ln(1 - gamma + gamma e^t) - gamma t."""
        t = np.asarray(t, dtype=np.float64)
        g = self.gamma
        return np.logaddexp(math.log1p(-g), math.log(g) + t) - g * t

    def randomized_pvalue(self, test: Any, rng: np.random.Generator) -> float | None:
        """P(K > k) + U P(K = k): exactly uniform under H0."""
        from scipy import stats as st

        if test.pvalue is None:
            return None
        k, n = int(round(test.statistic)), test.n_scored
        return float(st.binom.sf(k, n, self.gamma) + rng.random() * st.binom.pmf(k, n, self.gamma))


class GreenListProcessor(KeyedProcessor):
    """Adds delta to the scores of the green tokens of each row's context window."""

    def __init__(self, wm: Any):
        super().__init__(wm)
        self._rows = RowHasher()
        self._limit = wm.impl.green_bits_limit()
        self._delta = float(wm.impl.delta)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        seeds = self._seeds(input_ids)
        if seeds is None:
            return scores
        green = torch.from_numpy(self._rows(seeds, scores.shape[-1]) < self._limit)
        return torch.add(scores, green.to(scores.device), alpha=self._delta)
