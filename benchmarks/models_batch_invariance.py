"""Does a prompt's answer depend on which prompts share its batch? Per compute precision,
the same prompts are answered (greedy and sampled, the same seed) and scored at two batch
sizes, and the answers and scores compared prompt by prompt.

The samplers are seeded per prompt, so any difference comes from the numbers: rounding
that moves with the batch's shape (left padding, the matrix kernels' blocking).

    .venv/bin/python -m benchmarks.models_batch_invariance [--model smollm2-135m-instruct] \
        [--prompts 24] [--tokens 48] [--batches 16,4] [--dtypes float32,bfloat16]

Prints a Markdown table for docs/benchmarks.md ("Compute precision").
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform

import numpy as np


def answers(model, prompts: list[str], batch: int, temperature: float, tokens: int) -> list[str]:
    model.batch_size = batch
    gens = model.generate(prompts, max_new_tokens=tokens, temperature=temperature, seed=5)
    return [g.text for g in gens]


def scores(model, prompts: list[str], texts: list[str], batch: int) -> np.ndarray:
    model.score_batch_size = batch
    return np.array([r.total_logprob for r in model.score(prompts, texts)], dtype=float)


def compare(spec: str, dtype: str, prompts: list[str], batches: tuple[int, int], tokens: int):
    """One row: answers that differ between the two batch sizes (greedy, sampled at 0.8),
    and the largest difference of a score (nats, whole answer)."""
    from distilltrace.models import load_model

    m = load_model(spec, dtype=dtype)
    a, b = batches
    row = {"dtype": m.info.extra.get("dtype", dtype), "n": len(prompts)}
    texts = {}
    for name, temp in (("greedy", 0.0), ("sampled", 0.8)):
        x, y = (answers(m, prompts, bs, temp, tokens) for bs in (a, b))
        row[name] = sum(u != v for u, v in zip(x, y, strict=True))
        texts[name] = x
    s_a, s_b = (scores(m, prompts, texts["greedy"], bs) for bs in (a, b))
    row["score_max_abs"] = float(np.max(np.abs(s_a - s_b)))
    row["score_mean_abs"] = float(np.mean(np.abs(s_a - s_b)))
    row["score_mean"] = float(np.mean(s_a))
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--batches", default="16,4")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    a = ap.parse_args(argv)
    from distilltrace.prompts import generate_prompts

    batches = tuple(int(x) for x in a.batches.split(","))
    if len(batches) != 2:
        ap.error("--batches takes two sizes, e.g. 16,4")
    prompts = [p.text for p in generate_prompts(a.prompts, seed=3)]
    print(f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {a.model}, "
          f"{len(prompts)} prompts, {a.tokens} tokens, batch {batches[0]} vs {batches[1]}")  # fmt: skip
    print("| precision | greedy answers that differ | sampled (0.8) that differ | "
          "score difference, largest / mean (nats per answer) | mean score |")  # fmt: skip
    print("|---|---|---|---|---|")
    for d in a.dtypes.split(","):
        r = compare(a.model, d, prompts, batches, a.tokens)
        print(f"| {r['dtype']} | {r['greedy']} of {r['n']} | {r['sampled']} of {r['n']} | "
              f"{r['score_max_abs']:.2g} / {r['score_mean_abs']:.2g} | {r['score_mean']:.1f} |",
              flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
