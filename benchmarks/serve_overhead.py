"""Serve overhead: the same greedy generation locally and through `distilltrace serve` on loopback.

Batch 1, greedy, fixed max tokens; reports median wall time of each and their ratio
(served / local). Target: < 1.10.

    nice -n 10 .venv/bin/python -m benchmarks.serve_overhead [--model SPEC] [--reps N] [--tokens N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import httpx

PROMPTS = [
    "What is the capital of France?",
    "Explain what a prime number is.",
    "Write a short poem about the sea.",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=32)
    a = ap.parse_args()

    from distilltrace.models import load_model
    from tests.serve_helpers import running_server

    local = load_model(a.model)
    local.generate(PROMPTS[:1], max_new_tokens=4)
    with running_server(a.model) as url, httpx.Client(base_url=url, timeout=600) as c:
        name = c.get("/models").json()["data"][0]["id"]

        def served(p: str) -> tuple[str, int]:
            r = c.post(
                "/chat/completions",
                json={
                    "model": name,
                    "messages": [{"role": "user", "content": p}],
                    "max_tokens": a.tokens,
                    "temperature": 0,
                },
            ).json()
            return r["choices"][0]["message"]["content"], r["usage"]["completion_tokens"]

        served(PROMPTS[0])  # warm-up
        t_local, t_served, same = [], [], True
        for _ in range(a.reps):
            for p in PROMPTS:  # interleave so load drifts hit both sides alike
                t = time.perf_counter()
                g = local.generate([p], max_new_tokens=a.tokens)[0]
                t_local.append(time.perf_counter() - t)
                t = time.perf_counter()
                text, n = served(p)
                t_served.append(time.perf_counter() - t)
                same = same and text == g.text and n == len(g.token_ids)
    ml, ms = statistics.median(t_local), statistics.median(t_served)
    print(
        json.dumps(
            {
                "model": a.model,
                "tokens": a.tokens,
                "runs": len(t_local),
                "local_median_s": round(ml, 3),
                "served_median_s": round(ms, 3),
                "ratio": round(ms / ml, 3),
                "sum_ratio": round(sum(t_served) / sum(t_local), 3),
                "identical_outputs": same,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
