"""Pooled detection: the evidence of all answers of an account or campaign in one exact test.

A harvest is thousands of answers; a light mark is weak in one answer and strong over many.
`detect_pooled` groups answers (by account, campaign, or any label), scores each group's
answers with (window, token) tuples **de-duplicated across the group's answers** (and, for
schemes that leave repeated contexts unmarked, windows repeated within an answer skipped),
and tests the group with the scheme's exact null: H0 "this group's answers were produced
independently of the key". Under H0 the de-duplicated tuples carry independent key-derived
g-values / uniforms whatever the number of answers, so the pooled p-value is exact. Groups
are a family of tests: their p-values are Holm-adjusted (`distilltrace.stats.holm`).

`evidence_curve` gives the pooled p-value after the first 1, 2, ... answers (how many
answers a given strength needs for p <= 1e-6); `answers_needed` reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from distilltrace.errors import InputError
from distilltrace.marks.detect import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_SCORED,
    MarkTest,
    TupleScorer,
    encode_text,
    normalize_text,
    window_seeds_of_texts,
)
from distilltrace.marks.schemes import Watermark
from distilltrace.stats import holm


@dataclass(frozen=True)
class GroupTest:
    """One group's pooled test (all its answers, tuples de-duplicated across them)."""

    group: str
    n_texts: int
    test: MarkTest
    holm_adjusted: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "n_texts": self.n_texts,
            "test": self.test.to_dict(),
            "holm_adjusted_pvalue": self.holm_adjusted,
        }


@dataclass(frozen=True)
class PooledReport:
    """Pooled tests per group, Holm-adjusted across groups."""

    key: dict[str, Any]
    groups: tuple[GroupTest, ...]
    alpha: float
    n_flagged_holm: int
    null: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "alpha": self.alpha,
            "null": self.null,
            "n_groups": len(self.groups),
            "n_flagged_holm": self.n_flagged_holm,
            "groups": [g.to_dict() for g in self.groups],
        }


def _scorer(wm: Watermark, exclude: set[int]) -> TupleScorer:
    return TupleScorer(wm, exclude_seeds=exclude)


def _exclusions(wm, tokenizer, prompts, n, normalize) -> set[int]:
    if prompts is None:
        return set()
    if len(prompts) != n:
        raise InputError("prompts must align with texts")
    return window_seeds_of_texts(wm, tokenizer, [normalize_text(p, normalize) for p in prompts])


def detect_pooled(
    wm: Watermark,
    texts: Sequence[str],
    tokenizer: Any,
    groups: Sequence[str] | None = None,
    *,
    prompts: Sequence[str] | None = None,
    normalize: Sequence[str] = (),
    alpha: float = DEFAULT_ALPHA,
    min_scored: int = DEFAULT_MIN_SCORED,
) -> PooledReport:
    """One exact test per group of texts (one group 'all' when groups is None)."""
    wm.check_tokenizer(tokenizer, what="the detection tokenizer")
    if groups is not None and len(groups) != len(texts):
        raise InputError("groups must align with texts")
    labels = [str(g) for g in groups] if groups is not None else ["all"] * len(texts)
    exclude = _exclusions(wm, tokenizer, prompts, len(texts), normalize)
    masked = wm.impl.masks_repeated_windows()
    scorers: dict[str, TupleScorer] = {}
    counts: dict[str, int] = {}
    for label, text in zip(labels, texts, strict=True):
        sc = scorers.setdefault(label, _scorer(wm, exclude))
        sc.add_sequence(
            encode_text(tokenizer, normalize_text(text, normalize)), context_is_marked=masked
        )
        counts[label] = counts.get(label, 0) + 1
    tests = {g: sc.test(alpha, min_scored) for g, sc in scorers.items()}
    tested = [g for g, t in tests.items() if t.pvalue is not None]
    adj: dict[str, float] = {}
    flagged = 0
    if tested:
        hr = holm([tests[g].pvalue for g in tested], alpha=alpha)
        adj = dict(zip(tested, hr.adjusted, strict=True))
        flagged = int(sum(hr.reject))
    rows = tuple(GroupTest(g, counts[g], tests[g], adj.get(g)) for g in scorers)
    return PooledReport(wm.to_dict(), rows, alpha, flagged, wm.null_description())


def evidence_curve(
    wm: Watermark,
    token_ids: Sequence[Sequence[int]],
    *,
    exclude_seeds: set[int] | None = None,
    min_scored: int = DEFAULT_MIN_SCORED,
) -> list[float | None]:
    """log10 of the pooled p-value after the first k answers, k = 1..len(token_ids) (None
    while fewer than min_scored tuples are scored)."""
    sc = _scorer(wm, set(exclude_seeds or ()))
    masked = wm.impl.masks_repeated_windows()
    out: list[float | None] = []
    for ids in token_ids:
        sc.add_sequence(list(ids), context_is_marked=masked)
        out.append(sc.test(min_scored=min_scored).log10_pvalue)
    return out


def answers_needed(curve: Sequence[float | None], level: float = 1e-6) -> int | None:
    """The first k whose pooled p-value is <= level (None: never within the curve).

    Descriptive (how much marked text a strength needs): the minimum over k of a sequence
    of looks is not itself a valid p-value; a test fixes its answers first."""
    import math

    target = math.log10(level)
    for k, lp in enumerate(curve, 1):
        if lp is not None and lp <= target:
            return k
    return None
