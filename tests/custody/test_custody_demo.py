"""The quick custody demo end to end on real models (SmolLM2 served with a watermark over
HTTP, a real scan, distilled students, bundles verified). Slow: minutes of CPU."""

from __future__ import annotations

import json
import os

import pytest

from distilltrace.models.precision import native_bf16

# The quick tier took 14 min 44 s on 2 cores of an AMD EPYC (session 22), 939 s in session
# 25's suite and 28 min 57 s in one standalone run there (docs/benchmarks.md, "Custody:
# quick demo"): the longest test of the suite, run by CI as the issue asks. Its own timeout
# is above the suite's 30 min per test (Makefile), which a slow run could otherwise reach.
# Those machines multiply bfloat16 natively. On a CPU that emulates it (AVX2 only) the demo
# trains and queries in float32 and took 47 minutes (session 32): more than the
# rest of the suite three times over, and with it near CI's 90-minute limit. There it runs
# only when asked (DISTILLTRACE_SLOW_DEMO=1); the custody parts are tested apart
# (test_custody.py), and the demo's whole chain on tiny models
# (test_custody_demo_chain.py), on every machine.
SLOW_CPU = not native_bf16() and os.environ.get("DISTILLTRACE_SLOW_DEMO") != "1"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(5400),
    pytest.mark.skipif(
        SLOW_CPU,
        reason="no native bfloat16 on this CPU: the quick demo took 47 min on such a CPU "
        "(session 32); DISTILLTRACE_SLOW_DEMO=1 runs it",
    ),
]


def test_quick_demo_attributes_the_harvested_student_only_and_verifies(tmp_path):
    """Nulls: the benign student never saw marked text nor the reference's outputs, so its
    radioactivity and provenance claims are tested under their nulls and it must not be
    attributed (asserted: the false-accusation side); both bundles verify from their files
    alone, and a flipped byte fails. The harvested student carries the mark's trace: its
    campaign and harvest claims, open-mode radioactivity (below 1e-17 in every run so
    far) and the membership of its served answers (1.7e-24 in session 28), are asserted. Closed mode and provenance are measured, not asserted: closed gave
    0.017 in 1 of 8 runs and provenance p = 1 in 1 of 8 (session 26; docs/benchmarks.md,
    "Custody: quick demo"), so power claims on them fail at random; the test checks that
    the attribution verdict is the Holm rule applied to the claims."""
    from statsmodels.stats.multitest import multipletests

    from distilltrace.custody.demo import run_demo

    res = run_demo(tmp_path / "demo", "quick")
    assert res.targets["verify_passes_both"]
    assert res.targets["tampered_copy_fails"] and "harvested.jsonl" in res.tampered_error
    assert res.campaign["flagged"] and res.campaign["true_accounts_found"] > 0
    assert res.targets["benign_not_attributed"]
    assert res.targets["benign_suspect_p_ge_0.01"]
    harvested = res.bundles["harvested"]
    p = harvested["pvalues"]
    assert p["campaign"] <= 0.01 and p["harvest_mark"] <= 1e-4, p
    assert p["radioactivity_open"] <= 1e-6, p
    # the student trained on the 79 served answers: 79 of 79 above their fresh twins in
    # session 28 (p = 2^-79); its benign twin is under the claim's null (asserted above)
    assert p["harvest_membership"] <= 1e-6, p
    assert 0.0 <= p["provenance"] <= 1.0 and 0.0 <= p["radioactivity_closed"] <= 1.0
    holm_all = bool(multipletests(list(p.values()), alpha=0.01, method="holm")[0].all())
    assert harvested["attributed"] == holm_all, p  # Holm at 0.01 rejects every claim
    saved = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert saved["targets"] == res.targets
    assert saved["config"]["tier"] == "quick"
