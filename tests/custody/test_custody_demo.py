"""The quick custody demo end to end on real models (SmolLM2 served with a watermark over
HTTP, a real scan, distilled students, bundles verified). Slow: minutes of CPU."""

from __future__ import annotations

import json
import os

import pytest

# Opt-in: the quick tier took 37 min 43 s on 2 cores (2026-12-02, docs/benchmarks.md,
# "Custody: quick demo"), more than the whole suite's 30-minute budget (issue #17).
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("DISTILLTRACE_CUSTODY_DEMO") != "1",
        reason="quick custody demo takes ~38 min on 2 cores; "
        "set DISTILLTRACE_CUSTODY_DEMO=1 to run it",
    ),
]


def test_quick_demo_verifies_and_catches_tampering(tmp_path):
    """Nulls: the benign student never saw marked text nor the reference's outputs, so its
    radioactivity and provenance claims are tested under their nulls (p >= 0.01 expected);
    the bundles must verify from their files, and a flipped byte must fail."""
    from distilltrace.custody.demo import run_demo

    res = run_demo(tmp_path / "demo", "quick")
    assert res.targets["verify_passes_both"]
    assert res.targets["tampered_copy_fails"] and "harvested.jsonl" in res.tampered_error
    assert res.targets["benign_not_attributed"]
    assert res.campaign["flagged"] and res.campaign["true_accounts_found"] > 0
    assert res.bundles["harvested"]["pvalues"]["harvest_mark"] <= 1e-4
    saved = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert saved["targets"] == res.targets
