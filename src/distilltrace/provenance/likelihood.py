"""Likelihood tests: how the reference scores the suspect's sampled outputs, and (when the
suspect can score) how the suspect scores the reference's outputs.

s(M, G; x) is the log-probability per character that scorer M gives to the sampled output of
generator G on prompt x (log p of the text; per character so that tokenizers and lengths
do not matter).

`likelihood` (needs `score` on the reference and controls), per control C, with the
baseline B_C the mean of the other controls' scores:
  d_C(x) = [s(R,S) - s(B_C,S)] - [s(R,C) - s(B_C,C)]
  Null: E_x[d_C] <= m for some C: relative to independent scorers, the reference favours
  the suspect's outputs no more than it favours the outputs of a model known to be
  independent of it, up to the margin m: the largest mean of the same statistic with one
  control in the suspect's place against another (how far apart independent models
  already are). The tester runs it with 3 or more controls only (with 2, m would be 0).

`likelihood_reverse` (needs `score` on the suspect and controls), per control C:
  d_C(x) = s(S,R) - s(C,R) - delta
  Null: E_x[d_C] <= 0 for some C: the suspect models the reference's outputs no better
  than a control does, up to the margin delta (nats per character). A model trained on R's
  outputs models them better than a model of the same size and training that was not; the
  margin absorbs the capability differences between such models (seeds, data order).
  Valid when the controls are at least as capable as the suspect, less delta.

Each per-control null: studentized sign-flip test across prompts; combined over controls
by the intersection-union rule (max p).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from distilltrace.provenance.paired import DEFAULT_RESAMPLES, intersection_union, signflip_test
from distilltrace.provenance.result import TestResult

NAME = "likelihood"
NULL = (
    "For some control C, E_x[(s(R,S)-s(B,S)) - (s(R,C)-s(B,C))] <= m, with s(M,G) the "
    "per-character log-probability scorer M gives generator G's sampled output, B the "
    "other controls and m the largest mean of the same statistic between two controls "
    "(0 with 2 controls): the reference does not favour the suspect's outputs more than an "
    "independent model's, beyond how much it favours one independent model over another."
)
REVERSE_NAME = "likelihood_reverse"
REVERSE_NULL = (
    "For some control C, E_x[s(S,R) - s(C,R)] <= delta, with s(M,R) the per-character "
    "log-probability model M gives the reference's sampled output: the suspect models the "
    "reference's outputs no better than a control of similar capability does, up to the "
    "margin delta (nats per character)."
)
DEFAULT_REVERSE_MARGIN = 0.05
MIN_FORWARD_CONTROLS = 3  # the forward test's margin needs a control pair plus a baseline

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
        effect_label="smallest mean difference over controls, after the margin (nats per character)",
        per_control=per,
        details={"method": "studentized sign-flip per control, max over controls", **extra},
    )


def control_margin(controls: Sequence[str], stat: Callable[[str, str], np.ndarray]) -> float:
    """Largest mean of `stat(g, c)` with control g in the suspect's place against another
    control c (0 with fewer than 3 controls, where no baseline would be left)."""
    if len(controls) < MIN_FORWARD_CONTROLS:
        return 0.0
    m = max(float(np.nanmean(stat(g, c))) for g in controls for c in controls if g != c)
    return max(0.0, m)


def likelihood_test(
    scores: Scores,
    reference: str,
    controls: Sequence[str],
    suspect: str = "suspect",
    seed: int = 0,
    n_resamples: int = DEFAULT_RESAMPLES,
) -> TestResult:
    """The reference scores the suspect's outputs (see module doc for the null)."""

    def stat(g: str, c: str) -> np.ndarray:
        others = [o for o in controls if o not in (c, g)]
        b_g = np.mean([scores[(o, g)] for o in others], axis=0)
        b_c = np.mean([scores[(o, c)] for o in others], axis=0)
        return (scores[(reference, g)] - b_g) - (scores[(reference, c)] - b_c)

    margin = control_margin(controls, stat)
    diffs = {c: stat(suspect, c) - margin for c in controls}
    extra = {
        "margin": margin,
        "margin_rule": "largest mean statistic between two controls (leave-one-out), 0 if < 3 controls",
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
    margin: float = DEFAULT_REVERSE_MARGIN,
) -> TestResult:
    """The suspect scores the reference's outputs (see module doc for the null)."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    s_r = scores[(suspect, reference)]
    diffs = {c: s_r - scores[(c, reference)] - margin for c in controls}
    extra = {
        "margin": margin,
        "suspect_score_of_reference": float(np.mean(s_r)),
        "control_scores_of_reference": {
            c: float(np.mean(scores[(c, reference)])) for c in controls
        },
    }
    return _iut(REVERSE_NAME, REVERSE_NULL, diffs, seed, extra, n_resamples)
