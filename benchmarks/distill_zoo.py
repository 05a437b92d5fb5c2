"""Build a zoo tier and measure whether students learned from their teacher.

On held-out prompts (not in the harvest), each teacher answers; every student's perplexity
on each teacher's answers is measured (bits per byte and per-token perplexity, through the
model interface's `score`). A seq-KD student should fit its own teacher's answers better
than the other teacher's, and better than a human-text student does.

    nice -n 10 env OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.distill_zoo \
        --tier full --scale 0.2 --out /tmp/zoo-full --heldout 40
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from distilltrace.distill.dataset import read_records
from distilltrace.distill.evaluate import perplexity
from distilltrace.distill.harvesting import harvest
from distilltrace.distill.prompts import generate_prompts
from distilltrace.distill.zoo import build_zoo, zoo_plan
from distilltrace.models import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tier", default="quick", choices=["quick", "full"])
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--heldout", type=int, default=40, help="held-out prompts per teacher")
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--only", default=None, help="comma-separated student names to keep (a smaller zoo)"
    )
    ap.add_argument("--arch", default=None, help="override every student's architecture")
    ap.add_argument("--n-prompts", type=int, default=None)
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--epochs", type=float, default=None)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--human-chars", type=int, default=None)
    args = ap.parse_args()

    plan = zoo_plan(args.tier, args.scale)
    students = plan.students
    if args.only:
        keep = args.only.split(",")
        students = tuple(s for s in students if s.name in keep)
    if args.arch:
        students = tuple(replace(s, arch=args.arch) for s in students)
    over = {
        k: v
        for k, v in (
            ("n_prompts", args.n_prompts),
            ("max_new_tokens", args.max_new_tokens),
            ("epochs", args.epochs),
            ("lr", args.lr),
            ("human_chars", args.human_chars),
        )
        if v is not None
    }
    plan = replace(plan, students=students, **over)
    t0 = time.perf_counter()
    m = build_zoo(args.out, args.tier, plan=plan, device=args.device, progress=True)
    build_s = time.perf_counter() - t0
    plan = m.extra["plan"]
    teachers = m.names("teacher")
    train_prompts = {p.text for p in generate_prompts(plan["n_prompts"], seed=plan["harvest_seed"])}
    held = [p for p in generate_prompts(args.heldout * 2, seed=4242) if p.text not in train_prompts]
    held = held[: args.heldout]

    answers = {}
    for t in teachers:
        path = args.out / "heldout" / f"{t}.jsonl"
        harvest(
            load_model(m.spec(t)),
            held,
            path,
            max_new_tokens=plan["max_new_tokens"],
            temperature=plan["temperature"],
            top_p=plan["top_p"],
            seed=plan["harvest_seed"],
            batch_size=16,
        )
        answers[t] = [r for r in read_records(path) if r.response.strip()]

    rows = []
    for x in m.models:
        model = load_model(m.spec(x.name))
        row = {"model": x.name, "role": x.role, "method": x.method, "teachers": x.teachers}
        for t in teachers:
            row[t] = perplexity(model, answers[t]).to_dict()
        rows.append(row)
        print(
            json.dumps(
                {"model": x.name, **{t: round(row[t]["bits_per_byte"], 4) for t in teachers}}
            ),
            flush=True,
        )

    result = {
        "tier": args.tier,
        "scale": args.scale,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cpus",
        "build_wall_s": round(build_s, 1),
        "heldout_prompts": len(held),
        "rows": rows,
        "train": {x.name: x.train for x in m.models},
    }
    (args.out / "learning.json").write_text(json.dumps(result, indent=1))
    print(markdown(result, teachers))


def markdown(result: dict, teachers: list[str]) -> str:
    head = "| student | method | teachers | " + " | ".join(f"bits/byte on {t}" for t in teachers)
    head += " | " + " | ".join(f"ppl/token on {t}" for t in teachers) + " |"
    lines = [head, "|" + " --- |" * (3 + 2 * len(teachers))]
    for r in result["rows"]:
        bpb = " | ".join(f"{r[t]['bits_per_byte']:.3f}" for t in teachers)
        ppl = " | ".join(f"{r[t]['perplexity']:.1f}" for t in teachers)
        lines.append(
            f"| {r['model']} | {r['method']} | {','.join(r['teachers']) or '-'} | {bpb} | {ppl} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
