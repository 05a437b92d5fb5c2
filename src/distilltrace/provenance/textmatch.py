"""Tokenizer-free text comparison: normalised words and word-prefix agreement.

Models with different tokenizers cannot be compared token by token, so continuations are
compared as text: lower-cased, Unicode-normalised (NFKC), punctuation split from words,
whitespace collapsed. A continuation cut by the token limit loses its last (possibly
partial) word, so a half-emitted word never counts as a disagreement.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def normalise(text: str) -> str:
    """NFKC, lower case, collapsed whitespace."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def words(text: str, *, truncated: bool = False, alnum_only: bool = False) -> list[str]:
    """Normalised words and punctuation marks (only words if `alnum_only`); drops the
    last word if `truncated` (it may be cut in the middle)."""
    w = _WORD.findall(normalise(text))
    if truncated:
        while w and not w[-1][0].isalnum():
            w.pop()
        if w:
            w = w[:-1]
    if alnum_only:
        w = [t for t in w if t[0].isalnum()]
    return w


def prefix_agreement(a: Sequence[str], b: Sequence[str], k: int = 8) -> float:
    """Length of the common prefix of a and b (words or characters) over the first k
    units, in [0, 1].

    The denominator is min(k, max(len a, len b)), so two identical short answers agree
    fully and a short answer that is a prefix of a long one does not. Two empty answers
    agree 0: shared silence or degenerate output is not evidence of shared training.
    """
    if k < 1:
        raise ValueError("k must be >= 1")
    a = list(a[:k])
    b = list(b[:k])
    if not a or not b:
        return 0.0
    denom = min(k, max(len(a), len(b)))
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n / denom


def comparable(text: str, *, truncated: bool = False, unit: str = "char") -> list[str]:
    """A continuation as the sequence its agreement is measured on: characters of the
    normalised text (unit="char", robust to misspellings and to where tokenizers split)
    or normalised words (unit="word"). A truncated text loses its last, partial word."""
    w = words(text, truncated=truncated, alnum_only=True)
    if unit == "word":
        return w
    if unit == "char":
        return list(" ".join(w))
    raise ValueError(f"unit must be 'char' or 'word', got {unit!r}")


def ngrams(tokens: Sequence[str], n_max: int = 2) -> list[str]:
    """Word unigrams up to n_max-grams (space-joined), punctuation-only unigrams dropped."""
    out = [t for t in tokens if any(ch.isalnum() for ch in t)]
    for n in range(2, n_max + 1):
        out.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return out
