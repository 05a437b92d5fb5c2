"""Combining: per reference, the tests that ran give one p-value (Bonferroni, valid under
any dependence); over references, Holm at family-wise level alpha names the plausible
parents. Also the p-value against queries, examples and the verdict sentence."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from distilltrace.provenance.result import ReferenceResult, TestResult
from distilltrace.provenance.session import Session
from distilltrace.provenance.stream import StreamRecord
from distilltrace.stats import PVALUE_FLOOR, combine_pvalues, holm

COMBINATION = "bonferroni"


def queries_needed(trajectory: Sequence[tuple[int, float]], level: float) -> int | None:
    """Suspect queries spent when the (anytime-valid) p-value first reached `level`."""
    return next((q for q, p in trajectory if p <= level), None)


def smallest_p(tests: Mapping[str, TestResult]) -> float:
    """The smallest p-value of the tests that ran (1 when none did)."""
    return min((t.pvalue for t in tests.values() if t.ran), default=1.0)


def combined_trajectory(
    fixed: Mapping[str, TestResult], rec: StreamRecord, base_queries: int, n_tests: int
) -> list[tuple[int, float]]:
    """Combined (Bonferroni) p-value against suspect queries: the fixed-sample tests count
    from when their queries were spent, the greedy test as it went."""
    fixed_min = smallest_p(fixed)
    traj = [(base_queries, fixed_min)] if any(t.ran for t in fixed.values()) else []
    traj += [(q, min(fixed_min, p)) for q, p in rec.trajectory]
    return [(q, min(1.0, p * n_tests)) for q, p in traj]


def reference_result(
    sess: Session,
    suspect: str,
    ref: str,
    identity: str,
    controls: list[str],
    tests: dict[str, TestResult],
    trajectory: list[tuple[int, float]],
    rec: StreamRecord,
) -> ReferenceResult:
    """One reference's result from its tests (`tests`: those that ran and those skipped)."""
    ran = [t.pvalue for t in tests.values() if t.ran]
    comb = combine_pvalues(ran, method=COMBINATION) if ran else None
    eff = {}
    if rec.agree_r:
        eff = {
            "agreement_with_reference": float(np.mean(rec.agree_r)),
            **{f"agreement_with_{c}": float(np.mean(v)) for c, v in rec.agree_c.items()},
        }
    return ReferenceResult(
        reference=ref,
        identity=identity,
        controls=controls,
        tests=tests,
        combined_pvalue=comb,
        combination=f"{COMBINATION} (min p x {len(ran)} tests; valid under any dependence)",
        trajectory=trajectory,
        queries_to={f"p<={thr:g}": queries_needed(trajectory, thr) for thr in (0.05, 0.01, 1e-4)},
        examples=examples(sess, suspect, ref, controls, rec),
        effect=eff,
    )


def identical_result(
    ref: str, identity: str, controls: list[str], identical: str
) -> ReferenceResult:
    """A reference that is the suspect itself: not tested, not in Holm."""
    return ReferenceResult(ref, identity, controls, {}, None, COMBINATION, identical=identical)


def apply_holm(results: Sequence[ReferenceResult], alpha: float) -> list[str]:
    """Holm over the tested references (in place); returns the plausible parents."""
    testable = [x for x in results if x.combined_pvalue is not None]
    h = holm([x.combined_pvalue for x in testable], alpha=alpha)
    for x, adj, rej in zip(testable, h.adjusted, h.reject, strict=True):
        x.holm_pvalue = adj
        x.rejected = bool(rej)
    return [x.reference for x in testable if x.rejected]


def examples(
    sess: Session, s: str, r: str, ctl: list[str], rec: StreamRecord, n: int = 5
) -> list[dict[str, Any]]:
    """Up to n stream prompts where the suspect agrees with the reference more than with
    every control, the largest margins first."""
    prompts, a_r, a_c = rec.prompts, rec.agree_r, rec.agree_c
    if not prompts:
        return []
    margin = [a_r[i] - max(a_c[c][i] for c in ctl) for i in range(len(prompts))]
    top = sorted(range(len(prompts)), key=lambda i: -margin[i])[:n]
    return [
        {
            "prompt": prompts[i],
            "suspect": sess.greedy_text(s, prompts[i]),
            "reference": sess.greedy_text(r, prompts[i]),
            "controls": {c: sess.greedy_text(c, prompts[i]) for c in ctl},
            "agreement_with_reference": a_r[i],
            "agreement_with_controls": {c: a_c[c][i] for c in ctl},
        }
        for i in top
        if margin[i] > 0
    ]


def _fmt(p: float | None) -> str:
    if p is None:
        return "n/a"
    if p <= PVALUE_FLOOR:
        return f"<= {PVALUE_FLOOR:.0e}"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def verdict(
    s: str, results: list[ReferenceResult], parents: list[str], ident: list[str], alpha: float
) -> str:
    """The verdict sentence, with its error statement."""
    parts = []
    if ident:
        parts.append(
            f"{s} is the same model as {', '.join(ident)} (identical, not a distillation question)."
        )
    if parents:
        ps = ", ".join(
            f"{x.reference} (Holm-adjusted p = {_fmt(x.holm_pvalue)})"
            for x in results
            if x.reference in parents
        )
        parts.append(
            f"{s} is closer to {ps} than every control is: evidence that it derives from "
            f"{'it' if len(parents) == 1 else 'them'}. The chance of such an accusation against a "
            f"suspect that is no closer to the references than to the controls is at most {alpha:g} (family-wise)."
        )
    else:
        best = min((x.holm_pvalue for x in results if x.holm_pvalue is not None), default=None)
        parts.append(
            f"No reference is a plausible parent at family-wise level {alpha:g}: {s} is not shown to be "
            f"closer to any reference than to the controls (smallest Holm-adjusted p = {_fmt(best)}). "
            "This is absence of evidence, not proof of independence."
        )
    return " ".join(parts)
