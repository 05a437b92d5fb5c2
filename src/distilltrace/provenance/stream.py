"""The adaptive, sequential greedy stream: probe prompts are accepted before the suspect is
asked (from the reference's and the controls' answers only, see probes.py), the suspect
answers the accepted ones, and each reference's greedy-agreement e-process is updated
after every answer. A reference leaves the stream when its anytime p-value reaches its
stopping level, when the futility e-process shows a control is closer to the suspect, or
when the budget or the pool runs out (the p-value stays valid: it is anytime valid)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from distilltrace.provenance.config import ProvenanceConfig
from distilltrace.provenance.probes import disagreement_weight
from distilltrace.provenance.sequential import IntersectionUnionSequential
from distilltrace.provenance.session import Session
from distilltrace.provenance.textmatch import prefix_agreement


@dataclass
class StreamRecord:
    """One reference's greedy stream: per-prompt agreements of the suspect with the
    reference and with each control, the e-process, and the p-value after each query."""

    iut: IntersectionUnionSequential
    agree_r: list[float] = field(default_factory=list)
    agree_c: dict[str, list[float]] = field(default_factory=dict)
    prompts: list[str] = field(default_factory=list)
    trajectory: list[tuple[int, float]] = field(default_factory=list)  # (suspect queries, p)
    stop_reason: str = ""  # why the stream stopped for this reference (set by run_stream)

    @classmethod
    def empty(cls, controls: Sequence[str]) -> StreamRecord:
        return cls(IntersectionUnionSequential(tuple(controls)), [], {c: [] for c in controls})


@dataclass
class StreamPlan:
    """What the stream may spend and when each reference stops."""

    prompts: Sequence[str]  # candidate prompts, in the (seeded) order they are tried
    greedy_max: int  # suspect queries the stream may make
    base_queries: int  # suspect queries spent before the stream (for the trajectory)
    stop_level: Mapping[str, float]  # reference -> anytime p at which it stops


def _accepted(
    cfg: ProvenanceConfig,
    ctrl_labs: Mapping[str, Sequence[str]],
    run_refs: Sequence[str],
    g_ref: Mapping[str, list],
    g_ctl: Mapping[str, list],
    u: np.ndarray,
) -> list[int]:
    """Candidates accepted with probability w(x) (query-free: no suspect answer is used)."""
    accepted = []
    for i in range(len(u)):
        w = 1.0
        if cfg.adaptive:
            w = max(
                disagreement_weight(
                    [prefix_agreement(g_ref[r][i], g_ctl[c][i], cfg.k_units) for c in ctrl_labs[r]],
                    cfg.weight_floor,
                )
                for r in run_refs
            )
        if u[i] < w:
            accepted.append(i)
    return accepted


def run_stream(
    sess: Session,
    suspect: str,
    ctrl_labs: Mapping[str, Sequence[str]],
    records: Mapping[str, StreamRecord],
    plan: StreamPlan,
    note: Callable[[str, int, int], None],
) -> int:
    """Run the stream for the references in `records` (updated in place, each with the
    reason it stopped); returns the suspect queries it made."""
    cfg = sess.cfg
    running = {r for r, rec in records.items() if not rec.stop_reason}
    spent = 0
    pos = 0
    u_rng = np.random.default_rng(cfg.seed + 17)
    while running and spent < plan.greedy_max and pos < len(plan.prompts):
        cand = plan.prompts[pos : pos + cfg.batch_size]
        pos += len(cand)
        u = u_rng.random(len(cand))
        run_refs = sorted(running)
        g_ref = {r: sess.greedy(r, cand) for r in run_refs}
        g_ctl = {
            c: sess.greedy(c, cand) for c in sorted({c for r in run_refs for c in ctrl_labs[r]})
        }
        accepted = _accepted(cfg, ctrl_labs, run_refs, g_ref, g_ctl, u)
        accepted = accepted[: plan.greedy_max - spent]
        if not accepted:
            continue
        g_s = sess.greedy(suspect, [cand[i] for i in accepted])
        spent += len(accepted)
        for j, i in enumerate(accepted):
            q = plan.base_queries + spent - len(accepted) + j + 1
            for r in sorted(running):
                rec = records[r]
                p = _update(cfg, rec, ctrl_labs[r], g_s[j], g_ref[r][i], g_ctl, i, cand[i], q)
                if p <= plan.stop_level[r]:
                    rec.stop_reason = f"stopped: its p-value reached {plan.stop_level[r]:.3g}"
                elif rec.iut.futile(cfg.futility_level):
                    rec.stop_reason = "stopped for futility: a control is closer to the suspect"
                if rec.stop_reason:
                    running.discard(r)
        note("greedy probes", spent, plan.greedy_max)
    for r in running:
        records[r].stop_reason = (
            "stopped: the budget ran out"
            if spent >= plan.greedy_max
            else "stopped: the probe pool ran out"
        )
    return spent


def _update(
    cfg: ProvenanceConfig,
    rec: StreamRecord,
    controls: Sequence[str],
    s_answer: list,
    r_answer: list,
    g_ctl: Mapping[str, list],
    i: int,
    prompt: str,
    queries: int,
) -> float:
    """Add one suspect answer to a reference's record; returns the anytime p-value."""
    a_r = prefix_agreement(s_answer, r_answer, cfg.k_units)
    diffs = {}
    for c in controls:
        a_c = prefix_agreement(s_answer, g_ctl[c][i], cfg.k_units)
        rec.agree_c[c].append(a_c)
        diffs[c] = (a_r - a_c - cfg.agreement_margin) / (1.0 + cfg.agreement_margin)
    rec.agree_r.append(a_r)
    rec.prompts.append(prompt)
    p = rec.iut.update(diffs)
    rec.trajectory.append((queries, p))
    return p
