"""Generation and scoring time by batch size, side by side in one run: the old default
(16 prompts per generation batch) against wider batches, on the same prompts and seeds.

Generation on CPU is bound by per-step overhead (a forward pass per new token for the
whole batch), so wide batches pay; scoring is one forward pass per batch, so they do not.
Compute precision: --dtype (default "auto": bfloat16 where the CPU has AMX).

    nice -n 10 .venv/bin/python -m benchmarks.models_batch_size [--models NAME ...]
        [--prompts 128] [--tokens 64] [--batches 16 32 64 128] [--dtype auto] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import time

from benchmarks import write_rows


def measure(name: str, n_prompts: int, tokens: int, batches: list[int], dtype: str) -> list[dict]:
    """Greedy and sampled generation, then scoring of the sampled answers, per batch size."""
    from distilltrace.models import load_model
    from distilltrace.provenance.probes import builtin_prompts

    m = load_model(name, dtype=dtype)
    prompts = builtin_prompts(n_prompts, seed=1)
    m.generate(prompts[:4], max_new_tokens=4)  # warm-up
    rows = []
    for b in batches:
        m.batch_size = m.score_batch_size = b
        row: dict = {"model": name, "dtype": m.info.extra.get("dtype"), "batch": b}
        for label, temp in (("greedy", 0.0), ("sampled", 0.8)):
            t0 = time.perf_counter()
            gens = m.generate(prompts, max_new_tokens=tokens, temperature=temp, seed=0)
            dt = time.perf_counter() - t0
            n = sum(len(g.token_ids) for g in gens)
            row[f"{label}_s"], row[f"{label}_tok_s"] = round(dt, 2), round(n / dt, 1)
        t0 = time.perf_counter()
        m.score(prompts, [g.text for g in gens])
        row["score_s"] = round(time.perf_counter() - t0, 2)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="*", default=["smollm2-135m-instruct", "gemma3-270m"])
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--batches", type=int, nargs="*", default=[16, 32, 64, 128])
    ap.add_argument("--dtype", default="auto", help="auto, float32 or bfloat16")
    ap.add_argument("--out", help="write the rows and the machine to this JSON file")
    a = ap.parse_args()
    rows = [r for name in a.models for r in measure(name, a.prompts, a.tokens, a.batches, a.dtype)]
    print(f"\n{'model':24} {'dtype':9} {'batch':>5} {'greedy s':>9} {'sampled s':>9} "
          f"{'tok/s':>7} {'score s':>8}")  # fmt: skip
    for r in rows:
        print(f"{r['model']:24} {r['dtype']:9} {r['batch']:>5} {r['greedy_s']:>9} "
              f"{r['sampled_s']:>9} {r['greedy_tok_s']:>7} {r['score_s']:>8}")  # fmt: skip
    if a.out:
        write_rows(a.out, rows)


if __name__ == "__main__":
    main()
