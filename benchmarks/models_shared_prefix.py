"""Scoring with and without the shared prompt prefix run once per call, side by side in
one run: the same sampled answers scored alternately (ABAB) with `shared_prefix_min` 0 (off)
and the default, with the largest difference in per-token log-probability between the two.

SmolLM2's template opens every prompt with its default system prompt (24 tokens); Gemma's
shares 4 tokens, under the default minimum of 16, so it is scored as before. Compute
precision: --dtype (default "auto": bfloat16 where the CPU runs it natively).

    .venv/bin/python -m benchmarks.models_shared_prefix [--models NAME ...] [--prompts 128]
        [--tokens 48] [--rounds 2] [--dtype auto] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

from benchmarks import write_rows


def measure(name: str, n_prompts: int, tokens: int, rounds: int, dtype: str) -> dict:
    """Median scoring time with the shared prefix off and on, and the largest difference."""
    import numpy as np

    from distilltrace.models import load_model
    from distilltrace.provenance.probes import builtin_prompts

    m = load_model(name, dtype=dtype)
    default = m.shared_prefix_min
    prompts = builtin_prompts(n_prompts, seed=1)
    texts = [g.text for g in m.generate(prompts, max_new_tokens=tokens, temperature=0.8, seed=0)]
    enc = [m.encode_prompt(p) for p in prompts]
    shared = len(os.path.commonprefix(enc))
    m.score(prompts[:8], texts[:8])  # warm-up
    times: dict[int, list[float]] = {0: [], default: []}
    lps: dict[int, np.ndarray] = {}
    for _ in range(rounds):
        for setting in (0, default):
            m.shared_prefix_min = setting
            t0 = time.perf_counter()
            res = m.score(prompts, texts)
            times[setting].append(time.perf_counter() - t0)
            lps[setting] = np.array([t.logprob for r in res for t in r.tokens])
    off, on = float(np.median(times[0])), float(np.median(times[default]))
    row = {"model": name, "dtype": m.info.extra.get("dtype"), "texts": len(texts),
           "tokens_scored": int(lps[0].size), "prompt_tokens_mean": round(float(np.mean(list(map(len, enc)))), 1),
           "shared_prefix_tokens": shared, "off_s": round(off, 2), "on_s": round(on, 2),
           "speedup": round(off / on, 2), "max_abs_diff": float(np.abs(lps[0] - lps[default]).max())}  # fmt: skip
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="*", default=["smollm2-135m-instruct", "gemma3-270m"])
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--dtype", default="auto", help="auto, float32 or bfloat16")
    ap.add_argument("--out", help="write the rows and the machine to this JSON file")
    a = ap.parse_args()
    rows = [measure(n, a.prompts, a.tokens, a.rounds, a.dtype) for n in a.models]
    print(
        f"\n{'model':24} {'dtype':9} {'shared':>6} {'off s':>7} {'on s':>7} {'x':>5} {'max diff':>9}"
    )
    for r in rows:
        print(f"{r['model']:24} {r['dtype']:9} {r['shared_prefix_tokens']:>6} {r['off_s']:>7} "
              f"{r['on_s']:>7} {r['speedup']:>5} {r['max_abs_diff']:>9.2e}")  # fmt: skip
    if a.out:
        write_rows(a.out, rows)


if __name__ == "__main__":
    main()
