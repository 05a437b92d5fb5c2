"""First-words agreement: the simple baseline of issue #18, as a registered test.

On probe prompts x drawn i.i.d. from the probe distribution D, A(x) = 1 when the first k
normalised words (default 3) of the suspect's greedy answer equal the reference's, and
B_C(x) = 1 when those of control C's answer equal the reference's. An empty answer agrees
with nothing (shared silence is not evidence of shared training).

Null hypothesis, per control C: P_D(A = 1) <= P_D(B_C = 1), i.e. the suspect's answers
start like the reference's no more often than the control's do. Exact McNemar test:
given the number of discordant prompts n = n10 + n01 (n10: only the suspect agrees with
the reference, n01: only the control does), n10 is Binomial(n, q) with q <= 1/2 under the
null, so p = P(Binomial(n, 1/2) >= n10) is valid (super-uniform). The suspect must beat
every control: p = max over controls (intersection-union test, Berger 1982).

Unlike `greedy_agreement`, the comparison is control-to-reference: it asks whether the
suspect is closer to the reference than a control is, which a control of much higher
capability (closer to any strong reference) can defeat; see `capability.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

from distilltrace.provenance.config import ProvenanceConfig
from distilltrace.provenance.paired import intersection_union
from distilltrace.provenance.registry import QueryNeeds, TestInputs
from distilltrace.provenance.result import TestResult, skipped_test
from distilltrace.provenance.textmatch import words
from distilltrace.stats import floored

NAME = "first_words"
NULL = (
    "For some control C, P_x[first k words of S = those of R] <= P_x[first k words of C = "
    "those of R] over the probe distribution (greedy answers, k = 3 by default): the "
    "suspect's answers start like the reference's no more often than a control's do."
)


@dataclass(frozen=True)
class McNemarResult:
    """One-sided exact McNemar test of P(A) > P(B) from paired 0/1 outcomes."""

    n: int  # paired prompts
    n10: int  # A = 1, B = 0
    n01: int  # A = 0, B = 1
    rate_a: float
    rate_b: float
    pvalue: float

    def to_dict(self) -> dict:
        return asdict(self)


def first_words(text: str, k: int = 3) -> tuple[str, ...]:
    """The first k normalised words (letters and digits only) of a text."""
    return tuple(words(text, alnum_only=True)[:k])


def starts_alike(a: str, b: str, k: int = 3) -> bool:
    """Whether two answers share their first k words (False if either is empty)."""
    fa, fb = first_words(a, k), first_words(b, k)
    return bool(fa) and fa == fb


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool]) -> McNemarResult:
    """Exact one-sided McNemar test of H0: P(a) <= P(b) on paired outcomes (see module)."""
    from scipy.stats import binomtest

    if len(a) != len(b):
        raise ValueError("paired outcomes of different lengths")
    n10 = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    n01 = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    n = len(a)
    p = 1.0
    if n10 + n01:
        p = float(binomtest(n10, n10 + n01, 0.5, alternative="greater").pvalue)
    ra = sum(map(bool, a)) / n if n else 0.0
    rb = sum(map(bool, b)) / n if n else 0.0
    return McNemarResult(n, n10, n01, ra, rb, floored(p))


def first_words_test(
    s_texts: Sequence[str],
    r_texts: Sequence[str],
    c_texts: Mapping[str, Sequence[str]],
    k: int = 3,
) -> TestResult:
    """The test on paired greedy answers (same prompts, same order, for every model)."""
    a = [starts_alike(s, r, k) for s, r in zip(s_texts, r_texts, strict=True)]
    per = {}
    for c, texts in c_texts.items():
        b = [starts_alike(x, r, k) for x, r in zip(texts, r_texts, strict=True)]
        per[c] = mcnemar_exact(a, b).to_dict()
    p = intersection_union({c: v["pvalue"] for c, v in per.items()})
    best = max((v["rate_b"] for v in per.values()), default=0.0)
    rate = sum(a) / len(a) if a else 0.0
    return TestResult(
        name=NAME,
        null=NULL,
        pvalue=p if a else 1.0,
        n=len(a),
        effect=rate - best if a else None,
        effect_label="P(S starts like R) minus the highest P(control starts like R)",
        per_control=per,
        details={"k_words": k, "agreement_with_reference": rate, "method": "exact McNemar, max"},
    )


class FirstWordsAgreement:
    """The registered test: greedy answers of every model on the first `n_first_words`
    prompts of the probe pool (its own suspect queries, shared by all references)."""

    name = NAME
    null = NULL

    def queries(self, cfg: ProvenanceConfig) -> QueryNeeds:
        return QueryNeeds(suspect_queries=cfg.n_first_words)

    def run(self, data: TestInputs) -> TestResult | None:
        prompts = list(data.pool[: data.cfg.n_first_words])
        if not prompts:
            return skipped_test(NAME, NULL, "no probe prompts")
        return first_words_on(data.session, data.suspect, data.reference, data.controls, prompts)


def first_words_on(
    sess,
    suspect: str,
    ref: str,
    controls: Sequence[str],
    prompts: Sequence[str],
    note: Callable[[str, int, int], None] | None = None,
) -> TestResult:
    """The test with every model's greedy answers on `prompts` (queried through `sess`,
    memoised and counted); the baseline of `bench provenance` calls it with the budget.
    `note(message, done, total)` is told which model is being queried."""
    texts = {}
    labs = [suspect, ref, *controls]
    for i, lab in enumerate(labs):
        if note is not None:
            note(f"first-words baseline ({lab}, {len(prompts)} greedy answers)", i, len(labs))
        sess.greedy(lab, prompts)
        texts[lab] = [sess.greedy_text(lab, p) for p in prompts]
    k = sess.cfg.first_words_k
    return first_words_test(texts[suspect], texts[ref], {c: texts[c] for c in controls}, k)
