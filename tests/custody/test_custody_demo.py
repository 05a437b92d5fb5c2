"""The quick custody demo end to end on real models (SmolLM2 served with a watermark over
HTTP, a real scan, distilled students, bundles verified). Slow: minutes of CPU."""

from __future__ import annotations

import json

import pytest

# The quick tier took 14 min 44 s on 2 cores of an AMD EPYC (session 22), 939 s in session
# 25's suite and 28 min 57 s in one standalone run there (docs/benchmarks.md, "Custody:
# quick demo"): the longest test of the suite, run by CI as the issue asks. Its own timeout
# is above the suite's 30 min per test (Makefile), which a slow run could otherwise reach.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]


def test_quick_demo_attributes_the_harvested_student_only_and_verifies(tmp_path):
    """Nulls: the benign student never saw marked text nor the reference's outputs, so its
    radioactivity and provenance claims are tested under their nulls and it must not be
    attributed; the student fine-tuned on the campaign's harvest must be, every claim
    holding at family-wise level 0.01 (Holm); both bundles verify from their files alone,
    and a flipped byte fails. (The issue's 1e-4 level on every harvested p-value is
    recorded in demo.json's targets and docs/benchmarks.md, not asserted: it depends on the
    fresh random key each run draws.)"""
    from distilltrace.custody.demo import run_demo

    res = run_demo(tmp_path / "demo", "quick")
    assert res.targets["verify_passes_both"]
    assert res.targets["tampered_copy_fails"] and "harvested.jsonl" in res.tampered_error
    assert res.campaign["flagged"] and res.campaign["true_accounts_found"] > 0
    assert res.targets["benign_not_attributed"]
    assert res.bundles["harvested"]["attributed"], res.bundles["harvested"]["pvalues"]
    assert res.bundles["harvested"]["pvalues"]["harvest_mark"] <= 1e-4
    saved = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert saved["targets"] == res.targets
    assert saved["config"]["tier"] == "quick"
