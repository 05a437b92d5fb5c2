"""Provenance: was a suspect model distilled from a reference? Hypothesis tests with valid
p-values (greedy agreement, likelihood, lexical fingerprint), identity evidence, Holm over
references, adaptive and sequential querying. See docs/provenance.md; new tests plug in
through `register` (docs/extending.md). The benchmark is distilltrace.bench.provenance."""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "ProvenanceConfig": "config",
    "test_provenance": "tester",
    "ProvenanceResult": "result",
    "TestResult": "result",
    "skipped_test": "result",
    "not_run": "result",
    "write_report": "report",
    "ProvenanceTest": "registry",
    "QueryNeeds": "registry",
    "TestInputs": "registry",
    "register": "registry",
    "registered": "registry",
    "unregister": "registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # lazy: keep `distilltrace --help` fast
    if name in _EXPORTS:
        return getattr(import_module(f"distilltrace.provenance.{_EXPORTS[name]}"), name)
    raise AttributeError(name)
