"""The provenance test registry: a test registered from outside the package (as a plugin
would, here from this file) runs end to end, its p-value is combined with the built-ins'
(Bonferroni) and controlled over references (Holm); its budget-plan hook is honoured."""

from __future__ import annotations

import hashlib

import pytest

from distilltrace.errors import InputError
from distilltrace.models.base import (
    GENERATE,
    SCORE,
    Generation,
    ModelInfo,
    ScoredContinuation,
    TokenLogprob,
)
from distilltrace.provenance import (
    QueryNeeds,
    TestInputs,
    TestResult,
    not_run,
    register,
    unregister,
    write_report,
)
from distilltrace.provenance.budget import budget_plan, min_budget
from distilltrace.provenance.config import DEFAULT_TESTS, ProvenanceConfig
from distilltrace.provenance.paired import intersection_union, signflip_test
from distilltrace.provenance.registry import registered
from distilltrace.provenance.tester import test_provenance
from distilltrace.stats import holm

WORDS = "the a cat dog sun moon tea bread river stone hill song bird tree rain wind".split()


# ---------------------------------------------------------------- the toy test -------------


class SampledExactMatch:
    """Toy test: the suspect's sampled output is the reference's word for word more often
    than it is a control's. Per control, d(x) = [y_S = y_R] - [y_S = y_C]; studentized
    sign-flip test of E[d] <= 0; the suspect must beat every control (max p)."""

    name = "toy_exact_match"
    null = (
        "For some control C, P(y_S = y_R) <= P(y_S = y_C) over the probe distribution: the "
        "suspect's sampled outputs copy the reference's no more often than a control's."
    )

    def queries(self, cfg: ProvenanceConfig) -> QueryNeeds:
        return QueryNeeds(sampled=True)  # the shared sampled outputs: no queries of its own

    def run(self, data: TestInputs) -> TestResult:
        y_s, y_r = data.sampled[data.suspect], data.sampled[data.reference]
        per = {}
        for i, c in enumerate(data.controls):
            y_c = data.sampled[c]
            d = [float(s == r) - float(s == x) for s, r, x in zip(y_s, y_r, y_c, strict=True)]
            per[c] = {"pvalue": signflip_test(d, seed=data.cfg.seed + i).pvalue}
        p = intersection_union({c: v["pvalue"] for c, v in per.items()})
        return TestResult(self.name, self.null, p, n=len(y_s), per_control=per)


@pytest.fixture
def toy():
    test = register(SampledExactMatch())  # the one registration line a contributor writes
    yield test
    unregister(test.name)


# ---------------------------------------------------------------- fake models --------------


class Fake:
    """Deterministic words per (identity, prompt, temperature); a student copies its
    parent's answer on a hash-chosen fraction `copy` of the prompts."""

    def __init__(self, name: str, parent: Fake | None = None, copy: float = 0.0):
        self.info = ModelInfo(name, name, "fake", "fake", 256, name, frozenset({GENERATE, SCORE}))
        self.parent, self.copy = parent, copy

    def _text(self, prompt: str, temperature: float) -> str:
        u = hashlib.sha256(f"u|{self.info.identity}|{prompt}|{temperature}".encode()).digest()
        if self.parent is not None and u[0] / 255 < self.copy:
            return self.parent._text(prompt, temperature)
        h = hashlib.sha256(f"{self.info.identity}|{prompt}|{temperature}".encode()).digest()
        return " ".join(WORDS[b % len(WORDS)] for b in h[:8])

    def generate(self, prompts, max_new_tokens=64, temperature=0.0, seed=0, chat=True, **kw):
        return [Generation(p, self._text(p, temperature), (), "stop") for p in prompts]

    def score(self, prompts, continuations, chat=True):
        return [
            ScoredContinuation(p, c, tuple(TokenLogprob(w, -1.0 - len(w) / 10) for w in c.split()))
            for p, c in zip(prompts, continuations, strict=True)
        ]


FAST = dict(
    pool_size=300, n_sampled=24, n_fingerprint=24, n_reverse=12, max_new_tokens=12,
    prompt_source="builtin",
)  # fmt: skip


def _models():
    r, r2 = Fake("R"), Fake("R2")
    return Fake("S", parent=r, copy=0.6), [r, r2], [Fake("C1"), Fake("C2"), Fake("C3")]


# ---------------------------------------------------------------- tests --------------------


def test_builtins_are_registered_first_in_order():
    assert list(registered())[: len(DEFAULT_TESTS)] == list(DEFAULT_TESTS)
    assert ProvenanceConfig().tests == DEFAULT_TESTS


def test_registered_test_runs_end_to_end_and_is_combined_with_holm(toy):
    s, refs, ctrls = _models()
    cfg = ProvenanceConfig(**FAST, tests=(*DEFAULT_TESTS, toy.name))
    res = test_provenance(s, refs, ctrls, budget=400, alpha=0.01, config=cfg)
    ref, other = res.reference("R"), res.reference("R2")
    mine = ref.tests[toy.name]
    assert mine.ran and mine.pvalue <= 1e-3 and mine.null == toy.null
    assert other.tests[toy.name].pvalue > 0.05  # no copying from R2
    ran = [t.pvalue for t in ref.tests.values() if t.ran]
    assert len(ran) == 5  # the four built-ins and the toy, all with 3 controls
    assert ref.combined_pvalue == pytest.approx(min(1.0, min(ran) * len(ran)))
    assert "x 5 tests" in ref.combination
    h = holm([x.combined_pvalue for x in res.references], alpha=0.01)
    assert [x.holm_pvalue for x in res.references] == list(h.adjusted)
    assert res.plausible_parents == ["R"]
    assert tuple(res.config["tests"]) == (*DEFAULT_TESTS, toy.name)
    # Registered is not selected: a default run leaves it out, and the fixed-sample
    # built-ins give the same p-values with it or without it.
    base = test_provenance(s, refs, ctrls, budget=400, alpha=0.01, config=ProvenanceConfig(**FAST))
    assert toy.name not in base.reference("R").tests
    for name in ("likelihood", "likelihood_reverse", "lexical_fingerprint"):
        assert base.reference("R").tests[name].pvalue == ref.tests[name].pvalue


class NeedsLongAnswers(SampledExactMatch):
    """Toy plugin that would score only answers of at least 50 words; the fake models
    answer in 8, so it always marks itself not run (through the public `not_run`)."""

    name = "toy_long_answers"

    def run(self, data: TestInputs) -> TestResult:
        res = TestResult(self.name, self.null, None, n=0)
        return not_run(res, "no answer of 50 words or more (counted as p = 1)")


def test_a_plugin_marks_itself_not_run_through_the_public_api(tmp_path):
    test = register(NeedsLongAnswers())
    try:
        s, refs, ctrls = _models()
        cfg = ProvenanceConfig(**FAST, tests=(*DEFAULT_TESTS, test.name))
        res = test_provenance(s, refs[:1], ctrls, budget=400, alpha=0.01, config=cfg)
    finally:
        unregister(test.name)
    t = res.reference("R").tests[test.name]
    assert t.pvalue == 1.0 and t.looked_at_no_data and t.skipped.startswith("no answer of 50")
    page = write_report(res, tmp_path)["html"].read_text()
    assert "no answer of 50 words or more" in page


def test_unknown_and_duplicate_names_are_errors(toy):
    s, refs, ctrls = _models()
    with pytest.raises(InputError, match=f"unknown tests.*known: .*{toy.name}"):
        test_provenance(s, refs, ctrls, config=ProvenanceConfig(**FAST, tests=("nope",)))
    with pytest.raises(ValueError, match="already registered"):
        register(SampledExactMatch())
    assert register(SampledExactMatch(), replace=True).name == toy.name
    with pytest.raises(TypeError, match="not a ProvenanceTest"):
        register(object())  # type: ignore[arg-type]


class _OwnQueries(SampledExactMatch):
    """Asks the suspect for greedy answers on `k` of the sampled-output prompts."""

    name = "toy_own_queries"

    def __init__(self, k: int, declared: int):
        self.k, self.declared = k, declared

    def queries(self, cfg: ProvenanceConfig) -> QueryNeeds:
        return QueryNeeds(sampled=True, suspect_queries=self.declared)

    def run(self, data: TestInputs) -> TestResult:
        data.session.greedy(data.suspect, data.prompts[: self.k])
        return super().run(data)


def test_budget_hook_reserves_a_tests_own_queries():
    test = register(_OwnQueries(k=5, declared=5))
    try:
        cfg = ProvenanceConfig(**FAST, tests=(*DEFAULT_TESTS, test.name))
        base = ProvenanceConfig(**FAST)
        plan, plan0 = budget_plan(cfg, 400, 2, 3, True), budget_plan(base, 400, 2, 3, True)
        assert plan.own == 10 and plan.greedy_max == plan0.greedy_max - 10
        n = min_budget(cfg, 2, 3, True)
        assert budget_plan(cfg, n, 2, 3, True).ok and not budget_plan(cfg, n - 1, 2, 3, True).ok
        s, refs, ctrls = _models()
        res = test_provenance(s, refs, ctrls, budget=n, config=cfg)
        assert res.suspect_queries <= n
    finally:
        unregister(test.name)


def test_a_test_that_overspends_its_declared_queries_is_stopped():
    test = register(_OwnQueries(k=5, declared=2))
    try:
        s, refs, ctrls = _models()
        cfg = ProvenanceConfig(**FAST, tests=(*DEFAULT_TESTS, test.name))
        with pytest.raises(RuntimeError, match="toy_own_queries.*5 new suspect queries"):
            test_provenance(s, refs, ctrls, budget=400, config=cfg)
    finally:
        unregister(test.name)


class _OneReference(_OwnQueries):
    """Declares its own queries for one reference, but spends them on every reference."""

    name = "toy_one_reference"

    def queries(self, cfg: ProvenanceConfig) -> QueryNeeds:
        return QueryNeeds(sampled=True, suspect_queries=self.declared, one_reference=True)

    def run(self, data: TestInputs) -> TestResult:
        i = 0 if data.reference == "R" else 1  # other prompts per reference (not memoised)
        data.session.greedy(data.suspect, data.prompts[i * self.k : (i + 1) * self.k])
        return SampledExactMatch.run(self, data)


def test_a_one_reference_test_is_reserved_once_and_held_to_it():
    """one_reference: the plan reserves the test's queries once (not per reference), and
    the tester checks the total over references, so a test that spends on two references
    what it reserved for one is stopped at the second."""
    test = register(_OneReference(k=5, declared=5))
    try:
        cfg = ProvenanceConfig(**FAST, tests=(*DEFAULT_TESTS, test.name))
        plan0 = budget_plan(ProvenanceConfig(**FAST), 400, 2, 3, True)
        plan = budget_plan(cfg, 400, 2, 3, True)
        assert plan.own == 5 and plan.greedy_max == plan0.greedy_max - 5
        s, refs, ctrls = _models()
        assert len(refs) == 2
        with pytest.raises(RuntimeError, match="toy_one_reference.*5 new suspect queries.*0 left"):
            test_provenance(s, refs, ctrls, budget=400, config=cfg)
    finally:
        unregister(test.name)
