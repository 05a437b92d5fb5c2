"""Lexical fingerprint test: does the suspect use the reference's idiosyncratic words?

A fingerprint of the reference is learned from outputs that do not involve the suspect:
the reference's and the controls' sampled outputs on separate fingerprint prompts. Each
word unigram and bigram gets a weight, the log-odds z-score of its rate in the reference's
outputs against the controls' (informative Dirichlet prior, Monroe et al. 2008), clipped
to [-3, 3]. A text's fingerprint score f(y) is the mean weight of its n-grams.

For control C the fingerprint is learned against the controls other than C only, so the
suspect and C play symmetric roles. On test prompts, d_C(x) = f(y_S(x)) - f(y_C(x)) - m.
Null: for some control C, E_x[f(y_S) - f(y_C)] <= m: the suspect's outputs carry the
reference's lexical fingerprint no more than an independent model's do, beyond the margin
m: the largest mean of the same difference between two controls (fingerprint learned
against the remaining controls), since independent models already differ in how many of
R's words they use. Per control: studentized sign-flip (permutation) test across
prompts; max over controls (intersection-union).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

from distilltrace.provenance.config import ProvenanceConfig
from distilltrace.provenance.paired import (
    DEFAULT_RESAMPLES,
    MIN_MARGIN_CONTROLS,
    control_margin,
    control_pair_means,
    intersection_union,
    signflip_test,
    too_few_for_margin,
)
from distilltrace.provenance.registry import QueryNeeds, TestInputs
from distilltrace.provenance.result import TestResult
from distilltrace.provenance.standing import standing_of
from distilltrace.provenance.textmatch import ngrams, words

NAME = "lexical_fingerprint"
NULL = (
    "For some control C, E_x[f(y_S) - f(y_C)] <= m, with f the reference's lexical "
    "fingerprint learned without S and C and m the largest mean of the same difference "
    "between two controls: the suspect's outputs carry the reference's over-represented "
    "words and bigrams no more than an independent model's outputs, beyond how much one "
    "independent model already exceeds another."
)
CLIP = 3.0


def _counts(texts: Sequence[str]) -> Counter:
    c: Counter = Counter()
    for t in texts:
        c.update(ngrams(words(t)))
    return c


def log_odds_z(pos: Counter, neg: Counter, prior_total: float = 200.0) -> dict[str, float]:
    """Log-odds z-scores of each n-gram in pos vs neg, informative Dirichlet prior."""
    pooled = pos + neg
    total = sum(pooled.values())
    n_pos, n_neg = sum(pos.values()), sum(neg.values())
    if total == 0 or n_pos == 0 or n_neg == 0:
        return {}
    out = {}
    for w, cnt in pooled.items():
        a = prior_total * cnt / total
        yp, yn = pos.get(w, 0), neg.get(w, 0)
        lp = math.log((yp + a) / (n_pos + prior_total - yp - a))
        ln = math.log((yn + a) / (n_neg + prior_total - yn - a))
        var = 1.0 / (yp + a) + 1.0 / (yn + a)
        out[w] = (lp - ln) / math.sqrt(var)
    return out


def fingerprint(pos_texts: Sequence[str], neg_texts: Sequence[str]) -> dict[str, float]:
    """n-gram weights: clipped log-odds z of pos (reference) against neg (controls)."""
    z = log_odds_z(_counts(pos_texts), _counts(neg_texts))
    return {w: max(-CLIP, min(CLIP, v)) for w, v in z.items()}


def fingerprint_score(text: str, weights: Mapping[str, float]) -> float:
    """Mean fingerprint weight of the text's n-grams (0 for an empty text)."""
    g = ngrams(words(text))
    if not g:
        return 0.0
    return float(sum(weights.get(w, 0.0) for w in g) / len(g))


def lexical_test(
    fp_outputs: Mapping[str, Sequence[str]],
    test_outputs: Mapping[str, Sequence[str]],
    reference: str,
    controls: Sequence[str],
    suspect: str = "suspect",
    seed: int = 0,
    n_evidence: int = 12,
    n_resamples: int = DEFAULT_RESAMPLES,
) -> TestResult:
    """Run the test (see module doc). fp_outputs: reference and controls on fingerprint
    prompts; test_outputs: suspect and controls on test prompts (same prompt order)."""
    weights: dict[frozenset, dict[str, float]] = {}

    def stat(g: str, c: str) -> np.ndarray:
        left = frozenset(o for o in controls if o not in (c, g))
        if left not in weights:
            weights[left] = fingerprint(
                fp_outputs[reference], [t for o in sorted(left) for t in fp_outputs[o]]
            )
        w = weights[left]
        f_g = np.array([fingerprint_score(t, w) for t in test_outputs[g]])
        f_c = np.array([fingerprint_score(t, w) for t in test_outputs[c]])
        return f_g - f_c

    pairs = control_pair_means(controls, stat)
    margin = control_margin(controls, stat, pairs)
    raw = {c: stat(suspect, c) for c in controls}
    per = {}
    for i, c in enumerate(controls):
        r = signflip_test(raw[c] - margin, seed=seed + i, n_resamples=n_resamples)
        per[c] = r.per_control()
    p = intersection_union({c: v["pvalue"] for c, v in per.items()})
    # Evidence: n-grams over-represented both in S's outputs and in R's (vs the controls).
    ctrl_fp = _counts([t for o in controls for t in fp_outputs[o]])
    ctrl_test = _counts([t for o in controls for t in test_outputs[o]])
    z_r = log_odds_z(_counts(fp_outputs[reference]), ctrl_fp)
    z_s = log_odds_z(_counts(test_outputs[suspect]), ctrl_test)
    shared = sorted(
        ((w, z_s[w], z_r[w]) for w in z_s.keys() & z_r.keys() if z_s[w] > 1.96 and z_r[w] > 1.96),
        key=lambda x: -min(x[1], x[2]),
    )[:n_evidence]
    return TestResult(
        name=NAME,
        null=NULL,
        pvalue=p,
        n=min((v["n"] for v in per.values()), default=0),
        effect=min((v["mean_difference"] for v in per.values()), default=None),
        effect_label="smallest mean fingerprint-score difference over controls, after the margin",
        per_control=per,
        details={
            "method": "leave-one-control-out fingerprint, studentized sign-flip, max over controls",
            "margin": margin,
            "standing": standing_of(raw, pairs),
            "shared_overrepresented": [
                {"ngram": w, "z_suspect": zs, "z_reference": zr} for w, zs, zr in shared
            ],
        },
    )


class LexicalFingerprint:
    """The registered test: the reference's fingerprint from outputs on separate prompts
    (no suspect queries), scored on the shared sampled outputs (needs 3 controls)."""

    name = NAME
    null = NULL

    def queries(self, cfg: ProvenanceConfig) -> QueryNeeds:
        return QueryNeeds(sampled=True, fingerprint=True)

    def run(self, data: TestInputs) -> TestResult:
        ctl = data.controls
        if len(ctl) < MIN_MARGIN_CONTROLS:
            return too_few_for_margin(NAME, NULL, len(ctl))
        return lexical_test(
            data.fingerprint, data.sampled, data.reference, ctl, suspect=data.suspect,
            seed=data.cfg.seed,
        )  # fmt: skip
