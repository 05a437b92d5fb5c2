"""test_provenance: is the suspect closer to a reference than models known not to derive
from it are? Four steps, each a function below: plan (input checks and the budget split),
gather (probe pool, identity probes, sampled outputs), test (the registered tests, then
the greedy stream) and combine (Bonferroni per reference, Holm over references).

The tests themselves are in the registry (registry.py; the built-ins in
builtin_tests.py); the statistics in agreement/likelihood/lexical."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from distilltrace.models.base import Model
from distilltrace.provenance.budget import (
    MIN_GREEDY,
    BudgetPlan,
    budget_plan,
    checked_plan,
    min_budget,
)
from distilltrace.provenance.capability import (
    ControlCheck,
    check_controls,
    deciding_controls,
    matched_controls,
)
from distilltrace.provenance.combine import (
    COMBINATION,
    apply_holm,
    combined_trajectory,
    identical_result,
    queries_needed,
    reference_result,
    smallest_p,
    verdict,
)
from distilltrace.provenance.config import (
    DEFAULT_TESTS,
    DEFAULTS,
    MIN_CONTROLS,
    WHY_CONTROLS,
    ProvenanceConfig,
)
from distilltrace.provenance.degenerate import degeneracy
from distilltrace.provenance.identity import IDENTITY_PROBES, identity_evidence
from distilltrace.provenance.inputs import (
    RepeatedModelWarning,
    check_config,
    check_out_dir,
    check_request,
    checked_inputs,
)
from distilltrace.provenance.probes import family_table, probe_pool, prompt_families
from distilltrace.provenance.registry import ProvenanceTest, TestInputs, selected
from distilltrace.provenance.result import (
    ProvenanceResult,
    ReferenceResult,
    TestResult,
    decided_test,
)
from distilltrace.provenance.session import (
    Outputs,
    QueryCounter,
    QueryStore,
    Session,
    can_score,
    label_models,
)
from distilltrace.provenance.standing import standing_warnings
from distilltrace.provenance.stream import StreamPlan, StreamRecord, run_stream
from distilltrace.provenance.suspect_format import (
    MOSTLY_DEGENERATE,
    base_identity,
    check_format,
    pilot,
)

TESTS = DEFAULT_TESTS  # the built-in tests (the registry may hold more: registry.registered())
Note = Callable[[str, int, int], None]


@dataclass
class _Run:
    """One test_provenance call after the plan step: labelled models and the budget split."""

    cfg: ProvenanceConfig
    tests: list[ProvenanceTest]  # the selected tests, in registration order
    sess: Session
    suspect: str
    refs: list[str]
    ref_models: list[Model]
    ctrl_labs: dict[str, list[str]]
    identical: dict[str, str]  # reference -> why it is the suspect itself
    plan: BudgetPlan
    note: Note
    warnings: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    cap: ControlCheck | None = None  # the capability check, when it ran
    fixed_spent: int = 0  # suspect queries made before the greedy stream (the trajectory's start)
    own_spent: dict[str, int] = field(default_factory=dict)  # one-reference test -> queries so far

    @property
    def active(self) -> list[str]:
        return [r for r in self.refs if r not in self.identical]


@dataclass
class _Data:
    """What the gather step collected (the inputs of every fixed-sample test)."""

    pool: list[str]
    samp_prompts: list[str]
    fp_prompts: list[str]
    stream_prompts: list[str]
    pilot_prompts: list[str] = field(default_factory=list)
    identity: dict[str, Any] = field(default_factory=dict)
    samp: Mapping[str, list[str]] = field(default_factory=dict)  # generated when first read
    fp: Mapping[str, list[str]] = field(default_factory=dict)


@dataclass
class _Tests:
    """What the test step produced, per active reference."""

    fixed: dict[str, dict[str, TestResult]]  # the fixed-sample tests (run before the stream)
    streams: dict[str, StreamRecord]  # the greedy stream (empty when no test reads it)
    results: dict[str, dict[str, TestResult]]  # every test: fixed-sample ones, then stream's


def test_provenance(
    suspect: Model,
    references: Sequence[Model],
    controls: Sequence[Model] | Mapping[str, Sequence[Model]],
    *,
    budget: int | None = None,
    alpha: float | None = None,
    config: ProvenanceConfig | None = None,
    progress: Note | None = None,
    store: QueryStore | None = None,
    name_of: Callable[[Model], str] | None = None,
) -> ProvenanceResult:
    """Test whether `suspect` derives from each reference, against controls (models of
    similar capability known not to derive from that reference).

    `controls` is one list for every reference, a list of lists (one per reference), or a
    mapping reference name -> list. `budget` and `alpha`, when given, override the
    config's (default: ProvenanceConfig's). `name_of` names models in the result (default:
    info.name). Returns per-reference test results, combined p-values, Holm-adjusted
    p-values over references at family-wise level alpha, and the set of plausible parents.
    """
    cfg = (config or DEFAULTS).with_options(budget=budget, alpha=alpha)
    run = _plan(suspect, references, controls, cfg, store, name_of, progress)
    data = _gather(run)
    tests = _test(run, data)
    return _combine(run, data, tests)


test_provenance.__test__ = False  # a library function, not a pytest test


# ---------------------------------------------------------------- 1. plan ------------------


def _plan(
    suspect: Model,
    references: Sequence[Model],
    controls: Sequence[Model] | Mapping[str, Sequence[Model]],
    cfg: ProvenanceConfig,
    store: QueryStore | None,
    name_of: Callable[[Model], str] | None,
    progress: Note | None,
) -> _Run:
    """Input checks (no query yet), labels, and the budget split over the selected tests."""
    check_request(references, cfg)
    check_format(cfg.suspect_format, cfg.format_candidates)
    tests = selected(cfg.tests)
    refs, ctrl_lists = checked_inputs(suspect, references, controls, name_of, stacklevel=3)
    all_ctrls: list[Model] = []
    for c in (c for cl in ctrl_lists for c in cl):
        if all(c is not x for x in all_ctrls):
            all_ctrls.append(c)
    models = label_models(suspect, refs, all_ctrls, name_of)
    label = {id(m): n for n, m in models.items()}
    ref_labs = [label[id(r)] for r in refs]
    sess = Session(models, cfg, QueryCounter(), store if store is not None else QueryStore())
    sess.note = progress
    check_config(cfg)
    plan = checked_plan(cfg, cfg.budget, len(ref_labs), len(all_ctrls), can_score(suspect))
    return _Run(
        cfg=cfg,
        tests=tests,
        sess=sess,
        suspect=label[id(suspect)],
        refs=ref_labs,
        ref_models=refs,
        ctrl_labs={
            label[id(r)]: [label[id(c)] for c in cl] for r, cl in zip(refs, ctrl_lists, strict=True)
        },
        identical={
            rl: "same identity hash as the suspect"
            for r, rl in zip(refs, ref_labs, strict=True)
            if base_identity(r) == base_identity(suspect)
        },
        plan=plan,
        note=progress or (lambda msg, done, total: None),
    )


# ---------------------------------------------------------------- 2. gather ----------------


def _gather(run: _Run) -> _Data:
    """The probe pool in a seeded order, split into sampled-output, fingerprint and stream
    prompts; the identity probes; the sampled outputs the tests read (generated when a
    test first reads a model's, so a test that does not run costs nothing)."""
    cfg, plan, sess = run.cfg, run.plan, run.sess
    pool = shuffled_pool(cfg)
    n_samp = plan.n_samp
    want_fp = any(t.queries(cfg).fingerprint for t in run.tests)
    fp_prompts = pool[n_samp : n_samp + cfg.n_fingerprint] if want_fp and n_samp else []
    n_pilot = cfg.n_format_pilot if plan.n_pilot else 0
    stream_end = max(n_samp + len(fp_prompts), len(pool) - n_pilot)
    data = _Data(pool, pool[:n_samp], fp_prompts, pool[n_samp + len(fp_prompts) : stream_end])
    data.pilot_prompts = pool[stream_end:] if n_pilot else []
    if data.pilot_prompts:
        _suspect_and_controls(run, data.pilot_prompts)
    if plan.n_id:
        run.note("identity probes", 0, 1)
        data.identity = _identity(run)
    gens = sorted({run.suspect, *run.refs, *{c for v in run.ctrl_labs.values() for c in v}})
    data.samp = Outputs(sess, data.samp_prompts, gens, "sampled outputs")
    fp_gens = [g for g in gens if g != run.suspect]
    data.fp = Outputs(sess, fp_prompts, fp_gens, "fingerprint outputs")
    return data


def _suspect_and_controls(run: _Run, prompts: list[str]) -> None:
    """The format pilot (the suspect's format, see suspect_format.py) and the capability
    check of every control (capability.py), on prompts and texts no test uses; with the
    "matched" control rule, each reference keeps its capability-matched controls."""
    cfg, sess, s = run.cfg, run.sess, run.suspect
    run.note("format pilot and control capability", 0, 1)
    model, found, warns = pilot(
        sess.models[s], cfg.suspect_format, prompts, cfg.max_new_tokens, cfg.format_candidates
    )
    sess.models[s] = model  # type: ignore[index]  (the labelled models' dict)
    sess.counter.add(s, "generate", sum(d.n for d in found.values()))
    run.warnings += warns
    chosen = model.info.extra.get("prompt_format", "chat")
    run.checks["suspect_format"] = {
        "requested": cfg.suspect_format,
        "chosen": chosen,
        "pilot": {f: d.to_dict() for f, d in found.items()},
    }
    if not cfg.capability_check:
        return
    ctrls = sorted({c for v in run.ctrl_labs.values() for c in v})
    rates: dict[str, float | None] = {s: found[chosen].rate}
    for i, c in enumerate(ctrls):
        run.note(f"control capability ({c})", i, len(ctrls))
        sess.greedy(c, prompts)
        rates[c] = degeneracy([sess.greedy_text(c, p) for p in prompts], prompts).rate
    run.cap = check = check_controls(sess, s, ctrls, rates, cfg)
    run.checks["controls"] = check.to_dict()
    run.checks["control_rule"] = cfg.control_rule
    for c, why in check.mismatch.items():
        if why:
            run.warnings.append(
                f"control {c} is not capability-matched to the suspect: {'; '.join(why)}"
            )
    if cfg.control_rule == "matched":
        for r, cl in run.ctrl_labs.items():
            run.ctrl_labs[r], warn = matched_controls(check, cl)
            if warn:
                run.warnings.append(f"reference {r}: {warn}")


def shuffled_pool(cfg: ProvenanceConfig) -> list[str]:
    """The probe pool in the seeded order every step reads it in."""
    pool = probe_pool(
        cfg.pool_size, seed=cfg.seed, source=cfg.prompt_source, files=cfg.prompt_files
    )
    order = list(range(len(pool)))
    random.Random(f"provenance:{cfg.seed}").shuffle(order)
    return [pool[i] for i in order]


def _identity(run: _Run) -> dict[str, Any]:
    """Every model's answers to the identity probes, and the evidence drawn from them."""
    s = run.suspect
    others = [c for c in run.sess.models if c not in run.refs and c != s]
    answers = {}
    for lab in [s, *run.refs, *others]:
        run.sess.greedy(lab, list(IDENTITY_PROBES))
        answers[lab] = [run.sess.greedy_text(lab, p) for p in IDENTITY_PROBES]
    ctrls = sorted({c for v in run.ctrl_labs.values() for c in v})
    return identity_evidence(answers, s, run.refs, ctrls)


# ---------------------------------------------------------------- 3. test ------------------


def _test(run: _Run, data: _Data) -> _Tests:
    """The fixed-sample tests, then the greedy stream, then the tests that read it."""
    fixed = _fixed_tests(run, data)
    run.fixed_spent = run.sess.counter.total(run.suspect)
    streams = _stream(run, data, fixed)
    results = {r: dict(fixed[r]) for r in run.active}
    for r in run.active:
        for t in _stream_tests(run):
            res = _run_test(run, t, _inputs(run, data, r, streams[r]))
            if res is not None:
                results[r][t.name] = res
    return _Tests(fixed, streams, results)


def _inputs(run: _Run, data: _Data, ref: str, stream: StreamRecord | None = None) -> TestInputs:
    return TestInputs(
        session=run.sess,
        cfg=run.cfg,
        suspect=run.suspect,
        reference=ref,
        controls=run.ctrl_labs[ref],
        prompts=data.samp_prompts,
        sampled=data.samp,
        fingerprint=data.fp,
        reverse_prompts=data.pool[: run.plan.n_rev],
        n_gap=run.plan.n_gap,
        stream=stream,
        pool=data.pool,
    )


def _run_test(run: _Run, test: ProvenanceTest, inputs: TestInputs) -> TestResult | None:
    """One test on one reference. The new suspect queries it makes must stay within what
    its `queries` hook asked for (its own, plus the reverse-scoring share if it asked;
    the shared sampled outputs it reads are planned apart). A one-reference test's own
    queries are reserved once, so its total over the references is what is checked."""
    need = test.queries(run.cfg)
    allowed = need.suspect_queries - run.own_spent.get(test.name, 0)
    if need.reverse:
        allowed += run.plan.n_rev + run.plan.n_gap * len(inputs.controls)
    shared = getattr(inputs.sampled, "charged", {})  # the planned, shared sampled outputs
    before = run.sess.counter.total(run.suspect) - shared.get(run.suspect, 0)
    res = test.run(inputs)
    used = run.sess.counter.total(run.suspect) - shared.get(run.suspect, 0) - before
    if used > allowed:
        left = " left of its one-reference share" if need.one_reference else ""
        raise RuntimeError(
            f"provenance test {test.name!r} made {used} new suspect queries for reference "
            f"{inputs.reference!r}, more than the {allowed}{left} its queries() hook planned for"
        )
    if need.one_reference:
        run.own_spent[test.name] = run.own_spent.get(test.name, 0) + used
    return res


def _fixed_tests(run: _Run, data: _Data) -> dict[str, dict[str, TestResult]]:
    """The selected tests that do not read the greedy stream, per reference, in the
    config's order (cheapest evidence first; a test whose gathered data is empty is left
    out, as when no sampled outputs were planned). With stop_when_decided, the tests after
    the ones that already decide a reference are not run and count as p = 1."""
    out: dict[str, dict[str, TestResult]] = {r: {} for r in run.refs}
    order = _fixed_order(run, data)
    todo = [(r, t) for r in run.active for t in order]
    level = _decided_level(run, len(order) + len(_stream_tests(run)))  # at most Bonferroni's
    for i, (r, t) in enumerate(todo):  # a progress line per test (scoring can be long)
        best = smallest_p(out[r])
        if run.cfg.stop_when_decided and best <= level:
            out[r][t.name] = decided_test(t.name, t.null, level, best)
            continue
        run.note(f"test {t.name} (reference {r})", i, len(todo))
        res = _run_test(run, t, _inputs(run, data, r))
        if res is not None:
            out[r][t.name] = res
    return out


def _fixed_order(run: _Run, data: _Data) -> list[ProvenanceTest]:
    """The fixed-sample tests to run: those named in cfg.fixed_order first, in that
    order, then the others in registration order."""
    ready = [t for t in run.tests if _fixed_ready(run, t, data)]
    rank = {n: i for i, n in enumerate(run.cfg.fixed_order)}
    return sorted(ready, key=lambda t: rank.get(t.name, len(rank)))


def _fixed_ready(run: _Run, t: ProvenanceTest, data: _Data) -> bool:
    need = t.queries(run.cfg)
    if need.stream or (need.sampled and not data.samp_prompts):
        return False
    return not (need.fingerprint and not data.fp_prompts)


def _stream_tests(run: _Run) -> list[ProvenanceTest]:
    return [t for t in run.tests if t.queries(run.cfg).stream]


def _stream(
    run: _Run, data: _Data, fixed: Mapping[str, Mapping[str, TestResult]]
) -> dict[str, StreamRecord]:
    """The adaptive greedy stream over the active references (when a selected test reads
    it); each reference stops when its combined p-value (Bonferroni over its tests) reaches
    target_p over the number of references: before the stream, when the fixed-sample tests
    alone reach it (stop_when_decided), else on the stream's own anytime p-value."""
    active = run.active
    records = {r: StreamRecord.empty(run.ctrl_labs[r]) for r in active}
    if not _stream_tests(run) or not active:
        return records
    stop = {r: _decided_level(run, _n_tests(run, fixed[r])) for r in active}
    for r in active:  # decided before the stream: its p-value, never computed, counts as 1
        fixed_min = smallest_p(fixed[r])
        if run.cfg.stop_when_decided and fixed_min <= stop[r]:
            records[r].stop_reason = (
                f"not run: the fixed-sample tests already reached the stopping level "
                f"{stop[r]:.3g} (p = {fixed_min:.3g})"
            )
    plan = StreamPlan(data.stream_prompts, run.plan.greedy_max, run.fixed_spent, stop)
    run_stream(run.sess, run.suspect, run.ctrl_labs, records, plan, run.note)
    return records


def _decided_level(run: _Run, n_tests: int) -> float:
    """The p-value at which one reference is decided: target_p, Bonferroni over its
    `n_tests` tests and over the active references."""
    return run.cfg.target_p / (max(1, n_tests) * max(1, len(run.active)))


def _n_tests(run: _Run, fixed: Mapping[str, TestResult]) -> int:
    """Tests counted by Bonferroni: the fixed-sample ones that ran, and the stream's."""
    return max(1, sum(1 for t in fixed.values() if t.ran) + len(_stream_tests(run)))


# ---------------------------------------------------------------- 4. combine ---------------


def _combine(run: _Run, data: _Data, tests: _Tests) -> ProvenanceResult:
    """Per-reference results (Bonferroni over its tests), Holm over references, verdict."""
    results: list[ReferenceResult] = []
    identical = dict(run.identical)
    families = prompt_families(run.cfg)
    for r, rmodel in zip(run.refs, run.ref_models, strict=True):
        ctl, rid = run.ctrl_labs[r], rmodel.info.identity
        if r in identical:
            results.append(identical_result(r, rid, ctl, identical[r]))
            continue
        rec, fixed = tests.streams[r], tests.fixed[r]
        if _stream_tests(run) and len(rec.agree_r) >= 10 and min(rec.agree_r) >= 1.0:
            identical[r] = f"identical greedy outputs on all {len(rec.agree_r)} probes"
        traj = combined_trajectory(fixed, rec, run.fixed_spent, _n_tests(run, fixed))
        res = reference_result(run.sess, run.suspect, r, rid, ctl, tests.results[r], traj, rec)
        res.identical = identical.get(r)
        res.per_family = family_table(rec, families)
        if run.cap is not None:
            res.deciding_controls = deciding_controls(res.tests, run.cap)
            run.warnings += [
                f"reference {r}: {d['message']}" for d in res.deciding_controls if d.get("message")
            ]
        run.warnings += [f"reference {r}: {w}" for w in standing_warnings(res.tests, run.cfg.alpha)]
        results.append(res)
    parents = apply_holm(results, run.cfg.alpha)
    ident = [x.reference for x in results if x.identical]
    s = run.suspect
    counts = run.sess.counter.counts
    s_counts = counts.get(s, {"generate": 0, "score": 0})
    run.checks["compute"] = {
        k: m.info.extra.get("dtype", "endpoint") for k, m in run.sess.models.items()
    }
    return ProvenanceResult(
        suspect=s,
        suspect_identity=run.sess.models[s].info.identity,
        alpha=run.cfg.alpha,
        budget=run.cfg.budget,
        references=results,
        plausible_parents=parents,
        identical_references=ident,
        verdict=verdict(s, results, parents, ident, run.cfg.alpha),
        queries=counts,
        suspect_queries=int(s_counts["generate"] + s_counts["score"]),
        identity=data.identity,
        config=run.cfg.to_dict(),
        warnings=run.warnings + _answer_warnings(run, tests),
        checks=run.checks,
    )


def _answer_warnings(run: _Run, tests: _Tests) -> list[str]:
    """The suspect's degenerate share over its greedy stream answers (free: no query)."""
    prompts = list(dict.fromkeys(p for rec in tests.streams.values() for p in rec.prompts))
    if not prompts:
        return []
    d = degeneracy([run.sess.greedy_text(run.suspect, p) for p in prompts], prompts)
    run.checks["suspect_answers"] = d.to_dict()
    if d.rate <= MOSTLY_DEGENERATE:
        return []
    why = ", ".join(f"{k} {v}" for k, v in sorted(d.reasons.items()))
    return [
        f"{d.rate:.0%} of the suspect's {d.n} greedy answers are degenerate ({why}): the "
        "budget went on answers that agree with nothing; try --suspect-format auto, raw or "
        "a pattern"
    ]


__all__ = [
    "COMBINATION",
    "MIN_CONTROLS",
    "MIN_GREEDY",
    "TESTS",
    "WHY_CONTROLS",
    "BudgetPlan",
    "ProvenanceConfig",
    "QueryStore",
    "RepeatedModelWarning",
    "budget_plan",
    "check_out_dir",
    "min_budget",
    "queries_needed",
    "test_provenance",
]
