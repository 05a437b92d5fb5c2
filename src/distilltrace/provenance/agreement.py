"""Greedy-agreement test (text level, in the spirit of Nikolic et al. 2025).

On probe prompts x drawn i.i.d. from the probe distribution D, let a(M, N; x) in [0, 1]
be the normalised word-prefix agreement of the greedy continuations of M and N.
For each control C, d_C(x) = a(S, R; x) - a(S, C; x).

Null hypothesis: for at least one control C, E_D[a(S, R)] <= E_D[a(S, C)] + delta, i.e.
the suspect agrees with the reference no more (beyond a small margin delta, default 0.05)
than with some model known not to derive from it. The margin keeps tiny systematic
coincidences (two styles starting with the same letter) from becoming "significant"
with enough deterministic probes; the e-process runs on (d - delta) / (1 + delta). Each per-control null is tested by a betting e-process on d_C (anytime valid), and
the suspect must beat every control: p = max over controls (intersection-union test).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from distilltrace.provenance.config import ProvenanceConfig
from distilltrace.provenance.registry import QueryNeeds, TestInputs
from distilltrace.provenance.result import TestResult, not_run
from distilltrace.provenance.sequential import IntersectionUnionSequential

NAME = "greedy_agreement"
NULL = (
    "For some control C, E_x[a(S,R;x)] <= E_x[a(S,C;x)] + delta (delta = 0.05 by default) "
    "over the probe distribution: the suspect's greedy answers agree with the reference's "
    "no more than with a control's, beyond the margin delta."
)


def greedy_agreement_result(
    iut: IntersectionUnionSequential,
    agree_ref: Sequence[float],
    agree_controls: Mapping[str, Sequence[float]],
) -> TestResult:
    """The test result from a finished (possibly early-stopped) sequential run."""
    a_r = np.asarray(agree_ref, dtype=float)
    n = int(a_r.size)
    per = {}
    for c, p in iut.per_control().items():
        a_c = np.asarray(agree_controls[c], dtype=float)
        per[c] = {
            "pvalue": p,
            "agreement_with_control": float(a_c.mean()) if n else None,
            "mean_difference": float((a_r - a_c).mean()) if n else None,
            "n": n,
        }
    best_control = max((float(np.mean(v)) for v in agree_controls.values() if len(v)), default=0.0)
    return TestResult(
        name=NAME,
        null=NULL,
        pvalue=iut.pvalue if n else 1.0,
        n=n,
        effect=(float(a_r.mean()) - best_control) if n else None,
        effect_label="agreement(S,R) minus the highest agreement(S,control)",
        per_control=per,
        details={
            "agreement_with_reference": float(a_r.mean()) if n else None,
            "exact_match_rate_reference": float(np.mean(a_r >= 1.0)) if n else None,
            "method": "betting e-process per control (anytime valid), max over controls",
        },
    )


def greedy_agreement_test(
    agree_ref: Sequence[float], agree_controls: Mapping[str, Sequence[float]], margin: float = 0.0
) -> TestResult:
    """Run the sequential test over a whole stream of per-prompt agreements (in order)."""
    names = tuple(agree_controls)
    iut = IntersectionUnionSequential(names)
    a_r = np.asarray(agree_ref, dtype=float)
    for i in range(a_r.size):
        iut.update(
            {c: float((a_r[i] - agree_controls[c][i] - margin) / (1 + margin)) for c in names}
        )
    return greedy_agreement_result(iut, a_r, agree_controls)


class GreedyAgreement:
    """The registered test: reads the adaptive greedy stream (stream.py), which takes the
    budget left after the fixed-sample tests and stops each reference on this test's
    anytime p-value."""

    name = NAME
    null = NULL

    def queries(self, cfg: ProvenanceConfig) -> QueryNeeds:
        return QueryNeeds(stream=True)

    def run(self, data: TestInputs) -> TestResult | None:
        rec = data.stream
        if rec is None:
            return None
        res = greedy_agreement_result(rec.iut, rec.agree_r, rec.agree_c)
        if rec.stop_reason:
            res.details["stream_stop"] = rec.stop_reason
        if res.n == 0:  # the stream drew no probe: its p = 1 is no evidence either way
            not_run(
                res,
                f"no greedy probe drawn (counted as p = 1); the stream: "
                f"{rec.stop_reason or 'never started'}",
            )
        return res
