"""Harvest throughput: a local teacher at several batch sizes, and the same teacher through
`distilltrace serve` on loopback (OpenAI-compatible HTTP), in generated tokens per second.
Also the training throughput of a student on the harvest.

    nice -n 10 env OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.distill_harvest \
        --teacher smollm2-135m-instruct --prompts 32 --max-new-tokens 64
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from distilltrace.distill.dataset import read_records
from distilltrace.distill.harvesting import harvest
from distilltrace.distill.prompts import generate_prompts
from distilltrace.distill.student import make_student
from distilltrace.distill.training import train_seq_kd
from distilltrace.models import load_model


def _tokens(tok, path: Path) -> int:
    return sum(
        len(tok(r.response, add_special_tokens=False)["input_ids"]) for r in read_records(path)
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-sizes", default="1,8,16")
    ap.add_argument("--student", default="small-4l")
    ap.add_argument("--train-steps", type=int, default=20)
    args = ap.parse_args()

    teacher = load_model(args.teacher)
    tok = teacher.tokenizer
    prompts = generate_prompts(args.prompts, seed=7)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for bs in [int(x) for x in args.batch_sizes.split(",")]:
            out = Path(d) / f"local-{bs}.jsonl"
            t = time.perf_counter()
            harvest(
                teacher,
                prompts,
                out,
                max_new_tokens=args.max_new_tokens,
                batch_size=bs,
                progress=False,
            )
            wall = time.perf_counter() - t
            n = _tokens(tok, out)
            rows.append(
                {
                    "path": "local",
                    "batch_size": bs,
                    "tokens": n,
                    "wall_s": round(wall, 2),
                    "tokens_per_s": round(n / wall, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)

        from tests.serve_helpers import running_server

        with running_server(args.teacher) as url:
            import httpx

            name = httpx.get(f"{url}/models").json()["data"][0]["id"]
            remote = load_model(f"openai:{url};model={name};concurrency=8")
            for bs in [int(x) for x in args.batch_sizes.split(",") if int(x) > 1]:
                out = Path(d) / f"serve-{bs}.jsonl"
                t = time.perf_counter()
                harvest(
                    remote,
                    prompts,
                    out,
                    max_new_tokens=args.max_new_tokens,
                    batch_size=bs,
                    progress=False,
                )
                wall = time.perf_counter() - t
                n = _tokens(tok, out)
                same = [r.response for r in read_records(out)] == [
                    r.response for r in read_records(Path(d) / f"local-{bs}.jsonl")
                ]
                rows.append(
                    {
                        "path": "serve (loopback HTTP)",
                        "batch_size": bs,
                        "tokens": n,
                        "wall_s": round(wall, 2),
                        "tokens_per_s": round(n / wall, 1),
                        "same_text_as_local": same,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)

        st = make_student(args.student, tok, 0)
        res = train_seq_kd(
            st,
            Path(d) / f"local-{int(args.batch_sizes.split(',')[-1])}.jsonl",
            Path(d) / "student",
            steps=args.train_steps,
            batch_size=8,
            progress=False,
        )
        train = {
            "student": args.student,
            "steps": res.steps,
            "tokens": res.tokens,
            "wall_s": res.wall_s,
            "tokens_per_s": res.tokens_per_s,
        }
        print(json.dumps(train), flush=True)
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "cpus": os.cpu_count(),
                "load_avg": os.getloadavg(),
            }
        )
    )
    print("| path | batch | tokens | wall s | tokens/s |\n| --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['path']} | {r['batch_size']} | {r['tokens']} | {r['wall_s']} | {r['tokens_per_s']} |"
        )


if __name__ == "__main__":
    main()
