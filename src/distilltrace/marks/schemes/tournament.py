"""Tournament sampling (SynthID-Text, Dathathri et al. 2024), with an exact binomial test.

Each (window, token) tuple gets m keyed g-values g_1..g_m in {0, 1}: the m low bits of its
uint64 hash (`marks.hashing`). Generation samples from the distribution of the winner of a
2^m-candidate knock-out tournament (candidates drawn from the model's distribution p, the
higher g_l wins round l, ties at random), computed exactly layer by layer:

    p_l(v) = p_{l-1}(v) * (1 + g_l(v) - E_{p_{l-1}}[g_l])

and the token is then drawn by the ordinary sampler (its seeded generator), so answers
differ across seeds as unmarked ones do. Averaged over keys the winner is distributed as
p (distortion-free per sample). A window already seen earlier in the sequence is not
marked (`mask_repeated`): the token is drawn from p itself, so a repeated context does not
keep re-applying one key's preference, and detection skips those windows too.

Under H0 the g-values of distinct tuples are independent fair bits, so the total count of
1s over n scored tuples is Binomial(n * m, 1/2): an exact p-value, no approximation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from distilltrace.marks.hashing import pair_bits
from distilltrace.marks.schemes.base import KeyedProcessor, NullTest, WatermarkScheme, z_score
from distilltrace.marks.stats import binom_log_sf

MAX_LAYERS = 64
# Tokens below this probability are left out of the tournament (probability 0): at most
# vocabulary x TAIL of mass (5e-6 for 49k tokens, far less in practice), and since the
# winner is distributed as p on average over keys, the output moves by no more than that
# in total variation. It makes the per-step cost proportional to the plausible tokens.
TAIL = 1e-10


@dataclass(frozen=True)
class Tournament(WatermarkScheme):
    """layers: tournament depth m (g-values per tuple); mask_repeated: leave windows seen
    earlier in the sequence unmarked (generation) and unscored (detection)."""

    name: ClassVar[str] = "tournament"
    layers: int = 30
    mask_repeated: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.layers, bool) or not isinstance(self.layers, int | np.integer):
            raise ValueError("layers must be an integer")
        object.__setattr__(self, "layers", int(self.layers))
        if not 1 <= self.layers <= MAX_LAYERS:
            raise ValueError(f"layers must be in [1, {MAX_LAYERS}]")
        if not isinstance(self.mask_repeated, bool | np.bool_):
            raise ValueError("mask_repeated must be true or false")
        object.__setattr__(self, "mask_repeated", bool(self.mask_repeated))

    @property
    def bit_mask(self) -> np.uint64:
        return np.uint64((1 << self.layers) - 1)

    def masks_repeated_windows(self) -> bool:
        return self.mask_repeated

    def g_values(self, bits: np.ndarray) -> np.ndarray:
        """g_l of each hash as a [..., m] array of 0/1 (layer l is bit l - 1)."""
        shifts = np.arange(self.layers, dtype=np.uint64)
        return ((np.asarray(bits, dtype=np.uint64)[..., None] >> shifts) & np.uint64(1)).astype(
            np.float64
        )

    def score(self, bits: np.ndarray) -> np.ndarray:
        """The number of g-values equal to 1 (0..m) of each tuple."""
        return np.bitwise_count(np.asarray(bits, dtype=np.uint64) & self.bit_mask).astype(
            np.float64
        )

    def null(self, n: int, statistic: float) -> NullTest:
        trials = n * self.layers
        expected = 0.5 * trials
        z = z_score(statistic, expected, 0.25 * trials)
        return NullTest(expected, z, binom_log_sf(int(round(statistic)), trials, 0.5))

    def null_text(self) -> str:
        return (
            f"the count of g-values equal to 1 ({self.layers} per tuple) is "
            f"Binomial(n * {self.layers}, 1/2)"
        )

    def processor(self, wm: Any) -> TournamentProcessor:
        return TournamentProcessor(wm)

    def randomized_pvalue(self, test: Any, rng: np.random.Generator) -> float | None:
        """P(K > k) + U P(K = k): exactly uniform under H0."""
        from scipy import stats as st

        if test.pvalue is None:
            return None
        k, n = int(round(test.statistic)), test.n_scored * self.layers
        return float(st.binom.sf(k, n, 0.5) + rng.random() * st.binom.pmf(k, n, 0.5))

    def tournament_probs(self, probs: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """The winner's distribution: probs over a support, bits their tuple hashes."""
        q = np.array(probs, dtype=np.float64)
        q /= q.sum()  # the support may leave out a (tiny) tail
        bits = np.ascontiguousarray(bits, dtype=np.uint64)
        planes = np.unpackbits(bits.view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
        g_rows = np.ascontiguousarray(planes[:, : self.layers].T, dtype=np.float64)  # [m, S]
        for g in g_rows:
            e = min(1.0, float(np.add.reduce(q * g)))  # E[g] <= 1 (rounding could pass it)
            q *= g + (1.0 - e)
        return q


def repeated_windows(input_ids: torch.Tensor, h: int) -> list[bool]:
    """Per row: whether the last h tokens already occurred as a window earlier in the row."""
    if input_ids.shape[1] <= h:
        return [False] * input_ids.shape[0]
    w = input_ids.unfold(1, h, 1)  # [B, T - h + 1, h]
    last = w[:, -1:, :]
    return (w[:, :-1, :] == last).all(dim=-1).any(dim=-1).tolist()


class TournamentProcessor(KeyedProcessor):
    """Replaces each row's scores by the log of the tournament winner's distribution over
    the row's support (tokens with probability >= TAIL after warping); the sampler then
    draws from it."""

    def __init__(self, wm: Any):
        super().__init__(wm)
        self._impl: Tournament = wm.impl

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        seeds = self._seeds(input_ids)
        if seeds is None:
            return scores
        skip = (
            repeated_windows(input_ids, self._wm.context_width)
            if self._impl.mask_repeated
            else [False] * len(seeds)
        )
        skip = [
            a or not b for a, b in zip(skip, torch.isfinite(scores).any(-1).tolist(), strict=True)
        ]
        if all(skip):
            return scores
        # one softmax for the batch (tensor ops per row cost more than the tournament),
        # on one float64 copy of the scores that then becomes the output
        base = scores.detach().to("cpu", torch.float64, copy=True)
        probs_all = torch.softmax(base, dim=-1).numpy()
        new_all = base.numpy()
        for i, s in enumerate(seeds):
            if skip[i]:
                continue
            probs = probs_all[i]
            sup = np.flatnonzero(probs >= TAIL)
            q = self._impl.tournament_probs(probs[sup], pair_bits(np.uint64(s), sup))
            new_all[i] = -np.inf
            with np.errstate(divide="ignore"):
                new_all[i, sup] = np.log(q)
        return torch.from_numpy(new_all).to(scores.dtype).to(scores.device)
