"""Detect a watermark in token sequences and text, with exact p-values.

Null hypothesis H0: the scored tokens were produced independently of the secret key
(human text, an unmarked model, or text marked with another key). Under H0, and
because each distinct (window seed, token) tuple is scored only once, the scored
tuples carry independent key-derived uniforms, so

- green-list: the green count K ~ Binomial(n, gamma), p = P(K' >= K);
- Gumbel: the score S = sum -log(1 - u) ~ Gamma(n, 1), p = P(S' >= S);
- any registered scheme: its own `null` (see `marks.schemes.base`).

Scoring rules that keep H0 valid: score each (window, token) tuple once (repeated
n-grams would otherwise count the same coin many times), skip windows the caller
excludes (e.g. windows in a prompt the text may copy), optionally keep only windows
from an allowed set, and, when the text that forms the context was itself generated
with the key, skip windows that already occurred earlier in that context.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from distilltrace.errors import InputError
from distilltrace.marks.schemes import Watermark
from distilltrace.marks.stats import LN10, floor_p, format_p
from distilltrace.stats import holm

NORMALIZERS = ("nfkc", "whitespace", "lower")
DEFAULT_MIN_SCORED = 16
DEFAULT_ALPHA = 1e-3
NOT_ENOUGH = "not enough evidence"
MARKED = "marked"
NOT_MARKED = "no evidence of the mark"


def normalize_text(text: str, ops: Sequence[str] = ()) -> str:
    """Apply text normalisations in order: 'nfkc', 'whitespace' (collapse runs), 'lower'."""
    for op in ops:
        if op == "nfkc":
            text = unicodedata.normalize("NFKC", text)
        elif op == "whitespace":
            text = " ".join(text.split())
        elif op == "lower":
            text = text.lower()
        else:
            raise InputError(f"unknown normalisation {op!r}; choose from {NORMALIZERS}")
    return text


def null_description(wm: Watermark) -> str:
    """The null hypothesis and null distribution of a key's detector, in words."""
    return wm.null_description()


@dataclass(frozen=True)
class MarkTest:
    """One watermark test: counts, statistic, z-score and exact (floored) p-value."""

    key_id: str
    scheme: str
    n_tokens: int  # positions considered (after the first h tokens of each context)
    n_scored: int  # distinct (window, token) tuples scored
    n_duplicate: int  # skipped: (window, token) already scored
    n_excluded: int  # skipped: window excluded (e.g. occurs in a prompt)
    n_filtered: int  # skipped: window outside the allowed set
    n_repeated_window: int  # skipped: window seen earlier in a key-marked context
    statistic: float  # green count, or Gumbel score sum
    expected: float  # its mean under H0
    z: float | None
    pvalue: float | None  # None when there is not enough evidence
    log10_pvalue: float | None
    pvalue_floored: bool
    verdict: str
    alpha: float
    min_scored: int
    null: str = ""
    n_unselected: int = 0  # skipped: outside a key-independent selection (e.g. confident tokens)

    @property
    def pvalue_text(self) -> str:
        return format_p(self.pvalue, self.pvalue_floored)

    # The evidence protocol (distilltrace.evidence.Evidence): name, n, details.
    @property
    def name(self) -> str:
        return f"watermark:{self.key_id}"

    @property
    def n(self) -> int:
        return self.n_scored

    @property
    def details(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("statistic", "pvalue", "null", "n_scored"):
            d.pop(k)
        return d

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pvalue_text"] = self.pvalue_text
        d["name"], d["n"], d["details"] = self.name, self.n, self.details
        return d


@dataclass(frozen=True)
class Window:
    """Local evidence over a run of consecutive scored tuples (for locating spans)."""

    start_token: int
    end_token: int  # exclusive
    n_scored: int
    statistic: float
    z: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TupleScorer:
    """Accumulates per-tuple scores over one or many sequences with the H0-keeping rules."""

    wm: Watermark
    exclude_seeds: set[int] = field(default_factory=set)
    allowed_seeds: set[int] | None = None
    seen: set[tuple[int, int]] = field(default_factory=set)
    scores: list[float] = field(default_factory=list)
    n_tokens: int = 0
    n_duplicate: int = 0
    n_excluded: int = 0
    n_filtered: int = 0
    n_repeated_window: int = 0
    n_unselected: int = 0

    def add_sequence(
        self,
        ids: Sequence[int],
        *,
        start: int = 0,
        tokens: Sequence[int] | None = None,
        context_is_marked: bool = False,
        select: Sequence[bool] | None = None,
    ) -> list[tuple[int, float]]:
        """Score positions t >= max(h, start) of ids: window ids[t-h:t], token tokens[t]
        (default ids[t]). Returns (position, score) of the tuples scored here.

        context_is_marked: the context ids were generated with the key (open-model
        mode), so a window already seen earlier in ids is skipped.
        select: positions t with select[t] false are skipped (a selection that must not
        depend on the key, or H0 no longer holds exactly).
        """
        h = self.wm.context_width
        ids = [int(t) for t in ids]
        toks = ids if tokens is None else [int(t) for t in tokens]
        if len(toks) != len(ids) or (select is not None and len(select) != len(ids)):
            raise ValueError("tokens and select must align with ids")
        first = max(h, int(start))
        if len(ids) <= first:
            return []
        seeds = self.wm.sequence_seeds(ids)  # seeds[t - h] is the window before t
        # Only windows inside the scored (marked) part count as "seen earlier": the
        # unscored prefix (e.g. a prompt) was not generated with the key.
        earlier: set[int] = set()
        pos, sd, tk = [], [], []
        for t in range(first, len(ids)):
            s = int(seeds[t - h])
            self.n_tokens += 1
            if context_is_marked and s in earlier:
                self.n_repeated_window += 1
                continue
            earlier.add(s)
            if s in self.exclude_seeds:
                self.n_excluded += 1
                continue
            if self.allowed_seeds is not None and s not in self.allowed_seeds:
                self.n_filtered += 1
                continue
            if select is not None and not select[t]:
                self.n_unselected += 1
                continue
            key = (s, toks[t])
            if key in self.seen:
                self.n_duplicate += 1
                continue
            self.seen.add(key)
            pos.append(t)
            sd.append(s)
            tk.append(toks[t])
        if not pos:
            return []
        sc = self.wm.tuple_scores(np.array(sd, dtype=np.uint64), np.array(tk, dtype=np.int64))
        self.scores.extend(float(x) for x in sc)
        return list(zip(pos, (float(x) for x in sc), strict=True))

    def test(self, alpha: float = DEFAULT_ALPHA, min_scored: int = DEFAULT_MIN_SCORED) -> MarkTest:
        """The exact test over everything scored so far."""
        return mark_test(
            self.wm,
            self.scores,
            alpha=alpha,
            min_scored=min_scored,
            counts={
                "n_tokens": self.n_tokens,
                "n_duplicate": self.n_duplicate,
                "n_excluded": self.n_excluded,
                "n_filtered": self.n_filtered,
                "n_repeated_window": self.n_repeated_window,
                "n_unselected": self.n_unselected,
            },
        )


def score_statistic(wm: Watermark, n: int, statistic: float) -> tuple[float, float, float]:
    """(expected under H0, z-score, ln p-value) of a statistic over n scored tuples."""
    if n <= 0:
        return 0.0, 0.0, 0.0
    t = wm.impl.null(n, statistic)
    return t.expected, t.z, t.log_p


def mark_test(
    wm: Watermark,
    scores: Sequence[float],
    *,
    alpha: float = DEFAULT_ALPHA,
    min_scored: int = DEFAULT_MIN_SCORED,
    counts: dict[str, int] | None = None,
) -> MarkTest:
    """The exact test on per-tuple scores; fewer than min_scored gives 'not enough evidence'."""
    n = len(scores)
    stat = float(np.sum(scores)) if n else 0.0
    expected, z, log_p = score_statistic(wm, n, stat)
    c = {"n_tokens": n, **(counts or {})}
    return build_mark_test(wm, n, stat, expected, z if n else None, log_p, alpha=alpha,
                           min_scored=min_scored, null=null_description(wm), counts=c)  # fmt: skip


def build_mark_test(
    wm: Watermark,
    n: int,
    statistic: float,
    expected: float,
    z: float | None,
    log_p: float,
    *,
    alpha: float,
    min_scored: int,
    null: str,
    counts: dict[str, int] | None = None,
) -> MarkTest:
    """A MarkTest from a statistic over n tuples and its ln p-value: no p-value ('not
    enough evidence') below min_scored tuples; the skip counts default to 0."""
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    c = {"n_tokens": 0, "n_duplicate": 0, "n_excluded": 0, "n_filtered": 0}
    c |= {"n_repeated_window": 0, **(counts or {})}
    enough = n >= max(1, int(min_scored))
    p, floored = floor_p(log_p) if enough else (None, False)
    verdict = NOT_ENOUGH if p is None else (MARKED if p <= alpha else NOT_MARKED)
    return MarkTest(
        key_id=wm.key_id,
        scheme=wm.scheme,
        n_scored=n,
        statistic=statistic,
        expected=expected,
        z=z,
        pvalue=p,
        log10_pvalue=log_p / LN10 if p is not None else None,
        pvalue_floored=floored,
        verdict=verdict,
        alpha=alpha,
        min_scored=int(min_scored),
        null=null,
        **c,
    )


def windows_of(
    wm: Watermark, scored: Sequence[tuple[int, float]], width: int = 50, step: int | None = None
) -> list[Window]:
    """z-scores over runs of `width` consecutive scored tuples (descriptive: for locating
    marked spans, not a test; the maximum over windows is not a valid p-value)."""
    if width < 1:
        raise InputError("window width must be >= 1")
    step = step or max(1, width // 2)
    out = []
    n = len(scored)
    starts = list(range(0, max(1, n - width + 1), step)) if n >= width else ([0] if n else [])
    for a in starts:
        chunk = scored[a : a + width]
        m = len(chunk)
        stat = float(sum(s for _, s in chunk))
        _, z, _ = score_statistic(wm, m, stat)
        out.append(Window(chunk[0][0], chunk[-1][0] + 1, m, stat, z))
    return out


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a text under the key's tokenizer (no special tokens)."""
    if not isinstance(text, str):
        raise InputError(f"texts must be strings, got {type(text).__name__}")
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def window_seeds_of_texts(wm: Watermark, tokenizer: Any, texts: Iterable[str]) -> set[int]:
    """Seeds of every context window occurring in some texts (e.g. prompts to exclude)."""
    out: set[int] = set()
    for t in texts:
        ids = encode_text(tokenizer, t)
        out.update(int(s) for s in wm.sequence_seeds(ids))
    return out


@dataclass(frozen=True)
class TextDetection:
    """Detection on one text: the test, and windowed local z-scores."""

    index: int
    test: MarkTest
    windows: tuple[Window, ...] = ()
    holm_adjusted: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "test": self.test.to_dict(),
            "holm_adjusted_pvalue": self.holm_adjusted,
            "windows": [w.to_dict() for w in self.windows],
        }


@dataclass(frozen=True)
class DetectionReport:
    """Detection over a collection of texts: per text (Holm across texts) and pooled."""

    key: dict[str, Any]
    pooled: MarkTest  # one test over all texts, (window, token) de-duplicated across them
    texts: tuple[TextDetection, ...]
    normalize: tuple[str, ...]
    alpha: float
    n_flagged_holm: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "alpha": self.alpha,
            "normalize": list(self.normalize),
            "pooled": self.pooled.to_dict(),
            "n_texts": len(self.texts),
            "n_flagged_holm": self.n_flagged_holm,
            "texts": [t.to_dict() for t in self.texts],
        }


def detect_texts(
    wm: Watermark,
    texts: Sequence[str],
    tokenizer: Any,
    *,
    prompts: Sequence[str] | None = None,
    normalize: Sequence[str] = (),
    alpha: float = DEFAULT_ALPHA,
    min_scored: int = DEFAULT_MIN_SCORED,
    window: int = 50,
) -> DetectionReport:
    """Test each text and all texts pooled for the mark; windows in prompts are excluded."""
    wm.check_tokenizer(tokenizer, what="the detection tokenizer")
    texts = [normalize_text(t, normalize) for t in texts]
    exclude: set[int] = set()
    if prompts is not None:
        if len(prompts) != len(texts):
            raise InputError("prompts must align with texts")
        exclude = window_seeds_of_texts(
            wm, tokenizer, [normalize_text(p, normalize) for p in prompts]
        )
    pooled = TupleScorer(wm, exclude_seeds=exclude)
    per: list[tuple[MarkTest, list[Window]]] = []
    masked = wm.impl.masks_repeated_windows()  # windows repeated in a text were not marked
    for t in texts:
        ids = encode_text(tokenizer, t)
        one = TupleScorer(wm, exclude_seeds=exclude)
        scored = one.add_sequence(ids, context_is_marked=masked)
        pooled.add_sequence(ids, context_is_marked=masked)
        per.append((one.test(alpha, min_scored), windows_of(wm, scored, window)))
    pvals = [m.pvalue for m, _ in per]
    idx = [i for i, p in enumerate(pvals) if p is not None]
    adj: dict[int, float] = {}
    flagged = 0
    if idx:
        hr = holm([pvals[i] for i in idx], alpha=alpha)
        adj = dict(zip(idx, hr.adjusted, strict=True))
        flagged = int(sum(hr.reject))
    return DetectionReport(
        key=wm.to_dict(),
        pooled=pooled.test(alpha, min_scored),
        texts=tuple(TextDetection(i, m, tuple(w), adj.get(i)) for i, (m, w) in enumerate(per)),
        normalize=tuple(normalize),
        alpha=alpha,
        n_flagged_holm=flagged,
    )
