"""Membership of served answers: did the suspect train on the exact answers we served?

A provider knows what it served: each harvested exchange is a prompt x_i and the answer
y_i our model sampled for it. It can draw k fresh answers y_i1..y_ik to the same prompt
from the same model under the same settings (temperature, length cap, watermark key),
with fresh randomness. Whatever the suspect is, if its weights do not depend on the
served answers, then given the prompts (and the key) the k + 1 answers of each exchange
are exchangeable: the served one is just one of k + 1 independent draws from the same
distribution. So any score computed the same way for each of them puts the served answer
at a uniformly random rank among its k + 1, independently across exchanges.

The score is the suspect's per-character log-likelihood of the answer relative to our
model's, (log p_S(y | x) - log p_R(y | x)) / len(y): a model trained on y_i gives it more
probability than our model's own draws, while the reference term removes how likely an
answer is in itself (a short, generic answer is likely under every model). Any fixed
score keeps the test valid; this one is where training on y_i shows.

The test (exact, no resampling): rank r_i in {0, ..., k} of the served answer among its
exchange's k + 1 answers (the number of fresh answers scoring below it; ties broken in a
seeded random order, so the rank stays uniform), T = sum_i r_i, and p = P(T' >= T) for T' a sum
of n independent Uniform{0, ..., k}, counted exactly with integers. With k = 1 this is
the sign test.

What the null needs, stated: the fresh answers are drawn as the served ones were (same
model and weights, chat format, temperature, top-p, length cap and key; only the seed
differs), and exchanges that share one draw are counted once (the caller de-duplicates
identical (prompt, answer) pairs). Floating-point differences between the serving batch
and the build's batch are the one departure we know of; `benchmarks/custody_membership.py`
measures the null on models that never saw the answers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from distilltrace.stats import PVALUE_FLOOR

NAME = "harvest_membership"
NULL = (
    "the suspect's weights do not depend on the answers we served to these exchanges: "
    "given each prompt, the served answer and k fresh answers drawn from our model under "
    "the same settings are exchangeable, so the served answer's rank by the suspect's "
    "likelihood (relative to our model's) is uniform on {0, ..., k}, independently across "
    "exchanges"
)
FRESH_SEED = 1_000_003  # our model's fresh answer j is drawn with seed FRESH_SEED + j
MIN_P = PVALUE_FLOOR  # the smallest p-value reported (a float64 floor, as every test's)


@dataclass(frozen=True)
class MembershipResult:
    """The rank test of served answers against fresh ones (the evidence protocol)."""

    n: int  # exchanges
    k: int  # fresh answers per exchange
    rank_sum: int  # T: sum of the served answers' ranks, each in 0..k
    pvalue: float
    n_ties: int  # exchanges whose served score equals a fresh one (broken at random)
    mean_margin: float  # mean over exchanges of served score minus mean fresh score
    n_above_all: int = 0  # exchanges whose served score is above every fresh one
    extra: dict[str, Any] = field(default_factory=dict)

    name = NAME
    null = NULL

    @property
    def statistic(self) -> float:
        """The served answers' mean rank, scaled to [0, 1] (0.5 expected under the null)."""
        return self.rank_sum / (self.n * self.k) if self.n else float("nan")

    @property
    def details(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "rank_sum": self.rank_sum,
            "expected_rank_sum": self.n * self.k / 2,
            "n_ties": self.n_ties,
            "mean_margin": self.mean_margin,
            "served_beats_every_fresh": self.n_above_all,
            **self.extra,
        }

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "null": self.null, "statistic": self.statistic,
                "pvalue": self.pvalue, "n": self.n, "details": self.details}  # fmt: skip


def rank_sum_sf(t: int, n: int, k: int) -> float:
    """P(sum of n independent Uniform{0..k} >= t), exactly (integer counts of the
    (k + 1)^n equally likely rank vectors), floored at MIN_P."""
    if t <= 0:
        return 1.0
    if t > n * k:
        return 0.0
    counts = [1]  # coefficients of (1 + x + ... + x^k)^m, m = 0..n
    for _ in range(n):
        prefix = [0]
        for c in counts:
            prefix.append(prefix[-1] + c)
        width = len(counts) + k
        counts = [prefix[min(j + 1, len(counts))] - prefix[max(0, j - k)] for j in range(width)]
    p = Fraction(sum(counts[t:]), (k + 1) ** n)
    return max(float(p), MIN_P)


def served_ranks(
    served: Sequence[float], fresh: Sequence[Sequence[float]], seed: int
) -> tuple[np.ndarray, int]:
    """Each served score's rank among its exchange's fresh scores, and the number of
    exchanges with a tie. Ties are broken at random (seeded): with t fresh scores equal to
    the served one, its rank is the count strictly below plus a uniform draw from
    {0, ..., t}, its place in a random order of the t + 1 tied answers, so the rank stays
    uniform on {0, ..., k} under the null."""
    s = np.asarray(served, dtype=float)
    f = np.asarray(fresh, dtype=float).reshape(len(s), -1)
    below = (f < s[:, None]).sum(axis=1)
    tied = (f == s[:, None]).sum(axis=1)
    u = np.random.default_rng(seed).integers(0, tied + 1)
    return (below + u).astype(int), int((tied > 0).sum())


def membership_test(
    served: Sequence[float], fresh: Sequence[Sequence[float]], seed: int = 0
) -> MembershipResult:
    """The exact rank test of `served` scores (one per exchange) against `fresh` scores
    (k per exchange, the same k for every exchange); see the module docstring.

    H0: each served score is exchangeable with its exchange's k fresh scores,
    independently across exchanges. H1 (one-sided): served answers score higher."""
    s = np.asarray(served, dtype=float)
    f = np.asarray(fresh, dtype=float)
    if f.ndim != 2 or len(f) != len(s) or f.shape[1] < 1:
        raise ValueError("fresh scores must be one row of k >= 1 scores per served score")
    if not (np.isfinite(s).all() and np.isfinite(f).all()):
        raise ValueError("scores must be finite")
    n, k = len(s), f.shape[1]
    if n == 0:
        return MembershipResult(0, k, 0, 1.0, 0, float("nan"))
    ranks, ties = served_ranks(s, f, seed)
    t = int(ranks.sum())
    margin = float(np.mean(s - f.mean(axis=1)))
    above = int((f < s[:, None]).all(axis=1).sum())
    return MembershipResult(n, k, t, rank_sum_sf(t, n, k), ties, margin, above)


def draw_fresh(
    model: Any,
    prompts: Sequence[str],
    settings: Sequence[Mapping[str, Any]],
    k: int,
    seed: int,
    processors: Sequence[Any] = (),
    systems: Sequence[str] | None = None,
) -> list[list[str]]:
    """k fresh answers per prompt from our model, each under its exchange's serving
    settings ("temperature", "top_p", "max_tokens"), through `processors` (the server's
    own, then the watermark's, as it served them); draw j uses seed `seed + j` (one
    generate call per setting group and draw). `systems`: the system prompt each exchange
    was served after ("" for none); those answers are drawn after the same system prompt,
    encoded as serve encodes a chat request (`draw_after_system`)."""
    systems = list(systems) if systems is not None else [""] * len(prompts)
    if len(systems) != len(prompts):
        raise ValueError("one system prompt (or '') per prompt is needed")
    fresh: list[list[str]] = [[] for _ in prompts]
    groups: dict[tuple, list[int]] = {}
    for i, st in enumerate(settings):
        key = (st["temperature"], st["top_p"], st["max_tokens"], bool(systems[i]))
        groups.setdefault(key, []).append(i)
    for j in range(k):
        for (temp, top_p, most, after_system), idx in groups.items():
            kw = dict(max_new_tokens=int(most), temperature=float(temp), top_p=float(top_p),
                      seed=seed + j, logits_processors=list(processors) or None)  # fmt: skip
            ps = [prompts[i] for i in idx]
            if after_system:
                texts = draw_after_system(model, ps, [systems[i] for i in idx], **kw)
            else:
                texts = [g.text for g in model.generate(ps, chat=True, **kw)]
            for i, t in zip(idx, texts, strict=True):
                fresh[i].append(t)
    return fresh


def draw_after_system(
    model: Any, prompts: Sequence[str], systems: Sequence[str], **kw: Any
) -> list[str]:
    """Answers to (system, user) conversations, encoded and seeded as `distilltrace serve`
    encodes and seeds a chat request (message content never becomes special tokens; the
    sampler is seeded by the request's seed and the conversation as JSON), so a draw with
    the seed a request was served with is that request's answer (tested against a
    running server). Needs a local chat model (a tokenizer and `generate_encoded`)."""
    from distilltrace.errors import CapabilityError

    if getattr(model, "tokenizer", None) is None or not callable(
        getattr(model, "generate_encoded", None)
    ):
        raise CapabilityError(
            f"{model.info.name}: fresh answers after a system prompt need our model local "
            "(its tokenizer and weights)"
        )
    from distilltrace.serve.prompts import encode_chat

    convs = _conversations(prompts, systems)
    encoded = [encode_chat(model, c) for c in convs]
    labels = [json.dumps(c, ensure_ascii=False) for c in convs]  # serve's label
    out = model.generate_encoded(labels, encoded, **kw)
    return [g.text for g, _ in out]


def _conversations(prompts: Sequence[str], systems: Sequence[str]) -> list[list[dict[str, str]]]:
    """The chat request of each exchange: its system prompt ("" for none), then the user."""
    return [([{"role": "system", "content": s}] if s else []) + [{"role": "user", "content": p}]
            for p, s in zip(prompts, systems, strict=True)]  # fmt: skip


def chat_input_tokens(model: Any, prompts: Sequence[str], systems: Sequence[str]) -> list[int]:
    """The prompt tokens `distilltrace serve` bills for each (system, user) request to our
    model (its usage.prompt_tokens: the conversation through the chat template, content
    never special tokens), to set against a log's `input_tokens` (membership rules 3)."""
    from distilltrace.serve.prompts import encode_chat

    return [len(encode_chat(model, c)) for c in _conversations(prompts, systems)]


def our_counts(
    model: Any, exchanges: Sequence[Mapping[str, Any]], contexts: Sequence[Mapping[str, Any]]
) -> dict[str, int]:
    """Request id -> `chat_input_tokens` of each exchange whose log row billed a count
    (`custody.logs.exchange_contexts`: "input_tokens" not None)."""
    todo = [i for i, c in enumerate(contexts) if c["input_tokens"] is not None]
    counts = chat_input_tokens(model, [str(exchanges[i]["prompt"]) for i in todo],
                               [str(contexts[i]["system"]) for i in todo])  # fmt: skip
    return {str(exchanges[i]["request_id"]): n for i, n in zip(todo, counts, strict=True)}


def exchange_logprobs(
    model: Any, prompts: Sequence[str], answers: Sequence[Sequence[str]]
) -> list[list[float]]:
    """Each answer's total log-probability under `model` (chat format, as served), per
    exchange (served answer first, then its fresh ones), in one `score` call."""
    flat_p = [p for p, a in zip(prompts, answers, strict=True) for _ in a]
    flat_a = [x for a in answers for x in a]
    lp = [c.total_logprob for c in model.score(flat_p, flat_a, chat=True)]
    out, i = [], 0
    for a in answers:
        out.append(lp[i : i + len(a)])
        i += len(a)
    return out


def score_exchanges(
    suspect: Any, reference: Any, prompts: Sequence[str], answers: Sequence[Sequence[str]]
) -> tuple[list[list[float]], list[list[float]]]:
    """`exchange_logprobs` under the suspect and under our model: the test's score is
    their difference per character (`per_char_score`)."""
    return (
        exchange_logprobs(suspect, prompts, answers),
        exchange_logprobs(reference, prompts, answers),
    )


def per_char_score(suspect_lp: float, reference_lp: float, text: str) -> float:
    """(log p_S - log p_R) / characters; 0 for an empty answer (every model agrees)."""
    if not text:
        return 0.0
    d = (float(suspect_lp) - float(reference_lp)) / len(text)
    return d if math.isfinite(d) else 0.0


def test_logprobs(
    suspect_lp: Sequence[Sequence[float]],
    reference_lp: Sequence[Sequence[float]],
    answers: Sequence[Sequence[str]],
    seed: int = 0,
) -> MembershipResult:
    """`membership_test` on recorded log-probabilities: per exchange, the served answer
    first, then its fresh ones, each with the suspect's and our model's total."""
    sc = [[per_char_score(a, b, t) for a, b, t in zip(s, r, ans, strict=True)]
          for s, r, ans in zip(suspect_lp, reference_lp, answers, strict=True)]  # fmt: skip
    return membership_test([x[0] for x in sc], [x[1:] for x in sc], seed=seed)


test_logprobs.__test__ = False  # not a pytest test
