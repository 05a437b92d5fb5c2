"""Likelihood tests: how the reference scores the suspect's sampled outputs, and (when the
suspect can score) how the suspect scores the reference's outputs.

s(M, G; x) is the log-probability per character that scorer M gives to the sampled output of
generator G on prompt x (log p of the text; per character so that tokenizers and lengths
do not matter). For control C, the baseline B_C is the mean of the other controls' scores.

`likelihood` (needs `score` on the reference and controls), per control C:
  d_C(x) = [s(R,S) - s(B_C,S)] - [s(R,C) - s(B_C,C)]
  Null: E_x[d_C] <= 0 for some C: relative to independent scorers, the reference favours
  the suspect's outputs no more than it favours the outputs of a model known to be
  independent of it.

`likelihood_reverse` (needs `score` on the suspect), per control C:
  d_C(x) = [s(S,R) - s(S,C)] - mean_{C' != C} [s(C',R) - s(C',C)]
  Null: E_x[d_C] <= 0 for some C: the suspect prefers the reference's outputs over a
  control's outputs no more than independent models do.

Each per-control null: studentized sign-flip test across prompts; combined over controls
by the intersection-union rule (max p).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from distilltrace.provenance.paired import DEFAULT_RESAMPLES, intersection_union, signflip_test
from distilltrace.provenance.result import TestResult

NAME = "likelihood"
NULL = (
    "For some control C, E_x[(s(R,S)-s(B,S)) - (s(R,C)-s(B,C))] <= 0, with s(M,G) the "
    "per-character log-probability scorer M gives generator G's sampled output and B the "
    "other controls: the reference does not favour the suspect's outputs more than an "
    "independent model's."
)
REVERSE_NAME = "likelihood_reverse"
REVERSE_NULL = (
    "For some control C, E_x[(s(S,R)-s(S,C)) - mean_{C'!=C}(s(C',R)-s(C',C))] <= 0: the "
    "suspect prefers the reference's outputs over a control's no more than independent "
    "models do."
)

Scores = Mapping[tuple[str, str], np.ndarray]  # (scorer, generator) -> per-prompt scores


def _iut(
    name: str,
    null: str,
    diffs: Mapping[str, np.ndarray],
    seed: int,
    extra: dict,
    n_resamples: int = DEFAULT_RESAMPLES,
) -> TestResult:
    per = {}
    for i, (c, d) in enumerate(diffs.items()):
        r = signflip_test(d, seed=seed + i, n_resamples=n_resamples)
        per[c] = {"pvalue": r.pvalue, "mean_difference": r.mean, "sd": r.sd, "t": r.t, "n": r.n}
    p = intersection_union({c: v["pvalue"] for c, v in per.items()})
    n = min((v["n"] for v in per.values()), default=0)
    effect = min((v["mean_difference"] for v in per.values()), default=None)
    return TestResult(
        name=name,
        null=null,
        pvalue=p,
        n=n,
        effect=effect,
        effect_label="smallest mean difference over controls (nats per character)",
        per_control=per,
        details={"method": "studentized sign-flip per control, max over controls", **extra},
    )


def likelihood_test(
    scores: Scores,
    reference: str,
    controls: Sequence[str],
    suspect: str = "suspect",
    seed: int = 0,
    n_resamples: int = DEFAULT_RESAMPLES,
) -> TestResult:
    """The reference scores the suspect's outputs (see module doc for the null)."""
    diffs = {}
    for c in controls:
        others = [o for o in controls if o != c]
        b_s = np.mean([scores[(o, suspect)] for o in others], axis=0)
        b_c = np.mean([scores[(o, c)] for o in others], axis=0)
        diffs[c] = (scores[(reference, suspect)] - b_s) - (scores[(reference, c)] - b_c)
    extra = {
        "reference_score_of_suspect": float(np.mean(scores[(reference, suspect)])),
        "reference_score_of_controls": {
            c: float(np.mean(scores[(reference, c)])) for c in controls
        },
    }
    return _iut(NAME, NULL, diffs, seed, extra, n_resamples)


def reverse_likelihood_test(
    scores: Scores,
    reference: str,
    controls: Sequence[str],
    suspect: str = "suspect",
    seed: int = 0,
    n_resamples: int = DEFAULT_RESAMPLES,
) -> TestResult:
    """The suspect scores the reference's outputs (see module doc for the null)."""
    diffs = {}
    for c in controls:
        others = [o for o in controls if o != c]
        base = np.mean([scores[(o, reference)] - scores[(o, c)] for o in others], axis=0)
        diffs[c] = (scores[(suspect, reference)] - scores[(suspect, c)]) - base
    extra = {"suspect_score_of_reference": float(np.mean(scores[(suspect, reference)]))}
    return _iut(REVERSE_NAME, REVERSE_NULL, diffs, seed, extra, n_resamples)
