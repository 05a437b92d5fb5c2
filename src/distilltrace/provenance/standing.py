"""Model-level standing: would one more independent model stand as far above the controls?

The paired tests (likelihood, lexical fingerprint) ask whether the suspect is closer to the
reference than *these* controls are, beyond a margin measured on the controls. Their
p-values count the randomness of the prompts, not of the models: two independent models of
one recipe differ, and with enough prompts any fixed difference is "significant". The
margin absorbs that only as far as the controls' own spread reaches, and with few controls
a model of their recipe often lands beyond it (3 controls, normal spread: 6.6% of the time,
in the limit of many prompts; docs/provenance.md).

This check asks the model-level question with the test's own statistic. Let D(g, c) be the
test's mean difference with model g in the suspect's place against control c. Under the
additive model D(g, c) = v_g - v_c + noise, each model has a closeness v to the reference.

Null: the suspect is one more independent model of the controls' kind: v_S, v_1, ..., v_k
are i.i.d. normal. Then, with e_g = v_g - mean(v_controls) estimated from the control pairs
(e_g = (k - 1) / k * mean_{c != g} D(g, c)), s^2 = sum e_g^2 / (k - 1) and
d_S = mean_c D(S, c), the prediction statistic t = d_S / (s * sqrt(1 + 1/k)) follows
Student's t with k - 1 degrees of freedom (the textbook prediction interval for one new
draw). p = P(T_{k-1} >= t), one-sided.

Without the normal assumption only ranks are left: under exchangeability of the k + 1
models the suspect's rank is uniform, so the distribution-free p-value is (1 + the number
of controls standing at least as high) / (k + 1), never below 1 / (k + 1). Both are
reported; neither changes the test's own p-value, whose null is about these controls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats

NAME = "model_standing"
NULL = (
    "The suspect is one more independent model of the controls' kind: its closeness to "
    "the reference, measured by the test's own statistic, and each control's are "
    "independent draws from one normal distribution."
)
MIN_CONTROLS = 3  # two degrees of freedom for the spread


@dataclass
class StandingResult:
    """The suspect's model-level standing among the controls (see module doc)."""

    statistic: float  # t = d_S / (s * sqrt(1 + 1/k))
    pvalue: float  # P(T_{k-1} >= t)
    pvalue_rank: float  # (1 + controls standing at least as high) / (k + 1)
    n: int  # controls
    suspect_standing: float  # d_S: the suspect's mean difference over the controls
    spread: float  # s: the controls' standard deviation of closeness
    control_standing: dict[str, float] = field(default_factory=dict)  # e_g
    name: str = NAME
    null: str = NULL

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def standing_test(
    suspect_means: Mapping[str, float], pair_means: Mapping[tuple[str, str], float]
) -> StandingResult | None:
    """suspect_means[c] = mean D(S, c); pair_means[(g, c)] = mean D(g, c) for controls
    g != c. None with fewer than MIN_CONTROLS controls or a non-finite mean."""
    ctl = list(suspect_means)
    k = len(ctl)
    vals = [suspect_means[c] for c in ctl] + [pair_means.get((g, c), np.nan)
                                              for g in ctl for c in ctl if g != c]  # fmt: skip
    if k < MIN_CONTROLS or not np.all(np.isfinite(vals)):
        return None
    e = {g: (k - 1) / k * float(np.mean([pair_means[(g, c)] for c in ctl if c != g])) for g in ctl}
    s = float(np.sqrt(sum(v * v for v in e.values()) / (k - 1)))
    d_s = float(np.mean([suspect_means[c] for c in ctl]))
    if s > 0:
        t = d_s / (s * np.sqrt(1 + 1 / k))
        p = float(stats.t.sf(t, df=k - 1))
    else:  # every control stands alike: any positive standing is beyond their spread
        t = float(np.sign(d_s) * np.inf) if d_s else 0.0
        p = 0.0 if d_s > 0 else (0.5 if d_s == 0 else 1.0)
    rank = (1 + sum(v >= d_s for v in e.values())) / (k + 1)
    return StandingResult(float(t), p, float(rank), k, d_s, s, e)


def standing_of(
    suspect_diffs: Mapping[str, np.ndarray], pairs: Mapping[tuple[str, str], float]
) -> dict[str, Any] | None:
    """The standing as a result's detail: per-prompt differences D(S, c) (before any
    margin) and the control pairs' means; None where it cannot be measured."""
    means = {c: float(np.nanmean(d)) for c, d in suspect_diffs.items()}
    res = standing_test(means, pairs)
    return None if res is None else res.to_dict()


def standing_warning(test: str, test_p: float, st: Mapping[str, Any], alpha: float) -> str | None:
    """A warning when a test rejects at alpha on evidence that one more independent model
    of the controls' kind would often produce (the model-level p-value above alpha)."""
    if test_p > alpha or st["pvalue"] <= alpha:
        return None
    return (
        f"{test}: p = {test_p:.2g} against these {st['n']} controls, but the suspect stands "
        f"{st['statistic']:.2g} spreads above them; one more independent model of their kind "
        f"stands that high with probability {st['pvalue']:.2g} (normal spread; "
        f"distribution-free: {st['pvalue_rank']:.2g}). The evidence rests on the controls "
        "being representative: add controls of the suspect's recipe"
    )


def standing_warnings(tests: Mapping[str, Any], alpha: float) -> list[str]:
    """The warnings over one reference's tests (TestResult objects that ran)."""
    out = []
    for name, t in tests.items():
        st = t.details.get("standing") if t.ran else None
        w = st and standing_warning(name, t.pvalue, st, alpha)
        if w:
            out.append(w)
    return out
