"""Compute precision side by side: float32 against bfloat16 on the same model, prompts and
seeds, in one process, interleaved (so a drift in the machine's speed hits both).

Per bundled model:
- sampled generation (temperature 0.7, batch 16) in tokens/s;
- scoring (per-token log-probabilities of given continuations, batch 16) in texts/s;
- how far bfloat16 moves the numbers a test reads: per-token |log p difference| on the
  same float32 texts, and the share of greedy answers whose first 40 characters agree.

Prompts are real human prompts (ShareGPT, the detector split's opening turns, first 32).

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.models_precision [--models NAME ...]

Prints one JSON object (machine, per-model results).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time


def prompts(n: int) -> list[str]:
    from distilltrace.data.sharegpt import human_prompts

    out = [p for p in human_prompts("first", "detector").to_pylist() if 20 <= len(p) <= 400]
    return out[:n]


def timed(fn) -> tuple[object, float]:
    t = time.perf_counter()
    r = fn()
    return r, time.perf_counter() - t


def one_model(name: str, n: int, tokens: int, reps: int) -> dict:
    from distilltrace.models import load_model

    models = {d: load_model(name, dtype=d) for d in ("float32", "bfloat16")}
    ps = prompts(n)
    for m in models.values():  # warm-up
        m.generate(ps[:2], max_new_tokens=4)
    gen_s = {d: 0.0 for d in models}
    gen_tok = {d: 0 for d in models}
    score_s = {d: 0.0 for d in models}
    texts: dict[str, list[str]] = {}
    for rep in range(reps):
        for d, m in models.items():
            g, s = timed(
                lambda m=m, rep=rep: m.generate(
                    ps, max_new_tokens=tokens, temperature=0.7, seed=rep
                )
            )
            gen_s[d] += s
            gen_tok[d] += sum(len(x.token_ids) for x in g)
            texts.setdefault(d, [x.text for x in g])  # float32 runs first: both score its texts
            _, s = timed(lambda m=m: m.score(ps, texts["float32"]))
            score_s[d] += s
    same = texts["float32"]
    lp = {d: m.score(ps, same) for d, m in models.items()}
    diffs = [
        abs(a.logprob - b.logprob)
        for x, y in zip(lp["float32"], lp["bfloat16"], strict=True)
        for a, b in zip(x.tokens, y.tokens, strict=True)
    ]
    greedy = {
        d: [x.text[:40] for x in m.generate(ps, max_new_tokens=16)] for d, m in models.items()
    }
    agree = sum(a == b for a, b in zip(greedy["float32"], greedy["bfloat16"], strict=True))
    row = {"model": name, "prompts": n, "max_new_tokens": tokens, "reps": reps}
    for d in models:
        row[f"{d}_gen_tok_s"] = round(gen_tok[d] / gen_s[d], 1)
        row[f"{d}_score_texts_s"] = round(reps * n / score_s[d], 2)
    row["gen_speedup"] = round(row["bfloat16_gen_tok_s"] / row["float32_gen_tok_s"], 2)
    row["score_speedup"] = round(row["bfloat16_score_texts_s"] / row["float32_score_texts_s"], 2)
    row["abs_logprob_diff_mean"] = round(statistics.fmean(diffs), 4)
    row["abs_logprob_diff_p99"] = round(sorted(diffs)[int(0.99 * (len(diffs) - 1))], 4)
    row["greedy_first40_agree"] = f"{agree}/{n}"
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="*", default=["smollm2-135m-instruct", "gemma3-270m"])
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--reps", type=int, default=2)
    a = ap.parse_args()
    import torch

    from distilltrace.models.precision import native_bf16

    rows = []
    for name in a.models:
        rows.append(one_model(name, a.prompts, a.tokens, a.reps))
        print(json.dumps(rows[-1]), flush=True)
    out = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, torch threads "
        f"{torch.get_num_threads()}, native bf16: {native_bf16()}",
        "results": rows,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
