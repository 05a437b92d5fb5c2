"""Text-quality and task measures for marks benchmarks: distinct-n, self-BLEU across seeds,
GSM8K exact match, and perplexity under a judge model.

Plain, dependency-free implementations (word-level n-grams) so the numbers are the same
on every machine; `benchmarks/marks_quality.py` and `benchmarks/marks_anchors.py` use them.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distilltrace import jsonl
from distilltrace.errors import InputError

GSM8K_DEFAULT = Path("/work/shared/data/prompts/gsm8k-test.jsonl")
GSM8K_INSTRUCTION = "Solve the problem step by step. End with the final answer as '#### <number>'."
_NUM = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _words(text: str) -> list[str]:
    return text.lower().split()


def _ngrams(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


def distinct_n(texts: Sequence[str], n: int = 2) -> float:
    """Distinct n-grams over all n-grams of the texts (word level; 0 when there are none)."""
    grams = [g for t in texts for g in _ngrams(_words(t), n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def bleu(hyp: str, refs: Sequence[str], max_n: int = 4) -> float:
    """Sentence BLEU-max_n of hyp against refs (clipped counts, brevity penalty, add-one
    smoothing of the n > 1 precisions, as in Lin and Och 2004)."""
    h = _words(hyp)
    rs = [_words(r) for r in refs]
    if not h or not any(rs):
        return 0.0
    logs = 0.0
    for n in range(1, max_n + 1):
        hc = Counter(_ngrams(h, n))
        maxref: Counter = Counter()
        for r in rs:
            for g, c in Counter(_ngrams(r, n)).items():
                maxref[g] = max(maxref[g], c)
        match = sum(min(c, maxref[g]) for g, c in hc.items())
        total = max(0, len(h) - n + 1)
        if n == 1:
            if match == 0:
                return 0.0
            logs += math.log(match / total)
        else:
            logs += math.log((match + 1) / (total + 1))
    closest = min((len(r) for r in rs), key=lambda L: (abs(L - len(h)), L))
    bp = 1.0 if len(h) > closest else math.exp(1 - closest / len(h))
    return bp * math.exp(logs / max_n)


def self_bleu(groups: Sequence[Sequence[str]]) -> float:
    """Mean BLEU of each text against the other texts of its group (answers to one prompt
    under different seeds); 1 = the seeds give the same text, lower = more diverse."""
    vals = []
    for g in groups:
        for i, t in enumerate(g):
            others = [x for j, x in enumerate(g) if j != i]
            if others:
                vals.append(bleu(t, others))
    if not vals:
        raise InputError("self-BLEU needs groups of at least two texts")
    return float(sum(vals) / len(vals))


def read_gsm8k(path: str | Path = GSM8K_DEFAULT, n: int | None = None) -> list[dict[str, str]]:
    """GSM8K rows as {'question', 'answer'} with the gold number after '####'."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"GSM8K file {p} not found")
    rows = []
    for i, line in enumerate(jsonl.lines(p.read_text(encoding="utf-8")), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            gold = d["answer"].split("####")[-1].strip().replace(",", "")
        except (json.JSONDecodeError, KeyError, AttributeError):
            raise InputError(f"{p}:{i}: not a GSM8K row (question, answer)") from None
        rows.append({"question": d["question"], "answer": gold})
        if n is not None and len(rows) >= n:
            break
    return rows


def gsm8k_prediction(text: str) -> str | None:
    """The number after the last '####', else the last number in the text."""
    tail = text.split("####")[-1] if "####" in text else text
    nums = _NUM.findall(tail) or _NUM.findall(text)
    if not nums:
        return None
    v = nums[-1].replace(",", "").rstrip(".")
    return v


def gsm8k_correct(text: str, gold: str) -> bool:
    pred = gsm8k_prediction(text)
    if pred is None:
        return False
    try:
        return math.isclose(float(pred), float(gold), rel_tol=0, abs_tol=1e-6)
    except ValueError:
        return False


def perplexity(judge: Any, prompts: Sequence[str], texts: Sequence[str]) -> float:
    """exp(mean negative log-likelihood per token) of texts given prompts, under judge."""
    return perplexity_by_group(judge, [list(zip(prompts, texts, strict=True))])[0]


def perplexity_by_group(
    judge: Any, groups: Sequence[Sequence[tuple[str, str]]]
) -> tuple[float, list[float]]:
    """`perplexity` of all (prompt, text) pairs together and of each group, from one
    scoring pass; empty texts are left out."""
    pairs = [(k, p, t) for k, g in enumerate(groups) for p, t in g if t.strip()]
    if not pairs:
        raise InputError("perplexity needs at least one non-empty text")
    scored = judge.score([p for _, p, _ in pairs], [t for _, _, t in pairs])
    lp, n = [0.0] * len(groups), [0] * len(groups)
    for (k, _, _), s in zip(pairs, scored, strict=True):
        lp[k] += s.total_logprob
        n[k] += s.n_tokens
    per = [math.exp(-a / max(1, b)) for a, b in zip(lp, n, strict=True)]
    return math.exp(-sum(lp) / max(1, sum(n))), per
