"""Provenance benchmark on a zoo: every suspect vs every teacher, scored against the manifest.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python -m benchmarks.provenance_zoo \
        --zoo /tmp/provbench/zoo-quick --budget 1000 --out /tmp/provbench/out-quick

With --build TIER the zoo is built (or finished) first: `--scale` and `--only` (comma-separated
students) as for `distilltrace zoo build`. The pretrained tier on the 2-core machine, the
SmolLM2 students and their controls (session 19, docs/benchmarks.md):

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.provenance_zoo --build pretrained \
        --scale 0.4 --zoo /tmp/s19/zoo --budget 500 --out /tmp/s19/bench \
        --only smollm2-ft-gemma3-100-s0,smollm2-ft-sharegpt-s0,smollm2-ft-sharegpt-s1,\
smollm2-ft-sharegpt-s2,smollm2-ft-gemma3-10-s0

With `--served TEACHER=FILE` (or `--served TEACHER --served-first N`: the first N exchanges
of that teacher's zoo harvest) every suspect also gets the harvest_membership test against
that teacher, with `--membership-fresh K` fresh answers per exchange (session 32).

Prints a Markdown summary (for docs/benchmarks.md) and writes bench.json / bench.html.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--zoo", required=True)
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--alpha", type=float, default=0.01)
    ap.add_argument("--out", default="bench-provenance")
    ap.add_argument("--pool-size", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--build", choices=["quick", "full", "pretrained"], default=None)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--only", default=None, help="comma-separated students to build (--build)")
    ap.add_argument("--max-controls", type=int, default=None)
    ap.add_argument("--n-sampled", type=int, default=100)
    ap.add_argument("--dtype", default="auto", help="auto | float32 | bfloat16 (models' precision)")
    ap.add_argument("--suspects", default=None, help="comma-separated suspects, in this order")
    ap.add_argument("--no-recipe-match", action="store_true", help="any non-derived control")
    ap.add_argument("--one-per-lineage", action="store_true")
    ap.add_argument(
        "--served",
        default=None,
        help="TEACHER=FILE: add harvest_membership on what that teacher served",
    )
    ap.add_argument(
        "--served-first",
        type=int,
        default=None,
        help="with --served TEACHER (no file): the first N rows of the teacher's "
        "zoo harvest, as served (written to OUT/served-TEACHER.jsonl)",
    )
    ap.add_argument("--membership-fresh", type=int, default=1, help="fresh answers per exchange")
    a = ap.parse_args()

    from distilltrace.bench.provenance import run_bench
    from distilltrace.provenance.config import ProvenanceConfig

    zoo = Path(a.zoo)
    if a.build:  # built members are skipped: this finishes a zoo, or only checks it
        from distilltrace.distill.zoo import build_zoo

        t = time.time()
        only = a.only.split(",") if a.only else None
        build_zoo(zoo, a.build, scale=a.scale, only=only)
        print(f"built {a.build} zoo in {time.time() - t:.0f} s")
    from distilltrace.progress import LineProgress

    out = Path(a.out)
    served = _served(a, zoo, out)
    lines = LineProgress()
    task = lines.add_task("bench")
    t0 = time.time()
    res = run_bench(
        zoo, budget=a.budget, alpha=a.alpha, out=out, cache=out / "cache.sqlite",
        seed=a.seed, pool_size=a.pool_size, limit=a.limit,
        max_controls=a.max_controls, served=served,
        config=ProvenanceConfig(n_sampled=a.n_sampled, dtype=a.dtype,
                                membership_fresh=a.membership_fresh),
        match_recipe=not a.no_recipe_match, one_per_lineage=a.one_per_lineage,
        suspects=a.suspects.split(",") if a.suspects else None,
        progress=lambda msg, i, n: lines.update(task, description=msg, completed=i, total=n),
    )  # fmt: skip
    wall = time.time() - t0
    m = res.metrics
    print(f"## Provenance benchmark ({res.tier} zoo)\n")
    print(
        f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, wall {wall:.0f} s"
    )
    print(
        f"- pairs: {m['n_derived']} derived, {m['n_non_derived']} non-derived, {m['n_skipped']} skipped"
    )
    print(
        f"- precision {m['precision']}, recall {m['recall']} at alpha = {a.alpha} (TP {m['tp']}, FP {m['fp']}, FN {m['fn']})"
    )
    if "null_fpr" in m:
        print(
            f"- non-derived pairs: FPR {m['null_fpr']}, KS two-sided p = {m['null_ks_two_sided_pvalue']:.3g}, "
            f"KS super-uniform (one-sided) p = {m['null_ks_superuniform_pvalue']:.3g}"
        )
    print(f"- tests: {', '.join(res.tests)}" + "".join(
        f"; harvest_membership on what {t} served ({f}, k = {a.membership_fresh})"
        for t, f in res.served.items()))  # fmt: skip
    print(f"- queries to reach p <= 0.01 (derived pairs): {json.dumps(m['queries_to_p01'])}")
    print(
        f"- distilled students attributed to their true teacher(s) at Holm p <= 1e-4 and to no other: "
        f"{m['students_attributed_1e4']} / {m['n_students']}"
        + (
            f" (students with a skipped pair: {', '.join(m['students_with_skipped_pairs'])})"
            if m.get("students_with_skipped_pairs")
            else ""
        )
    )
    if "wall_s" in m:
        print(f"- wall time per suspect (s): {json.dumps(m['wall_s'])}")
    for dim, folds in {"teacher": m.get("folds", {}), **m.get("folds_by", {})}.items():
        for fam, f in folds.items():
            med = f["median_holm_p_derived"]
            print(
                f"- fold {dim}={fam}: test recall {f['test']['recall']}, FPR "
                f"{f['test']['false_positive_rate']}, median Holm p {med['test']}; baseline "
                f"recall {f['baseline']['recall']}, FPR {f['baseline']['false_positive_rate']}, "
                f"median Holm p {med['baseline']}; beats baseline: {f['beats_baseline']}"
            )
    print(
        "\n| suspect | teacher | derived | combined p | Holm p | parent? | queries | queries to p<=0.01 | first-words Holm p | wall s | tests / why skipped |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for p in res.pairs:
        tp = p.skipped or ", ".join(
            f"{k}={v:.2g}" if v is not None else f"{k}=skip" for k, v in p.test_pvalues.items()
        )
        if p.control_match != "recipe":
            tp += f" (controls: {p.control_match})"
        cp = f"{p.combined_pvalue:.2g}" if p.combined_pvalue is not None else "-"
        hp = f"{p.holm_pvalue:.2g}" if p.holm_pvalue is not None else "-"
        print(
            f"| {p.suspect} | {p.teacher} | {p.derived} | {cp} | {hp} | {'yes' if p.rejected else 'no'} | "
            f"{p.suspect_queries} | {p.queries_to_p01} | {p.baseline_holm_pvalue} | {p.wall_s} | {tp} |"
        )


def _served(a: argparse.Namespace, zoo: Path, out: Path) -> tuple[str, Path] | None:
    """--served TEACHER=FILE as given, or --served TEACHER with --served-first N: the first
    N exchanges of the teacher's zoo harvest (the same file for every suspect)."""
    if a.served is None:
        return None
    if "=" in a.served:  # TEACHER=FILE, parsed as `bench provenance --served` does
        from distilltrace.bench.provenance_cli import parse_served

        return parse_served(a.served)
    if a.served_first is None:
        raise SystemExit("--served TEACHER needs =FILE or --served-first N")
    from benchmarks.provenance_zoo_membership import served_rows

    teacher = a.served
    out.mkdir(parents=True, exist_ok=True)
    f = out / f"served-{teacher}.jsonl"
    rows = served_rows(zoo, teacher)[: a.served_first]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return teacher, f


if __name__ == "__main__":
    main()
