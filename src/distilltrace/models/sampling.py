"""The sampling order every local generation follows, as transformers logits processors.

Order per step: temperature and top-p warp the scores, then the caller's processors run,
then a token is picked: argmax at temperature 0, else one uniform draw per prompt from a
generator seeded by (seed, prompt), inverted through the softmax CDF. The picker returns
scores that are -inf everywhere but the chosen token, so a greedy decoder emits it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import torch

from distilltrace.errors import InputError


def prompt_seed(seed: int, prompt: str, chat: bool) -> int:
    """The 63-bit seed of one prompt's sampler: a function of (seed, prompt, chat) only."""
    h = hashlib.sha256(f"{int(seed)}\x00{int(chat)}\x00{prompt}".encode()).digest()
    return int.from_bytes(h[:8], "big") & ((1 << 63) - 1)


def check_sampling(max_new_tokens: int, temperature: float, top_p: float) -> None:
    """Reject out-of-range sampling parameters with one readable line."""
    if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise InputError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
    if not (isinstance(temperature, int | float) and math.isfinite(temperature)) or temperature < 0:
        raise InputError(f"temperature must be a finite number >= 0, got {temperature!r}")
    if not (isinstance(top_p, int | float) and 0 < top_p <= 1):
        raise InputError(f"top_p must be in (0, 1], got {top_p!r}")


def warp(scores: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Divide by the temperature, then keep the smallest top-p nucleus (others -inf)."""
    scores = scores.float()
    if temperature > 0 and temperature != 1.0:
        scores = scores / temperature
    if top_p < 1.0:
        sorted_scores, idx = torch.sort(scores, dim=-1, descending=True)
        probs = torch.softmax(sorted_scores, dim=-1)
        cum = torch.cumsum(probs, dim=-1)
        remove = (cum - probs) >= top_p  # keep tokens until the mass before them reaches top_p
        remove[..., 0] = False
        mask = torch.zeros_like(remove).scatter(-1, idx, remove)
        scores = scores.masked_fill(mask, float("-inf"))
    return scores


class WarpProcessor:
    """Temperature and top-p, applied before the caller's processors."""

    def __init__(self, temperature: float, top_p: float):
        self.temperature = float(temperature)
        self.top_p = float(top_p)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return warp(scores, self.temperature, self.top_p)


def pick_tokens(scores: torch.Tensor, generators: Sequence[torch.Generator] | None) -> torch.Tensor:
    """Argmax per row (generators None) or one seeded inverse-CDF draw per row."""
    scores = scores.float()
    if generators is None:
        return torch.argmax(scores, dim=-1)
    out = torch.empty(scores.shape[0], dtype=torch.long)
    for i, g in enumerate(generators):
        row = scores[i]
        u = torch.rand((), generator=g, dtype=torch.float64)
        if not torch.isfinite(row).any():
            out[i] = 0
            continue
        probs = torch.softmax(row.double(), dim=-1)
        cdf = torch.cumsum(probs, dim=-1)
        j = int(torch.searchsorted(cdf, u * cdf[-1], right=True).item())
        j = min(j, row.shape[0] - 1)
        if probs[j] <= 0:  # rounding at the top end: never land on a forbidden token
            j = int(torch.argmax(row).item())
        out[i] = j
    return out


class PickProcessor:
    """The last processor: decides the token and forces a greedy decoder to emit it."""

    def __init__(self, generators: Sequence[torch.Generator] | None):
        self.generators = generators

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        chosen = pick_tokens(scores, self.generators).to(scores.device)
        forced = torch.full_like(scores, float("-inf"))
        forced.scatter_(1, chosen.unsqueeze(1), 0.0)
        return forced


def make_generators(seed: int, prompts: Sequence[str], chat: bool) -> list[torch.Generator]:
    """One CPU generator per prompt, seeded by prompt_seed."""
    gens = []
    for p in prompts:
        g = torch.Generator(device="cpu")
        g.manual_seed(prompt_seed(seed, p, chat))
        gens.append(g)
    return gens
