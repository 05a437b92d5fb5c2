"""The default mark (tournament) against no mark and the green list, on the same prompts and
seeds: text quality (perplexity under a judge, distinct-n, self-BLEU across seeds), task
score (GSM8K exact match), generation speed, and pooled detection (answers needed for
p <= 1e-6; after paraphrase and translation by the judge model).

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python -m benchmarks.marks_quality \
        [--arms unmarked,tournament,greenlist-d4,greenlist-d2] [--prompts 16] [--seeds 2] \
        [--tokens 200] [--gsm8k 200] [--attack-arms tournament] [--attack-n 8] [--out OUT]

Stages run in order and OUT/quality.json is rewritten after each, so a run cut short keeps
what finished. Progress lines go to stderr. GSM8K is skipped when its file is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from distilltrace.bench.marks import _bench_key, _gen, _load, make_config
from distilltrace.bench.marks_quality import (
    GSM8K_DEFAULT,
    GSM8K_INSTRUCTION,
    distinct_n,
    gsm8k_correct,
    perplexity_by_group,
    read_gsm8k,
    self_bleu,
)
from distilltrace.marks.detect import encode_text
from distilltrace.marks.pooled import answers_needed, evidence_curve
from distilltrace.marks.schemes import SchemeParams, TokenizerBinding
from distilltrace.prompts import generate_prompts

ARMS = {
    "unmarked": None,
    "tournament": SchemeParams(),
    "greenlist-d4": SchemeParams(scheme="greenlist", delta=4.0),
    "greenlist-d2": SchemeParams(scheme="greenlist", delta=2.0),
    "gumbel": SchemeParams(scheme="gumbel"),
}
ATTACKS = {
    "paraphrase": "Paraphrase the following text. Reply with the paraphrase only.\n\n{text}",
    "translation": "Translate the following text into French. Reply with the translation "
    "only.\n\n{text}",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _procs(model, params, cfg, name, key: int = 0):
    """The arm's processors and watermark; ``key`` > 0 selects another benchmark key (key 0
    is the one every earlier run used)."""
    if params is None:
        return [], None
    purpose = f"quality:{name}" + (f":key{key}" if key else "")
    wm = _bench_key(params, TokenizerBinding.of_model(model), cfg, purpose)
    return wm.logits_processors(model), wm


def _answers_needed(wm, tok, texts, levels=(1e-3, 1e-6)):
    curve = evidence_curve(wm, [encode_text(tok, t) for t in texts])
    return {f"{lv:g}": answers_needed(curve, lv) for lv in levels}, curve[-1] if curve else None


def stage_generate(a, cfg, model, res, gens):
    prompts = [p.text for p in generate_prompts(a.prompts, seed=a.seed + 11)]
    for name in a.arms:
        _, wm = _procs(model, ARMS[name], cfg, name)
        per_seed, tokens, secs = [], 0, 0.0
        for s in range(a.seeds):
            procs, _ = _procs(model, ARMS[name], cfg, name, key=s % a.keys)
            t0 = time.perf_counter()
            g = _gen(model, prompts, replace(cfg, seed=a.seed + s), a.tokens, procs)
            secs += time.perf_counter() - t0
            tokens += sum(len(x.token_ids) for x in g)
            per_seed.append(g)
        gens[name] = (per_seed, wm)
        texts0 = [x.text for x in per_seed[0]]
        row = {
            "tokens_per_s": tokens / secs,
            "distinct_2": distinct_n([x.text for g in per_seed for x in g], 2),
            "distinct_3": distinct_n([x.text for g in per_seed for x in g], 3),
            "self_bleu": self_bleu([[g[i].text for g in per_seed] for i in range(len(prompts))])
            if a.seeds > 1
            else None,
            "median_tokens": float(np.median([len(x.token_ids) for x in per_seed[0]])),
            "mean_tokens_all_seeds": float(
                np.mean([len(x.token_ids) for g in per_seed for x in g])
            ),
            # answers that ended by themselves (end-of-sequence), per seed
            "stop_rate_per_seed": [
                float(np.mean([x.finish_reason == "stop" for x in g])) for g in per_seed
            ],
            "keys": a.keys if wm is not None else 0,
        }
        if wm is not None:
            need, last = _answers_needed(wm, model.tokenizer, texts0)
            row["answers_needed_for_p"] = need
            row["pooled_log10_p_all_answers"] = last
            row["answers_pooled"] = len(texts0)
        res["arms"][name] = row
        log(f"{name}: {json.dumps(row)}")
        _write(a, res)


def stage_perplexity(a, cfg, judge, res, gens):
    for name, (per_seed, _) in gens.items():
        row = res["arms"][name]
        row["ppl_judge"], row["ppl_judge_per_seed"] = _perplexities(judge, per_seed)
    base = res["arms"].get("unmarked", {})
    for row in res["arms"].values():
        if base.get("ppl_judge"):
            row["ppl_ratio"] = row["ppl_judge"] / base["ppl_judge"]
            # seed s of a marked arm ran under key s % keys: one ratio per (seed, key)
            row["ppl_ratio_per_seed"] = [
                m / u
                for m, u in zip(row["ppl_judge_per_seed"], base["ppl_judge_per_seed"], strict=True)
            ]
    log("perplexity: " + json.dumps({k: v.get("ppl_ratio") for k, v in res["arms"].items()}))
    _write(a, res)


def _perplexities(judge, per_seed) -> tuple[float, list[float]]:
    """Perplexity of all answers and of each seed's, from one scoring pass."""
    return perplexity_by_group(judge, [[(x.prompt, x.text) for x in g] for g in per_seed])


def _ppl_per_seed(judge, per_seed) -> list[float]:
    """`perplexity` of each seed's answers, from one scoring pass over all of them."""
    return _perplexities(judge, per_seed)[1]


def stage_attacks(a, cfg, judge, model, res, gens):
    for name in a.attack_arms:
        if name not in gens or gens[name][1] is None:
            continue
        per_seed, wm = gens[name]
        texts = [x.text for x in per_seed[0][: a.attack_n]]
        out = {}
        for attack, template in ATTACKS.items():
            asks = [template.format(text=t) for t in texts]
            done = _gen(judge, asks, replace(cfg, temperature=0.0), int(a.tokens * 1.3), [])
            need, last = _answers_needed(wm, model.tokenizer, [x.text for x in done])
            out[attack] = {"answers": len(texts), "pooled_log10_p": last, "needed": need}
        out["clean"] = dict(
            zip(
                ("needed", "pooled_log10_p"),
                _answers_needed(wm, model.tokenizer, texts),
                strict=True,
            )
        )
        res["attacks"][name] = out
        log(f"attacks {name}: {json.dumps(out)}")
        _write(a, res)


def stage_gsm8k(a, cfg, model, res):
    if a.gsm8k <= 0 or not Path(a.gsm8k_file).is_file():
        res["gsm8k"] = {"skipped": f"{a.gsm8k_file} absent or --gsm8k 0"}
        return
    rows = read_gsm8k(a.gsm8k_file, a.gsm8k)
    asks = [f"{r['question']}\n\n{GSM8K_INSTRUCTION}" for r in rows]
    out = {}
    for name in a.gsm8k_arms:
        procs, _ = _procs(model, ARMS[name], cfg, name)
        g = _gen(model, asks, cfg, a.gsm8k_tokens, procs)
        ok = [gsm8k_correct(x.text, r["answer"]) for x, r in zip(g, rows, strict=True)]
        out[name] = {"n": len(ok), "correct": int(sum(ok)), "exact_match": float(np.mean(ok))}
        out[name]["_ok"] = [int(v) for v in ok]
        log(f"gsm8k {name}: {out[name]['correct']}/{len(ok)}")
        res["gsm8k"] = out
        _write(a, res)


def _write(a, res):
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "quality.json").write_text(json.dumps(res, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--teacher", default="smollm2-135m-instruct")
    ap.add_argument("--judge", default="gemma3-270m")
    ap.add_argument("--arms", default="unmarked,tournament,greenlist-d4,greenlist-d2")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--attack-arms", default="tournament")
    ap.add_argument("--attack-n", type=int, default=8)
    ap.add_argument("--gsm8k", type=int, default=200)
    ap.add_argument("--gsm8k-arms", default="unmarked,tournament,greenlist-d4")
    ap.add_argument("--gsm8k-tokens", type=int, default=256)
    ap.add_argument("--gsm8k-file", default=str(GSM8K_DEFAULT))
    ap.add_argument("--stages", default="generate,perplexity,attacks,gsm8k")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--keys",
        type=int,
        default=1,
        help="marked arms run seed s under benchmark key s %% KEYS (distortion-freeness "
        "holds on average over keys; one key shows one draw of its key-level effect)",
    )
    ap.add_argument("--out", type=Path, default=Path("bench-marks-quality"))
    a = ap.parse_args()
    for k in ("arms", "attack_arms", "gsm8k_arms", "stages"):
        setattr(a, k, [x for x in getattr(a, k).split(",") if x])
    if a.keys < 1:
        raise SystemExit("--keys must be at least 1")
    bad = sorted(set(a.arms + a.gsm8k_arms) - set(ARMS))
    if bad:
        raise SystemExit(f"unknown arm(s) {bad}; choose from {sorted(ARMS)}")
    cfg = make_config("full", {"teacher": a.teacher, "seed": a.seed})
    res = {
        "meta": {
            "teacher": a.teacher,
            "judge": a.judge,
            "prompts": a.prompts,
            "seeds": a.seeds,
            "tokens": a.tokens,
            "keys": a.keys,
            "temperature": cfg.temperature,
            "top_p": cfg.top_p,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": " ".join(sys.argv),
        },
        "arms": {},
        "attacks": {},
    }
    model = _load(a.teacher, cfg)
    gens: dict = {}
    if "generate" in a.stages:
        stage_generate(a, cfg, model, res, gens)
    judge = _load(a.judge, cfg) if {"perplexity", "attacks"} & set(a.stages) else None
    if "perplexity" in a.stages and gens:
        stage_perplexity(a, cfg, judge, res, gens)
    if "attacks" in a.stages and gens:
        stage_attacks(a, cfg, judge, model, res, gens)
    if "gsm8k" in a.stages:
        stage_gsm8k(a, cfg, model, res)
    _write(a, res)
    log(f"wrote {a.out}/quality.json")


if __name__ == "__main__":
    main()
