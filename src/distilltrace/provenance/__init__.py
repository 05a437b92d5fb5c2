"""Provenance: was a suspect model distilled from a reference? Hypothesis tests with valid
p-values (greedy agreement, likelihood, lexical fingerprint), identity evidence, Holm over
references, adaptive and sequential querying. See docs/provenance.md."""

from __future__ import annotations

from typing import Any

__all__ = ["ProvenanceConfig", "ProvenanceResult", "run_bench", "test_provenance", "write_report"]


def __getattr__(name: str) -> Any:  # lazy: keep `distilltrace --help` fast
    if name in ("ProvenanceConfig", "test_provenance"):
        from distilltrace.provenance import tester

        return getattr(tester, name)
    if name == "ProvenanceResult":
        from distilltrace.provenance.result import ProvenanceResult

        return ProvenanceResult
    if name == "write_report":
        from distilltrace.provenance.report import write_report

        return write_report
    if name == "run_bench":
        from distilltrace.provenance.bench import run_bench

        return run_bench
    raise AttributeError(name)
