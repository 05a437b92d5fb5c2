"""The registered harvest_membership test (provenance/served.py): `provenance test` with the
answers the reference served. Model doubles here: a reference whose sampled answers vary
with the seed (so fresh draws differ from the served ones), a suspect that gives the
served answers a higher likelihood (as one trained on them would), and one that does not.
The test's own calibration and power on real models: tests/provenance/test_membership.py
and docs/benchmarks.md ("Provenance: membership on the pretrained tier")."""

from __future__ import annotations

import hashlib
import json

import pytest

from distilltrace.errors import InputError
from distilltrace.models.base import Generation, ScoredContinuation, TokenLogprob
from distilltrace.provenance.config import DEFAULT_TESTS, ProvenanceConfig
from distilltrace.provenance.membership import NAME
from distilltrace.provenance.tester import test_provenance
from tests.provenance.test_provenance_registry import FAST, WORDS, Fake


class Sampler(Fake):
    """A reference whose answer depends on the seed (a sampling model)."""

    def generate(self, prompts, max_new_tokens=64, temperature=0.0, seed=0, chat=True, **kw):
        out = []
        for p in prompts:
            h = hashlib.sha256(f"{self.info.identity}|{p}|{temperature}|{seed}".encode()).digest()
            out.append(Generation(p, " ".join(WORDS[b % len(WORDS)] for b in h[:8]), (), "stop"))
        return out


class Learner(Fake):
    """A suspect that scores the answers it trained on higher than others."""

    def __init__(self, name: str, learned: set[str]):
        super().__init__(name)
        self.learned = learned

    def score(self, prompts, continuations, chat=True):
        out = super().score(prompts, continuations, chat)
        return [
            ScoredContinuation(p, c, tuple(TokenLogprob(t.token, t.logprob + 0.5)
                                           for t in s.tokens)) if c in self.learned else s
            for p, c, s in zip(prompts, continuations, out, strict=True)
        ]  # fmt: skip


def _served(tmp_path, ref: Sampler, n: int = 20):
    prompts = [f"question {i}" for i in range(n)]
    gens = ref.generate(prompts, temperature=0.8, seed=7)
    path = tmp_path / "served.jsonl"
    rows = [{"prompt": p, "response": g.text, "temperature": 0.8, "max_tokens": 12}
            for p, g in zip(prompts, gens, strict=True)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken\n")
    return path, {g.text for g in gens}


def _cfg(served, **kw) -> ProvenanceConfig:
    return ProvenanceConfig(**FAST, tests=(*DEFAULT_TESTS, NAME), served=str(served),
                            membership_fresh=2, **kw)  # fmt: skip


def test_membership_joins_the_verdict_for_the_reference_that_served(tmp_path):
    """A suspect that learned the served answers: the served answer ranks above both fresh
    ones in every exchange, p = 3^-20, and the test enters the Bonferroni combination with
    the four built-ins; its suspect queries (scores of 3 answers per exchange) are counted
    within the plan. Against the other reference (R2, which did not serve them) it is left
    out: fresh answers from R2 would not be draws of the served distribution."""
    r, r2 = Sampler("R"), Sampler("R2")
    served, texts = _served(tmp_path, r)
    s = Learner("S", texts)
    ctrls = [Fake("C1"), Fake("C2"), Fake("C3")]
    res = test_provenance(s, [r, r2], ctrls, budget=400, config=_cfg(served, served_by="R"))
    t = res.reference("R").tests[NAME]
    assert t.ran and t.n == 20 and t.pvalue == pytest.approx(3.0**-20)
    assert t.details["served_beats_every_fresh"] == 20 and t.details["quarantined"] == 1
    assert t.per_control == {} and t.null.startswith("the suspect's weights do not depend")
    ran = [x.pvalue for x in res.reference("R").tests.values() if x.ran]
    assert len(ran) == 5 and res.reference("R").combined_pvalue <= 5 * t.pvalue
    assert NAME not in res.reference("R2").tests
    assert res.suspect_queries <= 400


def test_membership_is_calibrated_when_the_suspect_never_saw_the_answers(tmp_path):
    """A suspect that scores every answer as our model does: each served answer ties with
    its fresh ones and is placed in a random order, so the p-value is the null's; over
    seeds no more than the level rejects."""
    r = Sampler("R")
    served, _ = _served(tmp_path, r, n=12)
    ctrls = [Fake("C1"), Fake("C2"), Fake("C3")]
    ps = []
    for seed in range(20):
        cfg = ProvenanceConfig(**{**FAST, "n_sampled": 8, "n_reverse": 4}, tests=(NAME,),
                               served=str(served), membership_fresh=2, seed=seed)  # fmt: skip
        t = test_provenance(Fake("S"), [r], ctrls, budget=200, config=cfg).references[0]
        ps.append(t.tests[NAME].pvalue)
    assert all(0 < p <= 1 for p in ps)
    assert sum(p <= 0.05 for p in ps) <= 3  # 1 expected at 0.05 over 20 seeds
    assert len(set(ps)) > 1  # the tie order is drawn per seed


def test_membership_inputs_are_checked_before_any_query(tmp_path):
    r, r2 = Sampler("R"), Sampler("R2")
    served, _ = _served(tmp_path, r)
    ctrls = [Fake("C1"), Fake("C2")]
    with pytest.raises(InputError, match="--served"):
        test_provenance(Fake("S"), [r], ctrls, config=_cfg(""))
    with pytest.raises(InputError, match="no such file"):
        test_provenance(Fake("S"), [r], ctrls, config=_cfg(tmp_path / "none.jsonl"))
    with pytest.raises(InputError, match="served_by"):
        test_provenance(Fake("S"), [r, r2], ctrls, config=_cfg(served))


def test_cli_served_adds_the_test(tmp_path, capsys):
    """`provenance test --served FILE` runs harvest_membership beside the defaults (tiny
    random models: a suspect that never saw the answers), and says so in result.json and
    the report; a missing file is one readable line before any model loads."""
    from distilltrace.cli import main
    from distilltrace.models import load_model
    from distilltrace.models.tiny import make_tiny_model

    teacher = make_tiny_model(tmp_path / "teacher", seed=5)
    ctrl = [str(make_tiny_model(tmp_path / f"c{i}", seed=10 + i)) for i in range(3)]
    m = load_model(str(teacher))
    prompts = [f"question {i}: what is {i} plus {i}?" for i in range(8)]
    gens = m.generate(prompts, max_new_tokens=8, temperature=1.0, seed=0)
    served = tmp_path / "served.jsonl"
    served.write_text("".join(json.dumps({"prompt": p, "response": g.text or "x",
                                          "temperature": 1.0, "max_tokens": 8}) + "\n"
                              for p, g in zip(prompts, gens, strict=True)))  # fmt: skip
    base = ["provenance", "test", "--suspect", ctrl[2], "--reference", str(teacher),
            "--control", ctrl[0], "--control", ctrl[1], "--budget", "120", "--no-cache",
            "--prompt-source", "builtin", "--max-new-tokens", "8"]  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main([*base, "--served", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "x")])
    assert e.value.code == 2 and "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main([*base, "--served", str(served), "--out", str(tmp_path / "out")])
    capsys.readouterr()
    doc = json.loads((tmp_path / "out" / "result.json").read_text())
    assert NAME in doc["config"]["tests"] and doc["config"]["served"] == str(served)
    t = doc["references"][0]["tests"][NAME]
    assert t["n"] == 8 and 0 < t["pvalue"] <= 1 and t["details"]["k"] == 1
    assert NAME in (tmp_path / "out" / "report.html").read_text()


def test_the_plan_reserves_membership_once_whatever_the_references(tmp_path):
    """harvest_membership runs against the reference that served only, so its scores are
    reserved once: with two references the plan's own share equals one reference's and
    the greedy stream keeps the rest."""
    from distilltrace.provenance.budget import budget_plan

    served, _ = _served(tmp_path, Sampler("R"))
    cfg = _cfg(served, served_by="R")
    one, two = budget_plan(cfg, 800, 1, 3, True), budget_plan(cfg, 800, 2, 3, True)
    assert one.own == two.own == 20 * 3  # 20 exchanges x (k + 1) scores
    base = budget_plan(ProvenanceConfig(**FAST), 800, 2, 3, True)
    assert two.greedy_max == base.greedy_max - 60


def test_the_served_file_is_read_once_per_content(tmp_path, monkeypatch):
    """The plan, the readiness check and the test each ask for the served rows; the file
    is read once, and again when its content changes."""
    from distilltrace.provenance import membership_cli
    from distilltrace.provenance.served import check_served

    served, _ = _served(tmp_path, Sampler("R"))
    reads = []
    real = membership_cli.read_served
    monkeypatch.setattr(membership_cli, "read_served", lambda p: reads.append(p) or real(p))
    cfg = _cfg(served)
    first = check_served(cfg)
    assert check_served(cfg) is first and len(reads) == 1
    assert len(check_served(_cfg(served, seed=3))[2][1]) == 20 and len(reads) == 2
    served.write_text(served.read_text().replace("question 0", "question zero"))
    rows, _, _ = check_served(cfg)
    assert rows[0]["prompt"] == "question zero" and len(reads) == 3
