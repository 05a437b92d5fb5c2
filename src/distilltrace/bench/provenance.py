"""Benchmark: every suspect in a zoo against every teacher, scored against the manifest.

Controls for a (suspect S, teacher R) test are the zoo's non-teacher models that do not
derive from R, excluding S itself (human-text students and students of other teachers),
and that match S's recipe (`comparable`: same kind of training data, architecture and
distillation loss, a similar amount of training): "like S except for not deriving from
R". When fewer than 2 share S's loss, the loss condition is dropped (the reverse
likelihood test discounts the capability gap a different loss brings) and the pair says
so. A pair with fewer than 2 comparable controls is skipped and reported, not tested
against controls of another capability.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from distilltrace.errors import InputError
from distilltrace.provenance.config import DEFAULTS, MIN_CONTROLS, ProvenanceConfig

# scipy, distilltrace.stats and the tester are imported where used: they are slow to
# import, and the CLI (`bench provenance --help`) reads BENCH_POOL_SIZE from here.
BENCH_POOL_SIZE = 1500  # probe pool per test in the benchmark (smaller than a real test's)


@dataclass
class PairOutcome:
    """One (suspect, teacher) pair: truth, p-values and queries."""

    suspect: str
    teacher: str
    derived: bool
    combined_pvalue: float | None
    holm_pvalue: float | None
    rejected: bool
    test_pvalues: dict[str, float | None]
    suspect_queries: int
    queries_to_p01: int | None
    queries_to_p1e4: int | None
    controls: list[str]
    skipped: str | None = None
    control_match: str = "recipe"  # how the controls were matched to the suspect
    # the first-words agreement baseline (issue #18) on the same suspect query budget
    baseline_pvalue: float | None = None
    baseline_holm_pvalue: float | None = None
    baseline_rejected: bool = False
    baseline_queries: int = 0
    warnings: list[str] = field(default_factory=list)  # mismatched controls, off-format answers
    # the suspect's families for the leave-one-family-out folds (see FAMILIES)
    family: dict[str, str] = field(default_factory=dict)
    wall_s: float | None = None  # the suspect's test and baseline, all its teachers together


@dataclass
class BenchResult:
    """Precision/recall at alpha, null calibration, queries needed, per-pair outcomes."""

    zoo: str
    tier: str
    alpha: float
    budget: int
    pairs: list[PairOutcome]
    metrics: dict[str, Any] = field(default_factory=dict)
    tests: list[str] = field(default_factory=list)  # the provenance tests selected
    served: dict[str, str] = field(default_factory=dict)  # teacher -> served exchanges file

    def to_dict(self) -> dict[str, Any]:
        return {
            "zoo": self.zoo,
            "tier": self.tier,
            "alpha": self.alpha,
            "budget": self.budget,
            "tests": self.tests,
            "served": self.served,
            "metrics": self.metrics,
            "pairs": [asdict(p) for p in self.pairs],
        }

    def summary(self) -> str:
        m = self.metrics
        return (
            f"pairs: {m.get('n_derived')} derived, {m.get('n_non_derived')} non-derived; "
            f"precision {m.get('precision')}, recall {m.get('recall')} at alpha={self.alpha}; "
            f"null FPR@0.01 {m.get('null_fpr', {}).get('0.01')}, @0.05 {m.get('null_fpr', {}).get('0.05')}; "
            f"students at p<=1e-4 on true teacher only: {m.get('students_attributed_1e4')}/{m.get('n_students')}"
            + _baseline_summary(m)
            + "".join(
                f"; harvest_membership on what {t} served ({f})" for t, f in self.served.items()
            )  # fmt: skip
        )


def _baseline_summary(m: dict[str, Any]) -> str:
    b = m.get("baseline")
    if not b:
        return ""
    folds = [*m.get("folds", {}).values()]
    folds += [f for d in m.get("folds_by", {}).values() for f in d.values()]
    beat = sum(1 for f in folds if f.get("beats_baseline"))
    n = sum(1 for f in folds if f.get("beats_baseline") is not None)
    return (
        f"; first-words baseline (same budget): precision {b.get('precision')}, recall "
        f"{b.get('recall')}, null FPR@0.01 {b.get('null_fpr', {}).get('0.01')}; the test beats "
        f"it on {beat}/{n} folds with derived pairs"
    )


def lineage(member: Any) -> tuple:
    """Models of one lineage share a parent or training data (students of the same teachers;
    independent models trained on the same source). With `run_bench(one_per_lineage=True)`
    controls are taken one per lineage, so no control has a sibling among the others (the
    older likelihood and lexical tests, without their margins, were biased by siblings)."""
    if member.teachers:
        return ("student", tuple(sorted(member.teachers)))
    data = member.data or {}
    src = data.get("source") or data.get("style") or data.get("corpus")
    if src is not None:
        return ("independent", str(src).split(" (")[0])
    return ("independent", member.name)


def _amount(member: Any) -> float | None:
    """Training amount: optimizer steps when recorded, else training tokens or examples."""
    train, data = member.train or {}, member.data or {}
    for v in (train.get("steps"), data.get("tokens"), data.get("n")):
        if isinstance(v, int | float) and v > 0:
            return float(v)
    return None


def _data_kind(member: Any) -> str:
    return "human text" if member.method == "human-text" else "model outputs"


def comparable(
    suspect: Any, control: Any, max_ratio: float = 2.0, same_loss: bool = True
) -> str | None:
    """None when `control` matches the suspect's recipe, else why not: the same kind of
    training data (a model's outputs, or human text), same architecture, same
    logit-distillation loss (or none), training amounts within `max_ratio` of each other
    where both are recorded. Controls of another size, budget or kind of data differ in
    capability on the reference's text, which the likelihood tests would read as
    closeness (or distance) to the reference. `same_loss=False` drops the loss condition
    (the fallback when no control of the suspect's loss exists)."""
    if _data_kind(suspect) != _data_kind(control):
        return f"trained on {_data_kind(control)}, not {_data_kind(suspect)}"
    if suspect.arch != control.arch:
        return f"architecture {control.arch} != {suspect.arch}"
    ls = (suspect.train or {}).get("divergence")
    lc = (control.train or {}).get("divergence")
    if same_loss and ls != lc:
        return f"distillation loss {lc or 'none'} != {ls or 'none'}"
    a, b = _amount(suspect), _amount(control)
    if a is not None and b is not None and max(a, b) / min(a, b) > max_ratio:
        return f"training amount {b:g} vs {a:g} (more than {max_ratio:g}x apart)"
    return None


def recipe_controls(suspect: Any, candidates: Sequence[Any]) -> tuple[list[Any], str]:
    """The candidates `comparable` to the suspect, and how they were matched: "recipe", or
    "recipe except the distillation loss" when fewer than MIN_CONTROLS share its loss."""
    strict = [c for c in candidates if comparable(suspect, c) is None]
    loose = [c for c in candidates if comparable(suspect, c, same_loss=False) is None]
    if len(strict) < MIN_CONTROLS <= len(loose):
        return loose, "recipe except the distillation loss"
    return strict, "recipe"


def score_pairs(pairs: list[PairOutcome], alpha: float) -> dict[str, Any]:
    """Precision/recall of Holm decisions, calibration of non-derived p-values, queries."""
    from scipy import stats as _st

    from distilltrace.stats import calibration

    tested = [p for p in pairs if p.skipped is None]
    tp = sum(p.derived and p.rejected for p in tested)
    fp = sum((not p.derived) and p.rejected for p in tested)
    fn = sum(p.derived and not p.rejected for p in tested)
    null_p = [p.combined_pvalue for p in tested if not p.derived and p.combined_pvalue is not None]
    m: dict[str, Any] = {
        "n_pairs": len(pairs),
        "n_skipped": len(pairs) - len(tested),
        "n_derived": sum(p.derived for p in tested),
        "n_non_derived": sum(not p.derived for p in tested),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
    }
    if null_p:
        cal = calibration(null_p, alphas=(0.01, 0.05))
        m["null_ks_two_sided_pvalue"] = cal.ks_pvalue
        # Validity needs super-uniformity only: test "p-values stochastically smaller than U(0,1)".
        m["null_ks_superuniform_pvalue"] = float(
            _st.kstest(null_p, "uniform", alternative="greater").pvalue
        )
        m["null_fpr"] = {str(a): v for a, v in cal.fpr.items()}
        m["null_pvalues"] = sorted(null_p)
    q = [p.queries_to_p01 for p in tested if p.derived]
    walls = list({p.suspect: p.wall_s for p in tested if p.wall_s is not None}.values())
    if walls:  # the issue-18 target: first suspect < 10 min, each further one < 3 min
        m["wall_s"] = {"first": walls[0], "further_max": max(walls[1:], default=None)}
    m["queries_to_p01"] = {
        "reached": sum(x is not None for x in q),
        "of": len(q),
        "median": float(np.median([x for x in q if x is not None]))
        if any(x is not None for x in q)
        else None,
        "max": max((x for x in q if x is not None), default=None),
    }
    # Target: each distilled student at p <= 1e-4 on its true teacher(s), on no other teacher.
    by_s: dict[str, list[PairOutcome]] = {}
    for p in tested:
        by_s.setdefault(p.suspect, []).append(p)
    students = {s: ps for s, ps in by_s.items() if any(p.derived for p in ps)}
    ok = [
        s
        for s, ps in students.items()
        if all((p.holm_pvalue or 1) <= 1e-4 for p in ps if p.derived)
        and not any(p.rejected for p in ps if not p.derived)
    ]
    skipped_students = sorted(
        {p.suspect for p in pairs if p.skipped is not None and p.derived} - set(ok)
    )
    m["students_with_skipped_pairs"] = skipped_students
    m["n_students"] = len(students)
    m["students_attributed_1e4"] = len(ok)
    m["students_attributed_1e4_names"] = sorted(ok)
    if any(p.baseline_pvalue is not None for p in tested):
        m["baseline"] = baseline_metrics(tested)
        m["folds"] = fold_metrics(tested, alpha)
        m["folds_by"] = family_folds(tested, alpha)
    return m


def _rates(pairs: Sequence[PairOutcome], rejected: Callable[[PairOutcome], bool]) -> dict:
    der = [p for p in pairs if p.derived]
    non = [p for p in pairs if not p.derived]
    tp = sum(rejected(p) for p in der)
    fp = sum(rejected(p) for p in non)
    return {
        "n_derived": len(der),
        "n_non_derived": len(non),
        "recall": tp / len(der) if der else None,
        "false_positive_rate": fp / len(non) if non else None,
        "precision": tp / (tp + fp) if tp + fp else None,
    }


def baseline_metrics(tested: Sequence[PairOutcome]) -> dict[str, Any]:
    """The first-words baseline's decisions (Holm over teachers at alpha) and the null
    calibration of its p-values."""
    from distilltrace.stats import calibration

    pairs = [p for p in tested if p.baseline_pvalue is not None]
    m = _rates(pairs, lambda p: p.baseline_rejected)
    null_p = [p.baseline_pvalue for p in pairs if not p.derived]
    if null_p:
        m["null_fpr"] = {str(a): v for a, v in calibration(null_p, alphas=(0.01, 0.05)).fpr.items()}
    m["queries_per_suspect"] = max((p.baseline_queries for p in pairs), default=0)
    return m


def pair_family(man: Any, suspect: str, teacher: str) -> dict[str, str]:
    """The families a pair belongs to, one per fold dimension (see FAMILIES)."""
    m = man.get(suspect)
    share = "none"
    if man.derives_from(suspect, teacher):
        frac = (m.train or {}).get("teacher_share")
        frac = 0.5 if frac is None and m.method == "mix" else 1.0 if frac is None else frac
        share = f"{frac:.0%}"
    return {"architecture": m.arch, "data share": share}


#: Fold dimensions besides the teacher: the pairs of one family form a fold. "data share"
#: folds hold the derived pairs with that share of the teacher's data and every
#: non-derived pair (which has none).
FAMILIES = ("architecture", "data share")


def _fold(pairs: Sequence[PairOutcome], alpha: float) -> dict[str, Any]:
    """The test against the baseline on one fold's pairs."""
    test = _rates(pairs, lambda p: p.rejected)
    base = _rates(pairs, lambda p: p.baseline_rejected)
    der = [p for p in pairs if p.derived]
    med = {
        "test": float(np.median([p.holm_pvalue or 1.0 for p in der])) if der else None,
        "baseline": float(np.median([p.baseline_holm_pvalue or 1.0 for p in der])) if der else None,
    }
    beats = None
    if der:
        rt, rb = test["recall"] or 0.0, base["recall"] or 0.0
        fpr_ok = (test["false_positive_rate"] or 0.0) <= alpha
        beats = fpr_ok and (rt > rb or (rt == rb and med["test"] <= med["baseline"]))
    return {"test": test, "baseline": base, "median_holm_p_derived": med, "beats_baseline": beats}


def fold_metrics(tested: Sequence[PairOutcome], alpha: float) -> dict[str, dict[str, Any]]:
    """Leave-one-family-out: one fold per teacher (its students as the derived pairs, the
    other suspects tested against it as the non-derived ones). Neither method fits any
    parameter on the zoo, so a held-out fold's result is the method's result on it; the
    test beats the baseline on a fold when its recall is higher, or equal with a smaller
    median Holm p-value over the derived pairs, at a false-positive rate <= alpha."""
    pairs = [p for p in tested if p.baseline_pvalue is not None]
    teachers = sorted({p.teacher for p in pairs})
    return {t: _fold([p for p in pairs if p.teacher == t], alpha) for t in teachers}


def family_folds(tested: Sequence[PairOutcome], alpha: float) -> dict[str, dict[str, Any]]:
    """The same comparison per family of each dimension in FAMILIES (architecture, data
    share): {dimension: {family: fold}}."""
    pairs = [p for p in tested if p.baseline_pvalue is not None and p.family]
    out: dict[str, dict[str, Any]] = {}
    for dim in FAMILIES:
        fams = sorted({p.family[dim] for p in pairs if dim in p.family} - {"none"})
        folds = {}
        for f in fams:
            if dim == "data share":
                sel = [p for p in pairs if p.family.get(dim) in (f, "none")]
            else:
                sel = [p for p in pairs if p.family.get(dim) == f]
            folds[f] = _fold(sel, alpha)
        out[dim] = folds
    return out


def run_bench(
    zoo: str | Path,
    *,
    budget: int | None = None,
    alpha: float | None = None,
    out: str | Path | None = None,
    cache: str | Path | None = None,
    seed: int | None = None,
    pool_size: int | None = None,
    limit: int | None = None,
    max_controls: int | None = None,
    one_per_lineage: bool = False,
    match_recipe: bool = True,
    config: ProvenanceConfig | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    suspects: Sequence[str] | None = None,
    baseline: bool = True,
    served: tuple[str, str | Path] | None = None,
) -> BenchResult:
    """Run the benchmark on a zoo folder; writes bench.json/bench.html into out if given.

    `budget`, `alpha` and `seed`, when given, override the config's (default:
    ProvenanceConfig's). The pool size is the benchmark's: `pool_size`, or BENCH_POOL_SIZE.
    Controls are the models that match the suspect's recipe (`comparable`) when
    `match_recipe`, then one model per lineage (see `lineage`) when `one_per_lineage`;
    `max_controls` caps them at a seeded random subset (the likelihood test's cost grows
    with the square of their number). With `baseline`, every pair also gets the
    first-words agreement baseline on the same suspect budget (its greedy answers on the
    first `budget` pool prompts; Holm over teachers), and the metrics compare the two per
    fold (`fold_metrics`). With `served` (teacher, file of the exchanges it served), the
    harvest_membership test joins the selected tests against that teacher (`served_config`):
    the provider's case where it knows what it served. The file is the same for every
    suspect, derived or not, so the null pairs test it too."""
    from distilltrace.distill.zoo import load_manifest
    from distilltrace.provenance.inputs import check_out_dir

    if out is not None:
        check_out_dir(out)  # before any model is loaded or queried
    man = load_manifest(zoo)
    suspects = _suspects(man, suspects, limit)
    cfg = (config or DEFAULTS).with_options(
        budget=budget,
        alpha=alpha,
        seed=seed,
        pool_size=BENCH_POOL_SIZE if pool_size is None else pool_size,
    )
    cfg = served_config(cfg, man, served)
    tester = _PairTester(man, cfg, cache, baseline)
    pairs: list[PairOutcome] = []
    written = -1  # pairs in the last bench.json written
    for i, s in enumerate(suspects):
        if progress:
            progress(f"suspect {s}", i, len(suspects))
        ctrl_map, match = _control_map(
            man, s, cfg.seed, match_recipe, one_per_lineage, max_controls
        )
        # a fine-tuned model is not tested against its own base: that is weight lineage,
        # not distillation, and every same-base control shares it
        teachers = [t for t in man.names("teacher") if t != man.get(s).base]
        ok = [t for t in teachers if len(ctrl_map[t]) >= MIN_CONTROLS]
        pairs += [_skipped_pair(man, s, t, ctrl_map[t], match[t]) for t in teachers if t not in ok]
        if not ok:
            continue
        note = None
        if progress:

            def note(msg: str, done: int, total: int, _s: str = s, _i: int = i) -> None:
                progress(f"suspect {_i + 1}/{len(suspects)} {_s}: {msg}", done, total)

        t0 = time.perf_counter()
        done = tester.pairs(s, ok, ctrl_map, match, note)
        for p in done:
            p.wall_s = round(time.perf_counter() - t0, 1)
        pairs += done
        if out is not None:  # partial results after every suspect (a long run can be cut)
            _write(_result(zoo, man, cfg, pairs), out)
            written = len(pairs)
    result = _result(zoo, man, cfg, pairs)
    if out is not None and written != len(pairs):  # pairs skipped after the last write
        _write(result, out)
    return result


def served_config(cfg: ProvenanceConfig, man: Any, served: tuple[str, str | Path] | None
                  ) -> ProvenanceConfig:  # fmt: skip
    """The config with the harvest_membership test against the teacher that served the
    file (checked before any model loads: a teacher of the zoo, a readable file with
    exchanges that can be tested)."""
    if served is None:
        return cfg
    from distilltrace.provenance.membership import NAME
    from distilltrace.provenance.served import check_served

    teacher, path = served
    teachers = man.names("teacher")
    if teacher not in teachers:
        raise InputError(
            f"--served {teacher}=...: not a teacher of this zoo (teachers: {', '.join(teachers)})"
        )
    tests = tuple(dict.fromkeys((*cfg.tests, NAME)))
    cfg = cfg.with_options(served=str(path), served_by=teacher, tests=tests)
    check_served(cfg)
    return cfg


def _result(
    zoo: str | Path, man: Any, cfg: ProvenanceConfig, pairs: list[PairOutcome]
) -> BenchResult:
    served = {cfg.served_by: cfg.served} if cfg.served else {}
    return BenchResult(str(zoo), man.tier, cfg.alpha, cfg.budget, pairs,
                       score_pairs(pairs, cfg.alpha), list(cfg.tests), served)  # fmt: skip


def _suspects(man: Any, suspects: Sequence[str] | None, limit: int | None) -> list[str]:
    """The zoo's non-teachers (or the chosen ones, in the order given), at most `limit`."""
    teachers = man.names("teacher")
    all_suspects = [n for n in man.names() if n not in teachers]
    if suspects is not None:
        unknown = sorted(set(suspects) - set(all_suspects))
        if unknown:
            raise InputError(f"not suspects in this zoo: {', '.join(unknown)}")
        out = list(suspects)
    else:
        out = all_suspects
    return out[:limit] if limit is not None else out


def _control_map(
    man: Any,
    s: str,
    seed: int,
    match_recipe: bool,
    one_per_lineage: bool,
    max_controls: int | None,
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Per teacher: the controls of suspect s, and how they were matched to it."""
    teachers = man.names("teacher")
    ctrl_map = {
        t: [n for n in man.names() if n not in teachers and n != s and not man.derives_from(n, t)]
        for t in teachers
    }
    match = {t: "any non-derived model" for t in teachers}
    if match_recipe:
        for t, v in ctrl_map.items():
            picked, match[t] = recipe_controls(man.get(s), [man.get(n) for n in v])
            ctrl_map[t] = [m.name for m in picked]
    if one_per_lineage:
        rng = random.Random(f"bench-lineage:{seed}:{s}")
        for t, v in ctrl_map.items():
            groups: dict[tuple, list[str]] = {}
            for n in v:
                groups.setdefault(lineage(man.get(n)), []).append(n)
            ctrl_map[t] = sorted(rng.choice(sorted(g)) for g in groups.values())
    if max_controls is not None:
        rng = random.Random(f"bench-controls:{seed}:{s}")
        ctrl_map = {
            t: sorted(rng.sample(v, max_controls)) if len(v) > max_controls else v
            for t, v in ctrl_map.items()
        }
    return ctrl_map, match


def _skipped_pair(man: Any, s: str, t: str, controls: list[str], match: str) -> PairOutcome:
    """A pair without MIN_CONTROLS comparable controls: reported, not tested."""
    return PairOutcome(
        s, t, man.derives_from(s, t), None, None, False, {}, 0, None, None, controls,
        skipped=f"only {len(controls)} comparable control(s), {MIN_CONTROLS} needed",
        control_match=match, family=pair_family(man, s, t),
    )  # fmt: skip


class _PairTester:
    """Runs test_provenance for one suspect against its teachers (models loaded once,
    queries shared across suspects)."""

    def __init__(
        self, man: Any, cfg: ProvenanceConfig, cache: str | Path | None, baseline: bool = True
    ):
        from distilltrace.provenance.session import QueryStore

        self.man, self.cfg, self.cache, self.baseline = man, cfg, cache, baseline
        self.store = QueryStore()
        self.loaded: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        from distilltrace.models import load_model

        if name not in self.loaded:
            self.loaded[name] = load_model(
                self.man.spec(name), cache=self.cache, dtype=self.cfg.dtype
            )
        return self.loaded[name]

    def pairs(
        self,
        s: str,
        teachers: list[str],
        ctrl_map: dict[str, list[str]],
        match: dict[str, str],
        progress: Callable[[str, int, int], None] | None = None,
    ) -> list[PairOutcome]:
        from distilltrace.provenance.combine import queries_needed
        from distilltrace.provenance.tester import test_provenance

        get, man = self.get, self.man
        names = {id(get(n)): n for n in [s, *teachers, *{c for t in teachers for c in ctrl_map[t]}]}
        res = test_provenance(
            get(s),
            [get(t) for t in teachers],
            [[get(c) for c in ctrl_map[t]] for t in teachers],
            config=self.cfg,
            store=self.store,
            name_of=lambda m: names[id(m)],
            progress=progress,
        )
        base = self.first_words(s, teachers, ctrl_map, progress) if self.baseline else {}
        return [
            PairOutcome(
                suspect=s,
                teacher=t,
                derived=man.derives_from(s, t),
                combined_pvalue=r.combined_pvalue,
                holm_pvalue=r.holm_pvalue,
                rejected=r.rejected,
                test_pvalues={k: v.pvalue for k, v in r.tests.items()},
                suspect_queries=res.suspect_queries,
                queries_to_p01=queries_needed(r.trajectory, 0.01),
                queries_to_p1e4=queries_needed(r.trajectory, 1e-4),
                controls=ctrl_map[t],
                control_match=match[t],
                skipped=f"identical: {r.identical}"
                if r.identical and r.combined_pvalue is None
                else None,
                **base.get(t, {}),
                warnings=[w for w in res.warnings if not w.startswith("reference ")]
                + [w for w in res.warnings if w.startswith(f"reference {t}:")],
                family=pair_family(man, s, t),
            )
            for t, r in zip(teachers, res.references, strict=True)
        ]

    def first_words(
        self,
        s: str,
        teachers: list[str],
        ctrl_map: dict[str, list[str]],
        progress: Callable[[str, int, int], None] | None = None,
    ) -> dict[str, dict[str, Any]]:
        """The first-words baseline per teacher on the suspect's greedy answers to the first
        `budget` pool prompts (its whole budget), Holm over the teachers."""
        from distilltrace.provenance.firstwords import first_words_on
        from distilltrace.provenance.session import QueryCounter, Session
        from distilltrace.provenance.tester import shuffled_pool
        from distilltrace.stats import holm

        labs = [s, *teachers, *sorted({c for t in teachers for c in ctrl_map[t]})]
        sess = Session({n: self.get(n) for n in labs}, self.cfg, QueryCounter(), self.store)
        prompts = shuffled_pool(self.cfg)[: self.cfg.budget]
        ps = {
            t: first_words_on(sess, s, t, ctrl_map[t], prompts, progress).pvalue for t in teachers
        }
        h = holm([ps[t] for t in teachers], alpha=self.cfg.alpha)
        q = sess.counter.total(s)
        return {
            t: {
                "baseline_pvalue": ps[t],
                "baseline_holm_pvalue": float(adj),
                "baseline_rejected": bool(rej),
                "baseline_queries": q,
            }
            for t, adj, rej in zip(teachers, h.adjusted, h.reject, strict=True)
        }


def _write(result: BenchResult, out: str | Path) -> None:
    from distilltrace.report import render_html, write_json

    o = Path(out)
    write_json(result, o / "bench.json")
    render_html("provenance_bench.html", {"b": result.to_dict()}, o / "bench.html")
