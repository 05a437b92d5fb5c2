"""Result objects of the provenance tests (dataclasses with to_dict())."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TestResult:
    """One test of one suspect against one reference (p-value None when skipped)."""

    name: str
    null: str
    pvalue: float | None
    n: int = 0
    effect: float | None = None
    effect_label: str = ""
    per_control: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    __test__ = False  # not a pytest class

    @property
    def ran(self) -> bool:
        return self.pvalue is not None

    @property
    def looked_at_no_data(self) -> bool:
        """Counted as p = 1 without having looked at any data (`not_run`): a reader must not
        take that p = 1 for evidence of no relation."""
        return self.ran and bool(self.details.get("not_run"))

    @property
    def statistic(self) -> float | None:
        """The evidence protocol's statistic: details["statistic"], else the effect."""
        s = self.details.get("statistic", self.effect)
        return None if s is None else float(s)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["statistic"] = self.statistic
        return d


def skipped_test(name: str, null: str, reason: str) -> TestResult:
    """A test that could not run, with the reason."""
    return TestResult(name=name, null=null, pvalue=None, skipped=reason)


def decided_test(name: str, null: str, level: float, best: float) -> TestResult:
    """A test not run because the reference's earlier tests already reached the stopping
    level: it counts as p = 1 in the Bonferroni combination (so the combined p-value is
    never smaller than if it had run, and stays valid)."""
    return not_run(
        TestResult(name=name, null=null, pvalue=1.0),
        f"not run (counted as p = 1): the earlier tests already reached the stopping "
        f"level {level:.3g} (p = {best:.3g})",
    )


def not_run(res: TestResult, why: str) -> TestResult:
    """`res` (p = 1) marked as counted without having looked at data, with why (shown as
    its `skipped` reason on the pages and listed in a custody claim's `not_run`)."""
    res.pvalue, res.skipped = 1.0, why
    res.details["not_run"] = True
    return res


@dataclass
class ReferenceResult:
    """Everything about one reference: per-test results, combined and Holm-adjusted p."""

    reference: str
    identity: str
    controls: list[str]
    tests: dict[str, TestResult]
    combined_pvalue: float | None
    combination: str
    holm_pvalue: float | None = None
    rejected: bool = False
    identical: str | None = None  # why the suspect is the same model, if it is
    trajectory: list[tuple[int, float]] = field(default_factory=list)  # (suspect queries, p)
    queries_to: dict[str, int | None] = field(default_factory=dict)  # "p<0.01" -> queries
    examples: list[dict[str, Any]] = field(default_factory=list)
    effect: dict[str, float] = field(default_factory=dict)
    # per test: the control its intersection-union verdict rests on, flagged if mismatched
    deciding_controls: list[dict[str, Any]] = field(default_factory=list)
    per_family: dict[str, dict[str, Any]] = field(default_factory=dict)  # greedy stream

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tests"] = {k: v.to_dict() for k, v in self.tests.items()}
        return d


@dataclass
class ProvenanceResult:
    """The answer for one suspect: plausible parents among the references, with evidence."""

    suspect: str
    suspect_identity: str
    alpha: float
    budget: int
    references: list[ReferenceResult]
    plausible_parents: list[str]
    identical_references: list[str]
    verdict: str
    queries: dict[str, dict[str, int]]  # model -> {"generate": n, "score": n}
    suspect_queries: int
    identity: dict[str, Any]
    config: dict[str, Any]
    warnings: list[str] = field(default_factory=list)  # off-format suspect, mismatched controls
    checks: dict[str, Any] = field(default_factory=dict)  # suspect format, control capability

    def reference(self, name: str) -> ReferenceResult:
        for r in self.references:
            if r.reference == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["references"] = [r.to_dict() for r in self.references]
        d["plausible_parents"] = self.plausible_parents or ["none"]
        return d
