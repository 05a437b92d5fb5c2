"""Watermark strength trade-off: detection power on 200-token texts against the text-quality
cost, for several green-list strengths (delta) on the same prompts and seeds.

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.marks_strength \
        [--teacher smollm2-135m-instruct] [--judge gemma3-270m] [--deltas 2,3,4] \
        [--prompts 64] [--tokens 200] [--out OUT]

For each delta: the teacher answers the prompts with the mark on (temperature 0.7, the
key's other parameters at their defaults); the detector tests every answer, and separately
the answers that ran the full `--tokens` (the issue's "text of 200 tokens"); the judge
model's perplexity of the answers measures the quality cost against unmarked answers to
the same prompts. Writes OUT/strength.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from distilltrace.bench.marks import _bench_key, _gen, _load, _test_text, make_config
from distilltrace.marks.schemes import SchemeParams, TokenizerBinding
from distilltrace.prompts import generate_prompts


def _ppl(judge, gens) -> float:
    gs = [g for g in gens if g.text.strip()]
    scored = judge.score([g.prompt for g in gs], [g.text for g in gs])
    lp = sum(s.total_logprob for s in scored)
    n = sum(s.n_tokens for s in scored)
    return math.exp(-lp / max(1, n))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--teacher", default="smollm2-135m-instruct")
    ap.add_argument("--judge", default="gemma3-270m")
    ap.add_argument("--deltas", default="2,2.5,3,3.5,4")
    ap.add_argument("--context-width", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench-marks-strength"))
    a = ap.parse_args()
    cfg = make_config("full", {"teacher": a.teacher, "seed": a.seed})
    teacher = _load(a.teacher, cfg)
    tok = teacher.tokenizer
    prompts = [p.text for p in generate_prompts(a.prompts, seed=a.seed + 11)]
    t0 = time.perf_counter()
    plain = _gen(teacher, prompts, cfg, a.tokens, [])
    rows = []
    marked_by_delta = {}
    for d in [float(x) for x in a.deltas.split(",")]:
        params = SchemeParams(
            scheme="greenlist",
            gamma=0.25,
            delta=d,
            context_width=a.context_width,
            seeding="lefthash",
        )
        wm = _bench_key(params, TokenizerBinding.of_model(teacher), cfg, "detector")
        marked = _gen(teacher, prompts, cfg, a.tokens, wm.logits_processors(teacher))
        marked_by_delta[d] = marked
        tests = [_test_text(wm, tok, g.text) for g in marked]
        n_tok = [len(g.token_ids) for g in marked]
        full = [t for t, n in zip(tests, n_tok, strict=True) if n >= a.tokens]
        lp = [t.log10_pvalue for t in full if t.log10_pvalue is not None]

        def frac(ts, lvl):
            return sum(1 for t in ts if t.pvalue is not None and t.pvalue < lvl) / max(1, len(ts))

        rows.append(
            {
                "delta": d,
                "n": len(tests),
                "n_full_length": len(full),
                "full_p_below_1e-6": frac(full, 1e-6),
                "full_p_below_1e-3": frac(full, 1e-3),
                "all_p_below_1e-6": frac(tests, 1e-6),
                "median_log10_p_full": float(np.median(lp)) if lp else None,
                "median_scored_full": float(np.median([t.n_scored for t in full]))
                if full
                else None,
                "median_tokens": float(np.median(n_tok)),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    gen_s = time.perf_counter() - t0
    a.out.mkdir(parents=True, exist_ok=True)
    with open(a.out / "texts.jsonl", "w") as f:
        for name, gens in [
            ("unmarked", plain),
            *((f"delta={d:g}", g) for d, g in marked_by_delta.items()),
        ]:
            for g in gens:
                f.write(json.dumps({"set": name, "prompt": g.prompt, "text": g.text}) + "\n")
    judge = _load(a.judge, cfg)
    ppl_plain = _ppl(judge, plain)
    for r in rows:
        r["ppl_marked"] = _ppl(judge, marked_by_delta[r["delta"]])
        r["ppl_plain"] = ppl_plain
        r["ppl_ratio"] = r["ppl_marked"] / ppl_plain
    a.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "teacher": a.teacher,
        "judge": a.judge,
        "prompts": a.prompts,
        "tokens": a.tokens,
        "context_width": a.context_width,
        "temperature": cfg.temperature,
        "generation_wall_s": round(gen_s, 1),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    (a.out / "strength.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    print(
        "| delta | texts with 200 tokens | p < 1e-6 (200-token texts) | p < 1e-3 | "
        "p < 1e-6 (all texts) | median log10 p | median scored | ppl marked / unmarked |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['delta']:g} | {r['n_full_length']}/{r['n']} | {r['full_p_below_1e-6']:.0%} | "
            f"{r['full_p_below_1e-3']:.0%} | {r['all_p_below_1e-6']:.0%} | "
            f"{r['median_log10_p_full']:.1f} | {r['median_scored_full']:.0f} | "
            f"{r['ppl_marked']:.2f} / {r['ppl_plain']:.2f} ({r['ppl_ratio']:.2f}x) |"
        )


if __name__ == "__main__":
    main()
