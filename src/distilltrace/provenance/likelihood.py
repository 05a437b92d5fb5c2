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
  d_C(x) = s(S,R) - s(C,R) - max(delta, g_C)
  g_C: how much better S models the other controls' outputs than C does (mean of
  s(S,G) - s(C,G) over the other controls G, plus 2 standard errors).
  Null: E_x[s(S,R) - s(C,R)] <= max(delta, g_C) for some C: the suspect's advantage over a
  control on the reference's outputs is no larger than the margin delta (nats per
  character; seed-to-seed differences) or than its advantage on independent models'
  outputs (a generally more capable suspect is not closer to R for that). Assumes the
  controls are trained on the same kind of data as the suspect (see docs/provenance.md).

Each per-control null: studentized sign-flip test across prompts; combined over controls
by the intersection-union rule (max p).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from distilltrace.errors import CapabilityError
from distilltrace.provenance.config import DEFAULT_REVERSE_MARGIN, ProvenanceConfig
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
from distilltrace.provenance.result import TestResult, skipped_test
from distilltrace.provenance.standing import standing_of

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
    "For some control C, E_x[s(S,R) - s(C,R)] <= max(delta, g_C), with s(M,G) the "
    "per-character log-probability model M gives generator G's sampled output and g_C the "
    "suspect's advantage over C on the other controls' outputs: the suspect models the "
    "reference's outputs no better than a control does, beyond the margin delta (nats per "
    "character) and beyond how much better it models independent models' outputs."
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
        per[c] = r.per_control()
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

    pairs = control_pair_means(controls, stat)
    margin = control_margin(controls, stat, pairs)
    raw = {c: stat(suspect, c) for c in controls}
    diffs = {c: d - margin for c, d in raw.items()}
    extra = {
        "margin": margin,
        "margin_rule": "largest mean statistic between two controls (leave-one-out), 0 if < 3 controls",
        "standing": standing_of(raw, pairs),
        "reference_score_of_suspect": float(np.mean(scores[(reference, suspect)])),
        "reference_score_of_controls": {
            c: float(np.mean(scores[(reference, c)])) for c in controls
        },
    }
    return _iut(NAME, NULL, diffs, seed, extra, n_resamples)


def capability_gap(
    scores: Scores, suspect: str, control: str, others: Sequence[str], z: float = 2.0
) -> tuple[float, float]:
    """How much better the suspect models independent text than `control` does: the mean
    of s(S,G) - s(C,G) over the outputs of the other controls G, and that mean plus z
    standard errors (an upper bound, so an uncertain gap errs towards no accusation)."""
    vals = [
        np.asarray(scores[(suspect, g)], dtype=float)
        - np.asarray(scores[(control, g)], dtype=float)
        for g in others
        if (suspect, g) in scores and (control, g) in scores
    ]
    v = np.concatenate(vals) if vals else np.array([])
    v = v[np.isfinite(v)]
    if v.size < 2:
        return 0.0, 0.0
    m = float(v.mean())
    return m, m + z * float(v.std(ddof=1)) / np.sqrt(v.size)


def reverse_likelihood_test(
    scores: Scores,
    reference: str,
    controls: Sequence[str],
    suspect: str = "suspect",
    seed: int = 0,
    n_resamples: int = DEFAULT_RESAMPLES,
    margin: float = DEFAULT_REVERSE_MARGIN,
) -> TestResult:
    """The suspect and the controls score the reference's outputs (see module doc for the
    null). `scores[(S or C, G)]` for another control G, when present, measure capability."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    s_r = scores[(suspect, reference)]
    diffs, per_margin, gaps = {}, {}, {}
    for c in controls:
        gap, upper = capability_gap(scores, suspect, c, [o for o in controls if o != c])
        per_margin[c] = max(margin, upper)
        gaps[c] = gap
        diffs[c] = s_r - scores[(c, reference)] - per_margin[c]
    extra = {
        "margin": margin,
        "margin_per_control": per_margin,
        "capability_gap_per_control": gaps,
        "suspect_score_of_reference": float(np.mean(s_r)),
        "control_scores_of_reference": {
            c: float(np.mean(scores[(c, reference)])) for c in controls
        },
    }
    return _iut(REVERSE_NAME, REVERSE_NULL, diffs, seed, extra, n_resamples)


def likelihood_pairs(
    reference: str, controls: Sequence[str], suspect: str
) -> list[tuple[str, str]]:
    """The (scorer, generator) pairs likelihood_test reads: the reference scores the
    suspect's and every control's outputs, and each control scores the outputs of the
    suspect and of the other controls. A control never scores its own outputs: the
    statistic's baseline for generator G is the mean over controls other than G (and than
    the control compared), so those scores would be computed and never read (with 3
    controls, 300 of 1,600 scorings at the default 100 prompts)."""
    gens = [suspect, *controls]
    return [(reference, g) for g in gens] + [(c, g) for c in controls for g in gens if g != c]


class Likelihood:
    """The registered forward test: the reference and the controls score the sampled
    outputs of the suspect and of the controls (needs 3 controls and `score` on them)."""

    name = NAME
    null = NULL

    def queries(self, cfg: ProvenanceConfig) -> QueryNeeds:
        return QueryNeeds(sampled=True)

    def run(self, data: TestInputs) -> TestResult:
        r, s, ctl = data.reference, data.suspect, data.controls
        lacking = [m for m in [r, *ctl] if not data.can_score(m)]
        if len(ctl) < MIN_MARGIN_CONTROLS:
            return too_few_for_margin(NAME, NULL, len(ctl))
        if lacking:
            return skipped_test(
                NAME, NULL, f"no log-probabilities (score) from {', '.join(lacking)}"
            )
        try:
            scores = {
                (scorer, gen): data.session.scores(scorer, data.prompts, data.sampled[gen])
                for scorer, gen in likelihood_pairs(r, ctl, s)
            }
            return likelihood_test(scores, r, ctl, suspect=s, seed=data.cfg.seed)
        except CapabilityError as e:
            return skipped_test(NAME, NULL, f"scoring refused: {e}")


class ReverseLikelihood:
    """The registered reverse test: the suspect and the controls score the reference's
    outputs, and each other's for the capability gap (needs `score` on the suspect)."""

    name = REVERSE_NAME
    null = REVERSE_NULL

    def queries(self, cfg: ProvenanceConfig) -> QueryNeeds:
        return QueryNeeds(sampled=True, reverse=True)

    def run(self, data: TestInputs) -> TestResult:
        r, s, ctl = data.reference, data.suspect, data.controls
        if not data.can_score(s):
            return skipped_test(
                REVERSE_NAME, REVERSE_NULL, f"the suspect {s} gives no log-probabilities (score)"
            )
        if len(data.reverse_prompts) < 10:
            return skipped_test(
                REVERSE_NAME, REVERSE_NULL, "budget too small for the suspect to score outputs"
            )
        if any(not data.can_score(c) for c in ctl):
            return skipped_test(
                REVERSE_NAME, REVERSE_NULL, "a control gives no log-probabilities (score)"
            )
        try:
            return reverse_likelihood_test(
                _reverse_scores(data), r, ctl, suspect=s, seed=data.cfg.seed,
                margin=data.cfg.reverse_margin,
            )  # fmt: skip
        except CapabilityError as e:
            return skipped_test(REVERSE_NAME, REVERSE_NULL, f"scoring refused: {e}")


def _reverse_scores(data: TestInputs) -> dict[tuple[str, str], np.ndarray]:
    """The suspect and the controls score the reference's outputs; every model scores the
    controls' outputs on the first n_gap prompts (capability gap)."""
    sess, r, s, ctl = data.session, data.reference, data.suspect, data.controls
    rev = data.reverse_prompts
    r_texts = sess.sampled(r, rev, "reference outputs")
    scores = {(scorer, r): sess.scores(scorer, rev, r_texts) for scorer in [s, *ctl]}
    gp = data.prompts[: data.n_gap]
    for g in ctl:
        for scorer in [s, *ctl]:
            if scorer != g:
                scores[(scorer, g)] = sess.scores(scorer, gp, sess.sampled(g, gp))
    return scores
