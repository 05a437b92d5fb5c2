"""test_provenance: is the suspect closer to a reference than models known not to derive
from it are? Queries models, runs the tests, combines them, controls the error over
references. Statistics live in agreement/likelihood/lexical; this module gathers data."""

from __future__ import annotations

import contextlib
import random
import tempfile
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distilltrace.errors import CapabilityError, InputError
from distilltrace.models.base import SCORE, Model
from distilltrace.provenance import agreement, lexical, likelihood
from distilltrace.provenance.identity import IDENTITY_PROBES, identity_evidence
from distilltrace.provenance.paired import MIN_MARGIN_CONTROLS
from distilltrace.provenance.probes import disagreement_weight, probe_pool
from distilltrace.provenance.result import (
    ProvenanceResult,
    ReferenceResult,
    TestResult,
    skipped_test,
)
from distilltrace.provenance.sequential import IntersectionUnionSequential
from distilltrace.provenance.textmatch import comparable, prefix_agreement
from distilltrace.stats import combine_pvalues, holm

MIN_CONTROLS = 2
TESTS = (agreement.NAME, likelihood.NAME, likelihood.REVERSE_NAME, lexical.NAME)
COMBINATION = "bonferroni"
WHY_CONTROLS = (
    "the likelihood and lexical tests compare the suspect with one control using a baseline "
    "built from the other controls (so at least 2 are needed for any control to be compared), "
    "and the greedy test asks the suspect to beat every control: with a single control the "
    "false-accusation rate rests entirely on that one model being as close to the reference "
    "as an innocent suspect would be"
)


class RepeatedModelWarning(UserWarning):
    """A reference or control given more than once (the same identity hash): counted once."""


@dataclass
class ProvenanceConfig:
    """Parameters of a provenance test (all seeded; the same config gives the same result)."""

    budget: int = 1000  # suspect queries in all (generate + score calls, one per prompt)
    alpha: float = 0.01  # family-wise error rate over references
    target_p: float = 1e-4  # stop querying a reference once its evidence reaches this
    max_new_tokens: int = 48
    agreement_unit: str = "char"  # greedy test compares normalised "char"s or "word"s
    k_units: int = 40  # units (characters or words) compared by the greedy test
    agreement_margin: float = 0.05  # S must beat each control's agreement by more than this
    n_sampled: int = 100  # prompts with sampled outputs (likelihood, lexical), at most
    n_reverse: int = 150  # reference outputs the suspect scores per reference, at most
    n_gap: int = 30  # outputs per control the suspect scores (capability gap), at most
    reverse_margin: float = likelihood.DEFAULT_REVERSE_MARGIN  # nats/char, part of its null
    n_fingerprint: int = 100  # prompts for the reference's lexical fingerprint (no suspect)
    sample_temperature: float = 0.7
    pool_size: int = 3000
    prompt_source: str = "auto"
    prompt_files: tuple[str, ...] = ()
    batch_size: int = 16
    adaptive: bool = True
    weight_floor: float = 0.1
    futility_level: float = 0.01
    identity_probes: bool = True
    tests: tuple[str, ...] = TESTS
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Counter:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, label: str, kind: str, n: int) -> None:
        c = self.counts.setdefault(label, {"generate": 0, "score": 0})
        c[kind] += n


def _label_models(
    suspect: Model,
    refs: Sequence[Model],
    ctrls: Sequence[Model],
    name_of: Callable[[Model], str] | None = None,
) -> dict[str, Model]:
    out: dict[str, Model] = {}
    for m in [suspect, *refs, *ctrls]:
        if any(m is x for x in out.values()):
            continue
        base = (name_of(m) if name_of else None) or getattr(m.info, "name", None) or "model"
        name = base
        i = 2
        while name in out:
            name = f"{base}#{i}"
            i += 1
        out[name] = m
    return out


@dataclass
class QueryStore:
    """Query results shared across tests in one process, keyed by model identity (the
    on-disk model cache persists them across processes; this saves re-reading it)."""

    greedy: dict[tuple, Any] = field(default_factory=dict)
    sampled: dict[tuple, str] = field(default_factory=dict)
    scores: dict[tuple, float] = field(default_factory=dict)


class _Session:
    """Queries with memoisation and counting of the distinct queries this test makes."""

    def __init__(
        self,
        models: Mapping[str, Model],
        cfg: ProvenanceConfig,
        counter: _Counter,
        store: QueryStore,
    ):
        self.models = models
        self.cfg = cfg
        self.counter = counter
        self.store = store
        self._seen: set[tuple] = set()

    def _count(self, label: str, kind: str, keys: Sequence[tuple]) -> None:
        new = [k for k in dict.fromkeys(keys) if k not in self._seen]
        self._seen.update(new)
        if new:
            self.counter.add(label, kind, len(new))

    def _gen_key(self, label: str, p: str, mode: str) -> tuple:
        if mode == "greedy":
            mode = f"greedy:{self.cfg.agreement_unit}"
        return (self.models[label].info.identity, mode, self.cfg.max_new_tokens, self.cfg.seed, p)

    def greedy(self, label: str, prompts: Sequence[str]) -> list[list[str]]:
        keys = [self._gen_key(label, p, "greedy") for p in prompts]
        self._count(label, "generate", keys)
        todo = [
            p
            for p, k in dict.fromkeys(zip(prompts, keys, strict=True))
            if k not in self.store.greedy
        ]
        if todo:
            gens = self.models[label].generate(
                todo, max_new_tokens=self.cfg.max_new_tokens, temperature=0.0, chat=True
            )
            for p, g in zip(todo, gens, strict=True):
                w = comparable(
                    g.text, truncated=g.finish_reason == "length", unit=self.cfg.agreement_unit
                )
                self.store.greedy[self._gen_key(label, p, "greedy")] = (w, g.text)
        return [self.store.greedy[k][0] for k in keys]

    def greedy_text(self, label: str, prompt: str) -> str:
        v = self.store.greedy.get(self._gen_key(label, prompt, "greedy"))
        return v[1] if v else ""

    def sampled(self, label: str, prompts: Sequence[str]) -> list[str]:
        mode = f"sample:{self.cfg.sample_temperature}"
        keys = [self._gen_key(label, p, mode) for p in prompts]
        self._count(label, "generate", keys)
        todo = [
            p
            for p, k in dict.fromkeys(zip(prompts, keys, strict=True))
            if k not in self.store.sampled
        ]
        if todo:
            gens = self.models[label].generate(
                todo,
                max_new_tokens=self.cfg.max_new_tokens,
                temperature=self.cfg.sample_temperature,
                seed=self.cfg.seed,
                chat=True,
            )
            for p, g in zip(todo, gens, strict=True):
                self.store.sampled[self._gen_key(label, p, mode)] = g.text
        return [self.store.sampled[k] for k in keys]

    def scores(self, scorer: str, prompts: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """Per-character log-probability of each text under scorer."""
        ident = self.models[scorer].info.identity
        keys = [(ident, p, t) for p, t in zip(prompts, texts, strict=True)]
        self._count(scorer, "score", [("score", *k) for k in keys])
        todo = list(dict.fromkeys(k for k in keys if k not in self.store.scores))
        if todo:
            res = self.models[scorer].score([k[1] for k in todo], [k[2] for k in todo], chat=True)
            for k, r in zip(todo, res, strict=True):
                self.store.scores[k] = r.total_logprob / max(1, len(k[2]))
        return np.array([self.store.scores[k] for k in keys], dtype=float)


def _can_score(m: Model) -> bool:
    return SCORE in getattr(m.info, "supports", frozenset())


def _control_lists(
    references: Sequence[Model],
    controls: Sequence[Model] | Mapping[str, Sequence[Model]],
    name_of: Callable[[Model], str] | None,
) -> list[list[Model]]:
    """One control list per reference, from any of the accepted forms of `controls`."""
    if isinstance(controls, Mapping):
        ref_names = [(name_of(r) if name_of else r.info.name) for r in references]
        missing = [n for n in ref_names if n not in controls]
        if missing:
            raise InputError(f"no controls given for references {missing}")
        return [list(controls[n]) for n in ref_names]
    if controls and isinstance(controls[0], list | tuple):
        if len(controls) != len(references):
            raise InputError("give one control list per reference")
        return [list(c) for c in controls]
    return [list(controls) for _ in references]


def _once(models: Sequence[Model], what: str, said: dict[str, None]) -> list[Model]:
    """`models` with repeats (the same identity hash) counted once; repeats noted in `said`."""
    out: dict[str, Model] = {}
    for m in models:
        first = out.setdefault(m.info.identity, m)
        if first is not m:
            again = "" if first.info.name == m.info.name else f" (as {m.info.name!r})"
            said[f"{what} {first.info.name!r} given more than once{again}: counted once"] = None
    return list(out.values())


def _checked_inputs(
    suspect: Model,
    references: Sequence[Model],
    controls: Sequence[Model] | Mapping[str, Sequence[Model]],
    name_of: Callable[[Model], str] | None,
) -> tuple[list[Model], list[list[Model]]]:
    """References and their control lists with each model once (by identity hash: a
    repeated reference pools its controls; one object per identity across the lists)."""
    said: dict[str, None] = {}
    by_ref: dict[str, tuple[Model, list[Model]]] = {}
    for r, cl in zip(references, _control_lists(references, controls, name_of), strict=True):
        if r.info.identity in by_ref:
            said[f"reference {r.info.name!r} given more than once: counted once"] = None
        by_ref.setdefault(r.info.identity, (r, []))[1].extend(cl)
    canon = {k: r for k, (r, _) in by_ref.items()}
    refs = [r for r, _ in by_ref.values()]
    lists = [
        [canon.setdefault(c.info.identity, c) for c in _once(cl, "control", said)]
        for _, cl in by_ref.values()
    ]
    for msg in said:
        warnings.warn(msg, RepeatedModelWarning, stacklevel=3)
    for r, cl in zip(refs, lists, strict=True):
        _check_controls(suspect, r, cl)
    return refs, lists


def _check_controls(suspect: Model, ref: Model, ctrls: Sequence[Model]) -> None:
    for c in ctrls:
        for what, m in (("the suspect", suspect), ("the reference", ref)):
            if c.info.identity == m.info.identity:
                raise InputError(
                    f"control {c.info.name!r} is {what} itself ({m.info.name!r}, same identity "
                    "hash): a control must be another model"
                )
    if len(ctrls) < MIN_CONTROLS:
        raise InputError(
            f"reference {ref.info.name}: {len(ctrls)} control(s) given (repeats counted once), "
            f"at least {MIN_CONTROLS} are needed: {WHY_CONTROLS}"
        )


MIN_GREEDY = 10  # suspect queries the greedy test needs at the least


@dataclass(frozen=True)
class BudgetPlan:
    """How a suspect budget is split: identity probes, sampled outputs, reverse scoring
    (reference outputs and the capability gap), and the greedy test's share (the rest)."""

    n_id: int
    n_samp: int
    n_rev: int
    n_gap: int
    rev_cost: int
    greedy_max: int

    @property
    def ok(self) -> bool:
        return self.greedy_max >= MIN_GREEDY


def budget_plan(
    cfg: ProvenanceConfig, budget: int, n_refs: int, n_union: int, suspect_scores: bool
) -> BudgetPlan:
    """The split of `budget` suspect queries over n_refs references and n_union controls."""
    n_id = len(IDENTITY_PROBES) if cfg.identity_probes else 0
    want_sampled = any(
        t in cfg.tests for t in (likelihood.NAME, likelihood.REVERSE_NAME, lexical.NAME)
    )
    n_samp = min(cfg.n_sampled, max(0, (budget - n_id) // 5)) if want_sampled else 0
    do_rev = likelihood.REVERSE_NAME in cfg.tests and suspect_scores and n_samp > 0
    n_rev = min(cfg.n_reverse, max(0, (2 * (budget - n_id)) // (5 * n_refs))) if do_rev else 0
    n_gap = min(cfg.n_gap, n_samp, (budget - n_id) // (10 * max(1, n_union))) if n_rev else 0
    rev_cost = n_rev * n_refs + n_gap * n_union
    greedy_max = budget - n_id - n_samp - rev_cost
    return BudgetPlan(n_id, n_samp, n_rev, n_gap, rev_cost, greedy_max)


def min_budget(cfg: ProvenanceConfig, n_refs: int, n_union: int, suspect_scores: bool) -> int:
    """The smallest budget from which on every budget passes the check (the split rounds
    down, so a budget can pass where one more does not). The fixed parts take at most 1/5 +
    2/5 + 1/10 of (budget - identity probes): from n_id + 34 on, the greedy test gets >= 10."""
    top = budget_plan(cfg, 0, n_refs, n_union, suspect_scores).n_id + 34
    b = top
    while b > 0 and budget_plan(cfg, b - 1, n_refs, n_union, suspect_scores).ok:
        b -= 1
    return b


def _checked_plan(
    cfg: ProvenanceConfig, budget: int, n_refs: int, n_union: int, suspect_scores: bool
) -> BudgetPlan:
    plan = budget_plan(cfg, budget, n_refs, n_union, suspect_scores)
    if plan.ok:
        return plan
    need = min_budget(cfg, n_refs, n_union, suspect_scores)  # > budget: every one from it passes
    raise InputError(
        f"budget {budget} is too small: at least {need} suspect queries are needed for "
        f"{n_refs} reference(s) and {n_union} control(s) ({MIN_GREEDY} or more for the "
        "greedy test after the fixed-sample tests take their share)"
    )


def check_out_dir(out: str | Path, option: str = "--out") -> Path:
    """Raise InputError (one line) unless `out` is a folder, or can be made one, that a file
    can be written in. Run before any model is loaded; leaves nothing behind."""
    p = Path(out).expanduser()
    blocker = next((q for q in (p, *p.parents) if q.exists() and not q.is_dir()), None)
    if blocker == p:
        raise InputError(f"{option} {p} is a file, not a folder")
    if blocker is not None:
        raise InputError(f"{option} {p}: {blocker} is a file, so no folder can be made in it")
    made = [q for q in (p, *p.parents) if not q.exists()]  # deepest first
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p, prefix=".distilltrace-write-check-"):
            pass
    except OSError as e:
        raise InputError(f"{option} {p}: cannot write outputs there ({e.strerror or e})") from None
    finally:
        for q in made:
            with contextlib.suppress(OSError):
                q.rmdir()
    return p


def test_provenance(
    suspect: Model,
    references: Sequence[Model],
    controls: Sequence[Model] | Mapping[str, Sequence[Model]],
    *,
    budget: int = 1000,
    alpha: float = 0.01,
    config: ProvenanceConfig | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    store: QueryStore | None = None,
    name_of: Callable[[Model], str] | None = None,
) -> ProvenanceResult:
    """Test whether `suspect` derives from each reference, against controls (models of
    similar capability known not to derive from that reference).

    `controls` is one list for every reference, a list of lists (one per reference), or a
    mapping reference name -> list. `name_of` names models in the result (default: info.name).
    Returns per-reference test results, combined p-values, Holm-adjusted p-values over
    references at family-wise level alpha, and the set of plausible parents.
    """
    cfg = ProvenanceConfig(
        **{**(config.to_dict() if config else {}), "budget": budget, "alpha": alpha}
    )
    if not references:
        raise InputError("give at least one reference model")
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    unknown = set(cfg.tests) - set(TESTS)
    if unknown:
        raise InputError(f"unknown tests {sorted(unknown)}; known: {', '.join(TESTS)}")
    references, ctrl_lists = _checked_inputs(suspect, references, controls, name_of)
    all_ctrls: list[Model] = []
    for cl in ctrl_lists:
        for c in cl:
            if all(c is not x for x in all_ctrls):
                all_ctrls.append(c)
    models = _label_models(suspect, references, all_ctrls, name_of)
    label = {id(m): n for n, m in models.items()}
    s_lab = label[id(suspect)]
    ref_labs = [label[id(r)] for r in references]
    ctrl_labs = {
        label[id(r)]: [label[id(c)] for c in cl]
        for r, cl in zip(references, ctrl_lists, strict=True)
    }
    s_id = suspect.info.identity
    identical = {
        rl: "same identity hash as the suspect"
        for r, rl in zip(references, ref_labs, strict=True)
        if r.info.identity == s_id
    }

    counter = _Counter()
    sess = _Session(models, cfg, counter, store if store is not None else QueryStore())
    note = progress or (lambda msg, done, total: None)

    # ---------------- budget plan (suspect queries) -----------------------------------
    if cfg.agreement_unit not in ("char", "word"):
        raise InputError(f"agreement_unit must be 'char' or 'word', got {cfg.agreement_unit!r}")
    if cfg.reverse_margin < 0:
        raise InputError(
            f"reverse_margin must be >= 0 (nats per character), got {cfg.reverse_margin}"
        )
    if not 0 <= cfg.agreement_margin < 1:
        raise InputError(f"agreement_margin must be in [0, 1), got {cfg.agreement_margin}")
    n_union = len(all_ctrls)
    plan = _checked_plan(cfg, budget, len(ref_labs), n_union, _can_score(suspect))
    n_id, n_samp, n_rev, n_gap = plan.n_id, plan.n_samp, plan.n_rev, plan.n_gap
    rev_cost, greedy_max = plan.rev_cost, plan.greedy_max

    pool = probe_pool(
        cfg.pool_size, seed=cfg.seed, source=cfg.prompt_source, files=cfg.prompt_files
    )
    rng = random.Random(f"provenance:{cfg.seed}")
    order = list(range(len(pool)))
    rng.shuffle(order)
    pool = [pool[i] for i in order]
    samp_prompts = pool[:n_samp]
    fp_prompts = (
        pool[n_samp : n_samp + cfg.n_fingerprint] if lexical.NAME in cfg.tests and n_samp else []
    )
    stream = pool[n_samp + len(fp_prompts) :]

    # ---------------- identity probes (evidence only) ---------------------------------
    id_evidence: dict[str, Any] = {}
    if n_id:
        note("identity probes", 0, 1)
        labs = [s_lab, *ref_labs, *[c for c in models if c not in ref_labs and c != s_lab]]
        answers = {}
        for lab in labs:
            sess.greedy(lab, list(IDENTITY_PROBES))
            answers[lab] = [sess.greedy_text(lab, p) for p in IDENTITY_PROBES]
        id_evidence = identity_evidence(
            answers, s_lab, ref_labs, sorted({c for v in ctrl_labs.values() for c in v})
        )

    # ---------------- sampled outputs: likelihood and lexical tests -------------------
    tests_by_ref: dict[str, dict[str, TestResult]] = {r: {} for r in ref_labs}
    if n_samp:
        note("sampled outputs", 0, 1)
        gens_needed = {s_lab, *ref_labs, *{c for v in ctrl_labs.values() for c in v}}
        samp = {lab: sess.sampled(lab, samp_prompts) for lab in sorted(gens_needed)}
        fp = {}
        if fp_prompts:
            fp = {lab: sess.sampled(lab, fp_prompts) for lab in sorted(gens_needed - {s_lab})}
        for r in ref_labs:
            if r in identical:
                continue
            ctl = ctrl_labs[r]
            tests_by_ref[r].update(
                _sampled_tests(
                    sess, cfg, r, s_lab, ctl, samp_prompts, samp, fp, pool[:n_rev], n_gap, suspect
                )
            )

    # ---------------- greedy agreement: adaptive, sequential --------------------------
    active = [r for r in ref_labs if r not in identical]
    n_tests = {
        r: max(1, sum(1 for t in tests_by_ref[r].values() if t.ran) + (agreement.NAME in cfg.tests))
        for r in active
    }
    stop_level = {r: cfg.target_p / (n_tests[r] * max(1, len(active))) for r in active}
    iuts = {r: IntersectionUnionSequential(tuple(ctrl_labs[r])) for r in active}
    agree_r: dict[str, list[float]] = {r: [] for r in active}
    agree_c: dict[str, dict[str, list[float]]] = {r: {c: [] for c in ctrl_labs[r]} for r in active}
    used_prompts: dict[str, list[str]] = {r: [] for r in active}
    trajectory: dict[str, list[tuple[int, float]]] = {r: [] for r in active}
    fixed_min = {
        r: min((t.pvalue for t in tests_by_ref[r].values() if t.ran), default=1.0) for r in active
    }
    running = set(active) if agreement.NAME in cfg.tests else set()
    s_greedy_queries = 0
    pos = 0
    u_rng = np.random.default_rng(cfg.seed + 17)
    base_queries = n_id + n_samp + rev_cost
    while running and s_greedy_queries < greedy_max and pos < len(stream):
        cand = stream[pos : pos + cfg.batch_size]
        pos += len(cand)
        u = u_rng.random(len(cand))
        run_refs = sorted(running)
        g_ref = {r: sess.greedy(r, cand) for r in run_refs}
        ctl_set = sorted({c for r in run_refs for c in ctrl_labs[r]})
        g_ctl = {c: sess.greedy(c, cand) for c in ctl_set}
        accepted = []
        for i in range(len(cand)):
            if cfg.adaptive:
                w = max(
                    disagreement_weight(
                        [
                            prefix_agreement(g_ref[r][i], g_ctl[c][i], cfg.k_units)
                            for c in ctrl_labs[r]
                        ],
                        cfg.weight_floor,
                    )
                    for r in run_refs
                )
            else:
                w = 1.0
            if u[i] < w:
                accepted.append(i)
        accepted = accepted[: greedy_max - s_greedy_queries]
        if not accepted:
            continue
        g_s = sess.greedy(s_lab, [cand[i] for i in accepted])
        s_greedy_queries += len(accepted)
        for j, i in enumerate(accepted):
            for r in sorted(running):
                a_r = prefix_agreement(g_s[j], g_ref[r][i], cfg.k_units)
                diffs = {}
                for c in ctrl_labs[r]:
                    a_c = prefix_agreement(g_s[j], g_ctl[c][i], cfg.k_units)
                    agree_c[r][c].append(a_c)
                    diffs[c] = (a_r - a_c - cfg.agreement_margin) / (1.0 + cfg.agreement_margin)
                agree_r[r].append(a_r)
                used_prompts[r].append(cand[i])
                p = iuts[r].update(diffs)
                trajectory[r].append((base_queries + s_greedy_queries - len(accepted) + j + 1, p))
                if p <= stop_level[r] or iuts[r].futile(cfg.futility_level):
                    running.discard(r)
        note("greedy probes", s_greedy_queries, greedy_max)

    # ---------------- per-reference results -------------------------------------------
    results: list[ReferenceResult] = []
    for r, rmodel in zip(ref_labs, references, strict=True):
        ctl = ctrl_labs[r]
        if r in identical:
            results.append(
                ReferenceResult(
                    r, rmodel.info.identity, ctl, {}, None, COMBINATION, identical=identical[r]
                )
            )
            continue
        tests = dict(tests_by_ref[r])
        if agreement.NAME in cfg.tests:
            tests[agreement.NAME] = agreement.greedy_agreement_result(
                iuts[r], agree_r[r], agree_c[r]
            )
            a = np.asarray(agree_r[r])
            if a.size >= 10 and np.all(a >= 1.0):
                identical[r] = f"identical greedy outputs on all {a.size} probes"
        ran = [t.pvalue for t in tests.values() if t.ran]
        comb = combine_pvalues(ran, method=COMBINATION) if ran else None
        # Combined (Bonferroni) p-value against suspect queries: the fixed-sample tests
        # count from when their queries were spent, the greedy test as it went.
        traj = (
            [(base_queries, fixed_min[r])] if any(t.ran for t in tests_by_ref[r].values()) else []
        )
        traj += [(q, min(fixed_min[r], p)) for q, p in trajectory[r]]
        traj = [(q, min(1.0, p * n_tests[r])) for q, p in traj]
        qt = {f"p<={thr:g}": queries_needed(traj, thr) for thr in (0.05, 0.01, 1e-4)}
        eff = {}
        if agree_r[r]:
            eff = {
                "agreement_with_reference": float(np.mean(agree_r[r])),
                **{f"agreement_with_{c}": float(np.mean(v)) for c, v in agree_c[r].items()},
            }
        results.append(
            ReferenceResult(
                reference=r,
                identity=rmodel.info.identity,
                controls=ctl,
                tests=tests,
                combined_pvalue=comb,
                combination=f"{COMBINATION} (min p x {len(ran)} tests; valid under any dependence)",
                identical=identical.get(r),
                trajectory=traj,
                queries_to=qt,
                examples=_examples(sess, s_lab, r, ctl, used_prompts[r], agree_r[r], agree_c[r]),
                effect=eff,
            )
        )
    testable = [x for x in results if x.combined_pvalue is not None]
    h = holm([x.combined_pvalue for x in testable], alpha=alpha)
    for x, adj, rej in zip(testable, h.adjusted, h.reject, strict=True):
        x.holm_pvalue = adj
        x.rejected = bool(rej)
    parents = [x.reference for x in testable if x.rejected]
    ident = [x.reference for x in results if x.identical]
    s_counts = counter.counts.get(s_lab, {"generate": 0, "score": 0})
    return ProvenanceResult(
        suspect=s_lab,
        suspect_identity=s_id,
        alpha=alpha,
        budget=budget,
        references=results,
        plausible_parents=parents,
        identical_references=ident,
        verdict=_verdict(s_lab, results, parents, ident, alpha),
        queries=counter.counts,
        suspect_queries=int(s_counts["generate"] + s_counts["score"]),
        identity=id_evidence,
        config=cfg.to_dict(),
    )


test_provenance.__test__ = False  # a library function, not a pytest test


def _too_few_for_margin(name: str, null: str, k: int) -> TestResult:
    return skipped_test(
        name,
        null,
        f"{k} controls: the margin (how far apart independent models already are) needs "
        f"at least {MIN_MARGIN_CONTROLS}",
    )


def _sampled_tests(
    sess: _Session,
    cfg: ProvenanceConfig,
    r: str,
    s: str,
    ctl: list[str],
    prompts: list[str],
    samp: dict[str, list[str]],
    fp: dict[str, list[str]],
    rev_prompts: list[str],
    n_gap: int,
    suspect: Model,
) -> dict[str, TestResult]:
    out: dict[str, TestResult] = {}
    if likelihood.NAME in cfg.tests:
        lacking = [m for m in [r, *ctl] if not _can_score(sess.models[m])]
        if len(ctl) < MIN_MARGIN_CONTROLS:
            out[likelihood.NAME] = _too_few_for_margin(likelihood.NAME, likelihood.NULL, len(ctl))
        elif lacking:
            out[likelihood.NAME] = skipped_test(
                likelihood.NAME,
                likelihood.NULL,
                f"no log-probabilities (score) from {', '.join(lacking)}",
            )
        else:
            try:
                scores = {}
                for scorer in [r, *ctl]:
                    for gen in [s, *ctl]:
                        scores[(scorer, gen)] = sess.scores(scorer, prompts, samp[gen])
                out[likelihood.NAME] = likelihood.likelihood_test(
                    scores, r, ctl, suspect=s, seed=cfg.seed
                )
            except CapabilityError as e:
                out[likelihood.NAME] = skipped_test(
                    likelihood.NAME, likelihood.NULL, f"scoring refused: {e}"
                )
    if likelihood.REVERSE_NAME in cfg.tests:
        if not _can_score(suspect):
            out[likelihood.REVERSE_NAME] = skipped_test(
                likelihood.REVERSE_NAME,
                likelihood.REVERSE_NULL,
                f"the suspect {s} gives no log-probabilities (score)",
            )
        elif len(rev_prompts) < 10:
            out[likelihood.REVERSE_NAME] = skipped_test(
                likelihood.REVERSE_NAME,
                likelihood.REVERSE_NULL,
                "budget too small for the suspect to score outputs",
            )
        elif any(not _can_score(sess.models[c]) for c in ctl):
            out[likelihood.REVERSE_NAME] = skipped_test(
                likelihood.REVERSE_NAME,
                likelihood.REVERSE_NULL,
                "a control gives no log-probabilities (score)",
            )
        else:
            try:
                r_texts = sess.sampled(r, rev_prompts)
                scores = {
                    (scorer, r): sess.scores(scorer, rev_prompts, r_texts) for scorer in [s, *ctl]
                }
                gp = prompts[:n_gap]  # capability gap: every model scores the controls' outputs
                for g in ctl:
                    for scorer in [s, *ctl]:
                        if scorer != g:
                            scores[(scorer, g)] = sess.scores(scorer, gp, samp[g][:n_gap])
                out[likelihood.REVERSE_NAME] = likelihood.reverse_likelihood_test(
                    scores, r, ctl, suspect=s, seed=cfg.seed, margin=cfg.reverse_margin
                )
            except CapabilityError as e:
                out[likelihood.REVERSE_NAME] = skipped_test(
                    likelihood.REVERSE_NAME, likelihood.REVERSE_NULL, f"scoring refused: {e}"
                )
    if lexical.NAME in cfg.tests and fp:
        if len(ctl) < MIN_MARGIN_CONTROLS:
            out[lexical.NAME] = _too_few_for_margin(lexical.NAME, lexical.NULL, len(ctl))
        else:
            out[lexical.NAME] = lexical.lexical_test(fp, samp, r, ctl, suspect=s, seed=cfg.seed)
    return out


def _examples(
    sess: _Session,
    s: str,
    r: str,
    ctl: list[str],
    prompts: list[str],
    a_r: list[float],
    a_c: dict[str, list[float]],
    n: int = 5,
) -> list[dict[str, Any]]:
    if not prompts:
        return []
    margin = [a_r[i] - max(a_c[c][i] for c in ctl) for i in range(len(prompts))]
    top = sorted(range(len(prompts)), key=lambda i: -margin[i])[:n]
    return [
        {
            "prompt": prompts[i],
            "suspect": sess.greedy_text(s, prompts[i]),
            "reference": sess.greedy_text(r, prompts[i]),
            "controls": {c: sess.greedy_text(c, prompts[i]) for c in ctl},
            "agreement_with_reference": a_r[i],
            "agreement_with_controls": {c: a_c[c][i] for c in ctl},
        }
        for i in top
        if margin[i] > 0
    ]


def _fmt(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"{p:.2g}" if p >= 1e-3 else f"{p:.1e}"


def _verdict(
    s: str, results: list[ReferenceResult], parents: list[str], ident: list[str], alpha: float
) -> str:
    parts = []
    if ident:
        parts.append(
            f"{s} is the same model as {', '.join(ident)} (identical, not a distillation question)."
        )
    if parents:
        ps = ", ".join(
            f"{x.reference} (Holm-adjusted p = {_fmt(x.holm_pvalue)})"
            for x in results
            if x.reference in parents
        )
        parts.append(
            f"{s} is closer to {ps} than every control is: evidence that it derives from "
            f"{'it' if len(parents) == 1 else 'them'}. The chance of such an accusation against a "
            f"suspect that is no closer to the references than to the controls is at most {alpha:g} (family-wise)."
        )
    else:
        best = min((x.holm_pvalue for x in results if x.holm_pvalue is not None), default=None)
        parts.append(
            f"No reference is a plausible parent at family-wise level {alpha:g}: {s} is not shown to be "
            f"closer to any reference than to the controls (smallest Holm-adjusted p = {_fmt(best)}). "
            "This is absence of evidence, not proof of independence."
        )
    return " ".join(parts)


def queries_needed(trajectory: Sequence[tuple[int, float]], level: float) -> int | None:
    """Suspect queries spent when the (anytime-valid) p-value first reached `level`."""
    return next((q for q, p in trajectory if p <= level), None)


__all__ = [
    "MIN_CONTROLS",
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
