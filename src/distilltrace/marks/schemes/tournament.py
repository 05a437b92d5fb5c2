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

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from distilltrace.marks.hashing import pair_bits
from distilltrace.marks.schemes.base import KeyedProcessor, NullTest, WatermarkScheme, z_score
from distilltrace.marks.stats import binom_log_sf

MAX_LAYERS = 64
# Each row's tournament runs over its support: its tokens less the least likely ones, left
# out (probability 0) up to a total probability of at most TAIL_MASS. Since the winner is
# distributed as the renormalised support on average over keys, the output moves by no
# more than TAIL_MASS in total variation per step. It makes the per-step cost proportional
# to the plausible tokens (SmolLM2 at temperature 0.7: median about 600, mean about
# 1,900 of 49,152).
TAIL_MASS = 5e-6
# per float type: the integer type of its bits, where its exponent starts, how many
# exponents, and the share of TAIL_MASS its group sums may fill (float32 sums carry
# rounding: their worst case over a 2^16-token vocabulary is under 1%, so half the
# budget keeps the true left-out mass under TAIL_MASS)
_FLOATS = {torch.float64: (torch.int64, 52, 2048, 1.0), torch.float32: (torch.int32, 23, 256, 0.5)}


def supports(
    probs: torch.Tensor, tail_mass: float = TAIL_MASS, rows: torch.Tensor | None = None
) -> torch.Tensor:
    """Boolean [rows, vocabulary]: each row's support for the tournament.

    ``probs`` is a float32 or float64 [rows, vocabulary] tensor of probabilities. Tokens
    are grouped by binary order of magnitude (their float exponent: p in [2^e, 2^(e+1))),
    and whole groups are left out from the least likely up while their total stays within
    the budget: ``tail_mass`` in float64, half of it in float32 (for the sums' rounding).
    One pass over the vocabulary (a sum per exponent), no sort; the left-out mass is at
    most ``tail_mass``, and the support keeps at least the most likely group. Tokens of
    probability 0 are always left out. ``rows`` (boolean, one per row): rows outside it
    get an empty support. (A row of NaN, from scores that are all -inf, keeps every token;
    the processor leaves such rows as they are.)
    """
    bits, shift, n, share = _FLOATS[probs.dtype]
    n_rows = probs.shape[0]
    # each row's exponents offset to its own range of n groups; in place, since every
    # vocabulary-sized temporary costs fresh pages
    exps = probs.contiguous().view(bits) >> shift
    exps.bitwise_and_(n - 1)  # without the sign bit
    offsets = torch.arange(0, n_rows * n, n, dtype=exps.dtype, device=probs.device)[:, None]
    exps += offsets
    sums = probs.new_zeros(n_rows * n).index_add_(0, exps.view(-1), probs.view(-1))
    cut = (sums.view(n_rows, n).cumsum(1) <= tail_mass * share).sum(1, keepdim=True)
    if rows is not None:
        cut = cut.masked_fill(~rows[:, None], n)  # past every group: nothing kept
    return exps >= cut.to(exps.dtype) + offsets


@dataclass(frozen=True)
class Tournament(WatermarkScheme):
    """layers: tournament depth m (g-values per tuple); mask_repeated: leave windows seen
    earlier in the sequence unmarked (generation) and unscored (detection)."""

    name: ClassVar[str] = "tournament"
    distortion_free: ClassVar[bool] = True
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

    def tuple_mean(self) -> float:
        return 0.5 * self.layers

    def centred_cgf(self, t: np.ndarray) -> np.ndarray:
        """m fair bits, each centred: m ln cosh(t / 2)."""
        x = np.abs(np.asarray(t, dtype=np.float64)) / 2
        return self.layers * (x + np.log1p(np.exp(-2 * x)) - math.log(2.0))

    def weighted_log_sf(self, weights: np.ndarray, statistic: float) -> float:
        """The weighted sum is a weighted sum of fair random signs (each g-value centred is
        +-1/2), so besides Chernoff's bound the Gaussian comparison of Bentkus and
        Dzindzalieta (2015) holds: P(S >= x) <= c P(N(0, var) >= x), c = 1 / (4 P(N >=
        sqrt 2)) = 3.18; the smaller of the two is reported."""
        from distilltrace.marks.weighted import rademacher_log_sf

        w = np.asarray(weights, dtype=np.float64)
        chernoff = super().weighted_log_sf(w, statistic)
        return min(chernoff, rademacher_log_sf(statistic, math.sqrt(0.25 * self.layers * (w @ w))))

    def randomized_pvalue(self, test: Any, rng: np.random.Generator) -> float | None:
        """P(K > k) + U P(K = k): exactly uniform under H0."""
        from scipy import stats as st

        if test.pvalue is None:
            return None
        k, n = int(round(test.statistic)), test.n_scored * self.layers
        return float(st.binom.sf(k, n, 0.5) + rng.random() * st.binom.pmf(k, n, 0.5))

    def tournament_probs(
        self, probs: np.ndarray, bits: np.ndarray, lengths: np.ndarray | None = None
    ) -> np.ndarray:
        """The winner's distribution: probs over a support, bits their tuple hashes.

        Several rows at once: ``probs`` and ``bits`` concatenate the rows' supports and
        ``lengths`` gives each row's (every one >= 1); each row is normalised and played
        on its own, in one pass per layer over all of them.
        """
        probs = np.asarray(probs, dtype=np.float64)
        lengths = np.array([probs.size] if lengths is None else lengths, dtype=np.int64)
        starts = _starts(lengths)
        # each row normalised: the support may leave out a (tiny) tail
        q = probs / np.repeat(np.add.reduceat(probs, starts), lengths)
        for g in self._g_planes(bits):
            qg = q * g
            e = np.minimum(1.0, np.add.reduceat(qg, starts))  # E[g] <= 1 (rounding)
            q *= np.repeat(1.0 - e, lengths)  # q * (1 + g - E[g]), as q (1 - E[g]) + q g
            q += qg
        return q

    def _g_planes(self, bits: np.ndarray) -> list[np.ndarray]:
        """g_l of each hash, one uint8 array per layer (layer l is bit l - 1)."""
        w = np.asarray(bits, dtype=np.uint64)
        if self.layers <= 32:
            w = w.astype(np.uint32)  # the low 32 bits: half the bytes to shift
        t = w.dtype.type
        return [((w >> t(b)) & t(1)).astype(np.uint8) for b in range(self.layers)]


def _starts(lengths: np.ndarray) -> np.ndarray:
    """Where each row begins in a concatenation of rows of these lengths."""
    return np.concatenate(([0], np.cumsum(lengths)[:-1]))


def repeated_windows(input_ids: torch.Tensor, h: int) -> list[bool]:
    """Per row: whether the last h tokens already occurred as a window earlier in the row."""
    if input_ids.shape[1] <= h:
        return [False] * input_ids.shape[0]
    w = input_ids.unfold(1, h, 1)  # [B, T - h + 1, h]
    last = w[:, -1:, :]
    return (w[:, :-1, :] == last).all(dim=-1).any(dim=-1).tolist()


class TournamentProcessor(KeyedProcessor):
    """Replaces each row's scores by the log of the tournament winner's distribution over
    the row's support (`supports`: its tokens after warping, less a tail of total
    probability <= TAIL_MASS); the sampler then draws from it."""

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
        # the supports from one float32 softmax for the batch (a row whose scores are all
        # -inf comes out NaN); the tournament then gets float64 probabilities of the
        # support only, exp(score - the row's top score), which it normalises per row
        x = scores.detach().to("cpu", torch.float32)
        probs = torch.softmax(x, dim=-1)
        play = ~torch.tensor(skip) & ~torch.isnan(probs[:, 0])
        if not play.any():
            return scores
        # every played row's support, concatenated: one tournament for the batch
        rows, cols = supports(probs, rows=play).nonzero(as_tuple=True)
        lengths = torch.bincount(rows, minlength=len(seeds))[play].numpy()
        row_seeds = np.array(seeds, dtype=np.uint64)[play.numpy()]
        sup = x[rows, cols].numpy().astype(np.float64)
        starts = _starts(lengths)
        sup -= np.repeat(np.maximum.reduceat(sup, starts), lengths)  # the top is in the support
        bits = pair_bits(np.repeat(row_seeds, lengths), cols.numpy())
        q = self._impl.tournament_probs(np.exp(sup), bits, lengths)
        out = torch.full_like(scores, float("-inf"))
        keep = (~play).to(out.device)
        out[keep] = scores[keep]
        with np.errstate(divide="ignore"):
            logq = torch.from_numpy(np.log(q)).to(out.dtype)
        out[rows.to(out.device), cols.to(out.device)] = logq.to(out.device)
        return out
