"""Generation throughput (tokens/s) and peak memory of the bundled models.

Each model runs in its own subprocess (so peak RSS is its own): load (timed), then batch 1
(prompts one at a time) and batched (all prompts in one call), greedy and sampled. Reports
tokens per wall-second and per CPU-second of this process (the latter is less sensitive to
other jobs on a shared machine), and the 1-minute load average.

    nice -n 10 .venv/bin/python -m benchmarks.models_throughput [--models NAME ...] [--tokens N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

PROMPTS = [
    "What is the capital of France?",
    "Give me three tips for staying healthy.",
    "Explain what a prime number is.",
    "Write a short poem about the sea.",
    "What is the boiling point of water?",
    "Name three animals that live in the ocean.",
    "How do plants make food?",
    "What does a computer's CPU do?",
]


def one(name: str, tokens: int, batch_prompts: int) -> dict:
    """Measure one model in this process."""
    import torch

    from distilltrace.models import load_model

    t0 = time.perf_counter()
    m = load_model(name)
    load_s = time.perf_counter() - t0
    m.batch_size = batch_prompts
    out: dict = {"model": name, "load_s": round(load_s, 2), "threads": torch.get_num_threads()}
    m.generate(PROMPTS[:1], max_new_tokens=4)  # warm-up
    for label, temp in (("greedy", 0.0), ("t0.7", 0.7)):
        n, t, c = 0, time.perf_counter(), time.process_time()
        for p in PROMPTS[:3]:
            g = m.generate([p], max_new_tokens=tokens, temperature=temp, seed=0)
            n += len(g[0].token_ids)
        dt, dc = time.perf_counter() - t, time.process_time() - c
        out[f"batch1_{label}_tok_s"] = round(n / dt, 1)
        out[f"batch1_{label}_tok_per_cpu_s"] = round(n / dc, 1)
        out[f"batch1_{label}_tokens"] = n
        prompts = PROMPTS[:batch_prompts]
        t, c = time.perf_counter(), time.process_time()
        gens = m.generate(prompts, max_new_tokens=tokens, temperature=temp, seed=0)
        dt, dc = time.perf_counter() - t, time.process_time() - c
        nb = sum(len(g.token_ids) for g in gens)
        out[f"batch{len(prompts)}_{label}_tok_s"] = round(nb / dt, 1)
        out[f"batch{len(prompts)}_{label}_tok_per_cpu_s"] = round(nb / dc, 1)
        out[f"batch{len(prompts)}_{label}_tokens"] = nb
    out["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="*", default=["smollm2-135m-instruct", "gemma3-270m"])
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(one(a.one, a.tokens, a.batch)))
        return
    rows = []
    for name in a.models:
        cmd = [sys.executable, "-m", "benchmarks.models_throughput", "--one", name]
        cmd += ["--tokens", str(a.tokens), "--batch", str(a.batch)]
        r = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if r.returncode != 0:
            print(f"{name}: failed: {r.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    print(
        json.dumps(
            {"machine": f"{platform.machine()} {os.cpu_count()} cpus", "results": rows}, indent=2
        )
    )


if __name__ == "__main__":
    main()
