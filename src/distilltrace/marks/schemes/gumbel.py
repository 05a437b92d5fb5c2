"""The Gumbel-max / exponential scheme (Aaronson).

The token is argmax_v u(window, v) ** (1 / p_v), with p the (temperature- and top-p-warped)
next-token distribution: for a random key this picks v with probability p_v exactly
(distortion-free). Detection sums -log(1 - u) over the scored tuples: Exp(1) each under H0,
so the sum S of n tuples is Gamma(n, 1) and p = P(Poisson(S) <= n - 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from distilltrace.marks.hashing import bits_to_uniform, row_bits
from distilltrace.marks.schemes.base import KeyedProcessor, NullTest, WatermarkScheme, z_score
from distilltrace.marks.stats import gamma_log_sf


@dataclass(frozen=True)
class Gumbel(WatermarkScheme):
    """No parameters of its own: the window hashing decides everything."""

    name: ClassVar[str] = "gumbel"
    distortion_free: ClassVar[bool] = True

    def score(self, bits: np.ndarray) -> np.ndarray:
        return -np.log1p(-bits_to_uniform(bits))

    def null(self, n: int, statistic: float) -> NullTest:
        return NullTest(float(n), z_score(statistic, n, n), gamma_log_sf(float(statistic), n))

    def null_text(self) -> str:
        return "the score sum of -log(1-u) is Gamma(n, 1)"

    def processor(self, wm: Any) -> GumbelProcessor:
        return GumbelProcessor(wm)

    def tuple_mean(self) -> float:
        return 1.0

    def centred_cgf(self, t: np.ndarray) -> np.ndarray:
        """An Exp(1) score, centred: -t - ln(1 - t) for t < 1, +inf beyond."""
        t = np.asarray(t, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = -t - np.log1p(-np.minimum(t, 1.0))
        return np.where(t < 1.0, out, np.inf)


class GumbelProcessor(KeyedProcessor):
    """Decides each row's token as argmax_v u(window, v) ** (1 / p_v); others become -inf."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        seeds = self._seeds(input_ids)
        if seeds is None:
            return scores
        vocab = scores.shape[-1]
        out = torch.full_like(scores, float("-inf"))
        for i, s in enumerate(seeds):
            row = scores[i].double()
            if not torch.isfinite(row).any():
                out[i] = scores[i]
                continue
            probs = torch.softmax(row, dim=-1).cpu()
            logu = torch.from_numpy(np.log(bits_to_uniform(row_bits(s, vocab))))
            key = logu / probs  # log(u ** (1/p)); -inf where p == 0
            out[i, int(torch.argmax(key))] = 0.0
        return out
