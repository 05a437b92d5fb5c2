"""One evidence protocol: every subsystem's real result is Evidence-shaped, and family()
gives the Holm numbers of distilltrace.stats.holm over any mix of them."""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import pytest

from distilltrace.errors import InputError
from distilltrace.evidence import EVIDENCE_KEYS, Evidence, EvidenceResult, family
from distilltrace.stats import binomial_slack, holm


@pytest.fixture(scope="module")
def byte_tok():
    from distilltrace.models.tiny import byte_tokenizer

    return byte_tokenizer()


@pytest.fixture(scope="module")
def wm(byte_tok):
    from distilltrace.marks.keys import make_watermark
    from distilltrace.marks.schemes import SchemeParams, TokenizerBinding, tokenizer_fingerprint
    from distilltrace.marks.secret import Secret

    binding = TokenizerBinding(fingerprint=tokenizer_fingerprint(byte_tok), spec=None, id="byte")
    secret = Secret(hashlib.sha256(b"test_evidence").digest())
    return make_watermark(SchemeParams(scheme="greenlist"), binding, secret)


def _texts(seed: int, n: int = 20) -> list[str]:
    r = random.Random(seed)
    words = "the a river stone bread moon quiet green paper walks under over slowly".split()
    return [" ".join(r.choice(words) for _ in range(30)) for _ in range(n)]


def _results(wm, byte_tok) -> dict:
    """One real result of each subsystem, from a small real computation."""
    from distilltrace.marks.detect import detect_texts
    from distilltrace.marks.radioactivity import RadioactivityResult, score_closed
    from distilltrace.provenance.likelihood import likelihood_test
    from distilltrace.provenance.membership import membership_test
    from distilltrace.provenance.paired import signflip_test
    from distilltrace.traffic.fusion import cluster_test

    rng = np.random.default_rng(0)
    mark = detect_texts(wm, _texts(1), byte_tok).pooled
    closed, _ = score_closed(wm, _texts(2), ["prompt"] * 20, byte_tok)
    radio = RadioactivityResult("closed", {"name": "s"}, wm.to_dict(), closed, 20)
    models = ["R", "S", "c1", "c2", "c3"]
    scores = {(a, g): rng.normal(-2, 0.3, 40) for a in models for g in models}
    prov = likelihood_test(scores, "R", ["c1", "c2", "c3"], suspect="S", n_resamples=199)
    return {
        "mark": mark,
        "radioactivity": radio,
        "cluster": cluster_test(rng.uniform(size=12)),
        "paired": signflip_test(rng.normal(0, 1, 30), n_resamples=999),
        "provenance": prov,
        "holm": holm([0.01, 0.2, 0.03]),
        "membership": membership_test(rng.normal(size=25), rng.normal(size=(25, 2))),
    }


def test_every_subsystem_result_is_evidence(wm, byte_tok):
    """Null of each computation: data drawn independently of key / reference / population,
    so each p-value is just some valid number in [0, 1]; here we check the shape."""
    for label, r in _results(wm, byte_tok).items():
        assert isinstance(r, Evidence), label
        d = r.to_dict()
        for k in EVIDENCE_KEYS:
            assert k in d, (label, k)
        assert 0.0 <= r.pvalue <= 1.0, label
        assert isinstance(r.null, str) and r.null, label
        assert isinstance(r.n, int) and r.n >= 0, label
        json.dumps(EvidenceResult.of(r).to_dict())  # JSON-ready
        assert EvidenceResult.of(r).pvalue == r.pvalue


def test_family_over_a_mix_gives_holm_numbers(wm, byte_tok):
    """family() over one result of each kind: the same adjusted p-values and rejections
    as distilltrace.stats.holm on their p-values (global null: every null true)."""
    res = _results(wm, byte_tok)
    fam = family(res, alpha=0.05)
    h = holm([r.pvalue for r in res.values()], alpha=0.05)
    assert [c.name for c in fam.claims] == list(res)
    assert [c.adjusted for c in fam.claims] == list(h.adjusted)
    assert [c.reject for c in fam.claims] == list(h.reject)
    assert fam.pvalue == min(h.adjusted)
    assert isinstance(fam, Evidence)
    assert fam.to_dict()["details"]["claims"][0]["null"] == res["mark"].null


def test_family_skips_tests_that_did_not_run_and_rejects_bad_input():
    ran = EvidenceResult("a", "H0 a", 1.0, 0.001, 10)
    not_run = EvidenceResult("b", "H0 b", None, None, 0)
    fam = family([ran, not_run], alpha=0.01)
    assert fam.skipped == ("b",) and fam.n == 1 and fam.claims[0].reject
    with pytest.raises(InputError):
        family([ran, ran])
    with pytest.raises(InputError):
        EvidenceResult("x", "H0", 1.0, 1.5)
    with pytest.raises(InputError):
        family([object()])
    with pytest.raises(InputError):
        family([ran], alpha=0)


def test_family_controls_fwer_on_null_data():
    """Null: every claim's p-value is Uniform(0, 1) (all nulls true). The family rejects
    anything in at most alpha of the trials (plus binomial slack)."""
    rng = np.random.default_rng(3)
    trials, alpha = 2000, 0.05
    any_reject = 0
    for _ in range(trials):
        rs = [
            EvidenceResult(f"c{i}", "H0", 0.0, float(p), 1)
            for i, p in enumerate(rng.uniform(size=5))
        ]
        any_reject += family(rs, alpha).details["n_rejected"] > 0
    assert any_reject / trials <= alpha + binomial_slack(trials, alpha)


def test_evidence_result_round_trip():
    e = EvidenceResult("x", "H0", 2.0, 0.5, 3, {"k": np.float64(1.5), "t": (1, 2)})
    d = e.to_dict()
    assert d["details"] == {"k": 1.5, "t": [1, 2]}
    assert EvidenceResult.from_dict(json.loads(json.dumps(d))) == EvidenceResult(
        "x", "H0", 2.0, 0.5, 3, {"k": 1.5, "t": [1, 2]}
    )
    with pytest.raises(InputError):
        EvidenceResult.from_dict({"name": "x"})
