"""The budget plan: how the suspect queries are split between the identity probes, the data
the selected tests need (their `queries` hook) and the greedy stream (the rest)."""

from __future__ import annotations

from dataclasses import dataclass

from distilltrace.errors import InputError
from distilltrace.provenance.config import ProvenanceConfig
from distilltrace.provenance.identity import IDENTITY_PROBES
from distilltrace.provenance.registry import QueryNeeds, selected

MIN_GREEDY = 10  # suspect queries the greedy test needs at the least


@dataclass(frozen=True)
class BudgetPlan:
    """How a suspect budget is split: identity probes, sampled outputs, reverse scoring
    (reference outputs and the capability gap), the tests' own queries, and the greedy
    test's share (the rest)."""

    n_id: int
    n_samp: int
    n_rev: int
    n_gap: int
    rev_cost: int
    greedy_max: int
    own: int = 0  # suspect queries the selected tests make themselves (all references)
    n_pilot: int = 0  # format pilot: greedy answers on prompts no test uses (all formats)
    n_cap: int = 0  # capability check: neutral texts the suspect scores

    @property
    def ok(self) -> bool:
        return self.greedy_max >= MIN_GREEDY

    @property
    def fixed(self) -> int:
        """Suspect queries spent before the greedy stream."""
        return self.n_id + self.n_pilot + self.n_cap + self.n_samp + self.rev_cost + self.own


def plan_needs(cfg: ProvenanceConfig) -> list[QueryNeeds]:
    """The `queries` hook of each selected test."""
    return [t.queries(cfg) for t in selected(cfg.tests)]


def budget_plan(
    cfg: ProvenanceConfig, budget: int, n_refs: int, n_union: int, suspect_scores: bool
) -> BudgetPlan:
    """The split of `budget` suspect queries over n_refs references and n_union controls."""
    needs = plan_needs(cfg)
    n_pilot, n_cap = pilot_queries(cfg, suspect_scores)
    n_id = (len(IDENTITY_PROBES) if cfg.identity_probes else 0) + n_pilot + n_cap
    want_sampled = any(n.sampled for n in needs)
    n_samp = min(cfg.n_sampled, max(0, (budget - n_id) // 5)) if want_sampled else 0
    do_rev = any(n.reverse for n in needs) and suspect_scores and n_samp > 0
    n_rev = min(cfg.n_reverse, max(0, (2 * (budget - n_id)) // (5 * n_refs))) if do_rev else 0
    n_gap = min(cfg.n_gap, n_samp, (budget - n_id) // (10 * max(1, n_union))) if n_rev else 0
    rev_cost = n_rev * n_refs + n_gap * n_union
    own = sum(n.own_queries(n_refs) for n in needs)
    greedy_max = budget - n_id - n_samp - rev_cost - own
    n_id -= n_pilot + n_cap
    return BudgetPlan(n_id, n_samp, n_rev, n_gap, rev_cost, greedy_max, own, n_pilot, n_cap)


def pilot_queries(cfg: ProvenanceConfig, suspect_scores: bool) -> tuple[int, int]:
    """Suspect queries of the format pilot (n_format_pilot per candidate format: chat, raw
    and the format_candidates for "auto") and of the capability check (n_capability neutral texts, when it can score)."""
    n_fmt = 2 + len(cfg.format_candidates) if cfg.suspect_format == "auto" else 1
    pilot = cfg.capability_check or cfg.suspect_format != "chat"
    n_pilot = cfg.n_format_pilot * n_fmt if pilot else 0
    n_cap = cfg.n_capability if cfg.capability_check and suspect_scores else 0
    return n_pilot, n_cap


def min_budget(cfg: ProvenanceConfig, n_refs: int, n_union: int, suspect_scores: bool) -> int:
    """The smallest budget from which on every budget passes the check (the split rounds
    down, so a budget can pass where one more does not). The shares take at most 1/5 +
    2/5 + 1/10 of (budget - identity probes), so from n_id + ceil((10 + own) / 0.3) on the
    greedy test gets >= 10 (n_id + 34 without tests' own queries)."""
    plan0 = budget_plan(cfg, 0, n_refs, n_union, suspect_scores)
    top = plan0.n_id + plan0.n_pilot + plan0.n_cap + -(-(MIN_GREEDY + plan0.own) * 10 // 3)
    b = top
    while b > 0 and budget_plan(cfg, b - 1, n_refs, n_union, suspect_scores).ok:
        b -= 1
    return b


def checked_plan(
    cfg: ProvenanceConfig, budget: int, n_refs: int, n_union: int, suspect_scores: bool
) -> BudgetPlan:
    """The plan, or InputError naming the smallest budget that is enough."""
    plan = budget_plan(cfg, budget, n_refs, n_union, suspect_scores)
    if plan.ok:
        return plan
    need = min_budget(cfg, n_refs, n_union, suspect_scores)  # > budget: every one from it passes
    raise InputError(
        f"budget {budget} is too small: at least {need} suspect queries are needed for "
        f"{n_refs} reference(s) and {n_union} control(s) ({MIN_GREEDY} or more for the "
        "greedy test after the fixed-sample tests take their share)"
    )
