"""The membership test (provenance.membership) on a zoo's fine-tuned students: did the
suspect learn the exact answers the teacher served?

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.provenance_zoo_membership \
        --zoo /tmp/s29/zoo --teacher smollm2-135m-instruct \
        --suspects gemma3-ft-smollm2-100-s0,gemma3-ft-smollm2-10-s0,gemma3-ft-sharegpt-s0

The teacher's harvest (`ZOO/data/TEACHER.jsonl`, in the plan's prompt order) is what it
served. A student trained on a share of it (`mix-sharegpt`: the first round(share x n)
answers; `seq-kd`: all) learned exactly those rows. Every suspect is tested on every
served set in `--sets` (shares of the harvest, first rows first: the rows a share-s
student trained on), each with its own number of fresh answers k, so that a set of n rows
can reach p = (k + 1)^-n. A suspect not trained on a set is a null case (its p-value is
uniform), a suspect trained on it a power case. Our model's fresh answers and scores go
through the query cache (`--cache`), so each suspect costs only its own scores.

Prints a line per (suspect, set) and a Markdown table; writes OUT/membership.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from pathlib import Path

DEFAULT_SETS = "1.0:3,0.1:9,0.01:99"  # share:k (k fresh answers per served answer)


def served_rows(zoo: Path, teacher: str) -> list[dict]:
    """The harvest as served exchanges, in the order the students took them."""
    from distilltrace.distill.dataset import read_records
    from distilltrace.distill.prompts import generate_prompts

    plan = json.loads((zoo / "plan.json").read_text(encoding="utf-8"))
    by = {r.prompt: r for r in read_records(zoo / "data" / f"{teacher}.jsonl")}
    prompts = generate_prompts(int(plan["n_prompts"]), seed=int(plan["harvest_seed"]))
    return [{"request_id": f"row-{i}", "prompt": p.text, "response": by[p.text].response,
             "temperature": float(plan["temperature"]), "top_p": float(plan["top_p"]),
             "max_tokens": int(plan["max_new_tokens"])} for i, p in enumerate(prompts)]  # fmt: skip


def trained_share(zoo: Path, name: str, teacher: str) -> float:
    """The share of the teacher's harvest the student trained on (0 when none)."""
    plan = json.loads((zoo / "plan.json").read_text(encoding="utf-8"))
    sp = next((s for s in plan["students"] if s["name"] == name), None)
    if sp is None or teacher not in sp.get("teachers", []):
        return 0.0
    return 1.0 if sp["method"] == "seq-kd" else float(sp["data_fraction"])


def first_rows(n: int, share: float) -> int:
    """How many rows a share-s student took (the zoo's own rounding, at least 1)."""
    return max(1, int(round(share * n)))


def parse_sets(text: str) -> list[tuple[float, int]]:
    out = []
    for part in text.split(","):
        s, k = part.split(":")
        out.append((float(s), int(k)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", type=Path, required=True)
    ap.add_argument("--teacher", default="smollm2-135m-instruct")
    ap.add_argument("--suspects", required=True, help="comma-separated zoo students")
    ap.add_argument("--sets", default=DEFAULT_SETS, help="share:k,... (default %(default)s)")
    ap.add_argument("--cache", type=Path, default=None, help="default: ZOO/membership-cache")
    ap.add_argument("--out", type=Path, default=None, help="default: ZOO/membership")
    ap.add_argument("--seed", type=int, default=0, help="the rank test's tie-breaking seed")
    ap.add_argument("--fresh-seed", type=int, default=1_000_003,
                    help="seed of the first fresh draw (another value: an independent replicate)")  # fmt: skip
    a = ap.parse_args(argv)
    from distilltrace.models import load_model
    from distilltrace.models.cache import CachedModel
    from distilltrace.provenance.membership_cli import run_membership, selection

    rows = served_rows(a.zoo, a.teacher)
    out = a.out or a.zoo / "membership"
    out.mkdir(parents=True, exist_ok=True)
    ref = CachedModel(load_model(a.teacher), (a.cache or a.zoo / "membership-cache") / "q.sqlite")
    results = []
    for name in a.suspects.split(","):
        suspect = load_model(str(a.zoo / name))
        share = trained_share(a.zoo, name, a.teacher)
        for s, k in parse_sets(a.sets):
            n = first_rows(len(rows), s)
            sub = rows[:n]
            cfg = {
                "membership_fresh": k,
                "membership_max": n,
                "membership_seed": a.fresh_seed,
                "seed": a.seed,
            }  # the rows carry their serving settings
            t0 = time.perf_counter()
            res, _ = run_membership(suspect, ref, sub, cfg, [], selection(sub, cfg))
            r = {"suspect": name, "trained_share": share, "set_share": s, "n": res.n, "k": k,
                 "trained_on_set": share >= s, "pvalue": res.pvalue,
                 "n_above_all": res.n_above_all, "mean_rank": res.statistic,
                 "floor": (k + 1.0) ** -res.n, "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
            results.append(r)
            print(f"{name} (trained on {share:.0%}) x first {n} served (k={k}): p = "
                  f"{r['pvalue']:.3g}, {r['n_above_all']}/{r['n']} above all fresh, "
                  f"{r['seconds']:.0f} s", flush=True)  # fmt: skip
        del suspect
    doc = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
           "machine": platform.processor() or platform.machine(), "zoo": str(a.zoo),
           "teacher": a.teacher, "sets": a.sets, "fresh_seed": a.fresh_seed,
           "results": results}  # fmt: skip
    (out / "membership.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
    print("| suspect | trained on | " + " | ".join(
        f"first {first_rows(len(rows), s)} (k={k})" for s, k in parse_sets(a.sets)) + " |")  # fmt: skip
    print("|---|---|" + "---|" * len(parse_sets(a.sets)))
    for name in a.suspects.split(","):
        rs = [r for r in results if r["suspect"] == name]
        cells = [f"{'**' if r['trained_on_set'] else ''}{r['pvalue']:.2g}"
                 f"{'**' if r['trained_on_set'] else ''} ({r['n_above_all']}/{r['n']})" for r in rs]  # fmt: skip
        print(f"| {name} | {rs[0]['trained_share']:.0%} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
