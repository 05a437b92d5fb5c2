"""The registry of provenance tests: one dict, name -> test, filled through `register`.

The built-in tests register themselves through the same `register` call a plugin uses
(distilltrace/provenance/builtin_tests.py); installed packages can add tests through the
entry-point group "distilltrace.provenance_tests" (a module that calls `register` on
import, or a test object, which is registered). See docs/extending.md.

A test states its null hypothesis, the data it needs (`queries`: the budget plan reserves
the suspect queries for it) and computes a valid p-value from those data (`run`). The
tester gathers the data once for every test, combines the p-values of the tests that ran
(Bonferroni), and controls the error over references (Holm).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from distilltrace.errors import InputError
from distilltrace.provenance.config import ProvenanceConfig
from distilltrace.provenance.result import TestResult

if TYPE_CHECKING:
    from distilltrace.provenance.session import Session
    from distilltrace.provenance.stream import StreamRecord

ENTRY_POINT_GROUP = "distilltrace.provenance_tests"


@dataclass(frozen=True)
class QueryNeeds:
    """What a test needs gathered before it runs (the budget-plan hook's answer).

    sampled: sampled outputs of the suspect, the reference and the controls on the shared
        prompts (the budget plan gives them at most a fifth of the budget, `n_sampled` at most).
    fingerprint: sampled outputs of the reference and the controls on separate prompts
        (no suspect queries).
    reverse: the suspect scores the reference's outputs and the controls' (a share of the
        budget; only when the suspect can score).
    stream: the test reads the adaptive greedy stream, which takes the budget left.
    suspect_queries: suspect queries the test makes itself through the session, per
        reference (taken off the budget before the greedy stream; checked after `run`).
    one_reference: the test runs against one reference at most (it returns None for the
        others), so its `suspect_queries` are reserved once, not once per reference; the
        tester checks the total over references.
    """

    sampled: bool = False
    fingerprint: bool = False
    reverse: bool = False
    stream: bool = False
    suspect_queries: int = 0
    one_reference: bool = False

    def own_queries(self, n_refs: int) -> int:
        """The suspect queries to reserve for this test over n_refs references."""
        return self.suspect_queries * (1 if self.one_reference else n_refs)


@dataclass(frozen=True)
class TestInputs:
    """Everything a test may use for one reference. Models are named by label; query them
    through `session` (memoised, counted against the budget)."""

    session: Session
    cfg: ProvenanceConfig
    suspect: str
    reference: str
    controls: list[str]
    prompts: list[str]  # the shared sampled-output prompts (i.i.d. from the probe pool)
    sampled: Mapping[str, list[str]]  # label -> sampled outputs on `prompts`
    fingerprint: Mapping[str, list[str]]  # label -> outputs on separate prompts (no suspect)
    reverse_prompts: list[str]  # prompts whose reference outputs the suspect may score
    n_gap: int  # outputs per control the suspect may score (capability gap)
    stream: StreamRecord | None = None  # this reference's greedy stream (stream tests only)
    pool: Sequence[str] = ()  # the probe pool in its seeded order (tests' own queries)

    __test__ = False  # not a pytest class

    def can_score(self, label: str) -> bool:
        """Whether the model gives log-probabilities (`score`)."""
        return self.session.can_score(label)


@runtime_checkable
class ProvenanceTest(Protocol):
    """A provenance test. `name` keys results and `ProvenanceConfig.tests`; `null` is the
    null hypothesis in one sentence (shown in the report next to the p-value)."""

    name: str
    null: str

    def queries(self, cfg: ProvenanceConfig) -> QueryNeeds:
        """The data this test needs (the budget plan reserves suspect queries for it)."""
        ...

    def run(self, data: TestInputs) -> TestResult | None:
        """A p-value valid under `null` (or `skipped_test(...)` with the reason); None to
        leave the test out of this reference's results."""
        ...


_TESTS: dict[str, ProvenanceTest] = {}
_loaded = False


def _ensure_loaded() -> None:
    """Register the built-ins (first, so they keep their order), then installed plugins."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    try:
        import distilltrace.provenance.builtin_tests  # noqa: F401  (registers on import)

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            obj = ep.load()
            if isinstance(obj, ProvenanceTest) and obj.name not in _TESTS:
                register(obj)
    except BaseException:
        _loaded = False
        raise


def register(test: ProvenanceTest, *, replace: bool = False) -> ProvenanceTest:
    """Add a test to the registry (returns it, so it can decorate an instance's factory).
    A name taken by another test is an error unless `replace`."""
    _ensure_loaded()
    if not isinstance(test, ProvenanceTest):
        raise TypeError(f"{test!r} is not a ProvenanceTest (name, null, queries(), run())")
    old = _TESTS.get(test.name)
    if old is not None and old is not test and not replace:
        raise ValueError(f"a provenance test named {test.name!r} is already registered")
    _TESTS[test.name] = test
    return test


def unregister(name: str) -> None:
    """Remove a test (a plugin's, in its own tests; removing a built-in changes results)."""
    _ensure_loaded()
    _TESTS.pop(name, None)


def registered() -> dict[str, ProvenanceTest]:
    """The registry: name -> test, built-ins first, in registration order."""
    _ensure_loaded()
    return _TESTS


def selected(names: Sequence[str]) -> list[ProvenanceTest]:
    """The registered tests named in `names`, in registration order (InputError for an
    unknown name)."""
    tests = registered()
    unknown = set(names) - set(tests)
    if unknown:
        raise InputError(f"unknown tests {sorted(unknown)}; known: {', '.join(tests)}")
    return [t for n, t in tests.items() if n in names]
