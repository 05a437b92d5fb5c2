"""Degenerate or off-format answers: empty, repetitive, or echoing the chat template or the
prompt. Used to warn when a suspect answers badly (the budget would be spent on answers
that agree with nothing) and to pick the prompt format it answers coherently in.

The detectors read one answer at a time and no other model's answer, so choosing a format
by them uses no suspect-vs-reference or suspect-vs-control evidence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from distilltrace.provenance.textmatch import normalise, words

# Chat-template markers of common families (ChatML, Gemma, Llama 3, Zephyr, Mistral).
_MARKERS = re.compile(
    r"<\|im_start\|>|<\|im_end\|>|<start_of_turn>|<end_of_turn>|<\|start_header_id\|>|"
    r"<\|eot_id\|>|<\|user\|>|<\|assistant\|>|<\|system\|>|\[INST\]|\[/INST\]|"
    r"^\s*(user|assistant|system|model)\s*\n",
    re.IGNORECASE,
)
MIN_ALNUM = 2  # an answer with fewer letters/digits is empty
MIN_WORDS_REPEAT = 8  # repetition is judged on answers of at least this many words
DISTINCT_TRIGRAMS = 0.5  # below this share of distinct word 3-grams: repetitive
SAME_WORD_RUN = 4  # the same word this many times in a row: repetitive
SAME_CHAR_RUN = 12  # the same non-space character this many times in a row: repetitive
ECHO_CHARS = 24  # an answer opening with this much of the prompt echoes it


def _repetitive(text: str) -> bool:
    w = words(text, alnum_only=True)
    if re.search(r"(\S)\1{" + str(SAME_CHAR_RUN - 1) + ",}", text):
        return True
    if any(len(set(w[i : i + SAME_WORD_RUN])) == 1 for i in range(len(w) - SAME_WORD_RUN + 1)):
        return True
    if len(w) < MIN_WORDS_REPEAT:
        return False
    tri = [tuple(w[i : i + 3]) for i in range(len(w) - 2)]
    return len(set(tri)) / len(tri) < DISTINCT_TRIGRAMS


def _echo(text: str, prompt: str) -> bool:
    if _MARKERS.search(text):
        return True
    p, t = normalise(prompt), normalise(text)
    n = min(len(p), ECHO_CHARS)
    return n >= 12 and t.startswith(p[:n])


def degenerate_reason(text: str, prompt: str = "") -> str | None:
    """Why an answer is degenerate ("empty", "template echo", "repetition"), or None."""
    if sum(ch.isalnum() for ch in text) < MIN_ALNUM:
        return "empty"
    if _echo(text, prompt):
        return "template echo"
    if _repetitive(text):
        return "repetition"
    return None


@dataclass
class Degeneracy:
    """How many answers of one model are degenerate, by reason, with a few examples."""

    n: int
    rate: float
    reasons: dict[str, int] = field(default_factory=dict)
    examples: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def degeneracy(texts: Sequence[str], prompts: Sequence[str], n_examples: int = 3) -> Degeneracy:
    """The degenerate share of answers (`texts[i]` answers `prompts[i]`)."""
    reasons: dict[str, int] = {}
    ex = []
    for t, p in zip(texts, prompts, strict=True):
        why = degenerate_reason(t, p)
        if why:
            reasons[why] = reasons.get(why, 0) + 1
            if len(ex) < n_examples:
                ex.append({"prompt": p, "answer": t[:200], "reason": why})
    n = len(texts)
    return Degeneracy(n, sum(reasons.values()) / n if n else 0.0, reasons, ex)
