"""distilltrace's marks side by side with the anchors, in one run: transformers' green list
(`WatermarkLogitsProcessor` / `WatermarkDetector`) and its SynthID-Text tournament
(`SynthIDTextWatermarkLogitsProcessor`; its detector is a Bayesian model that has to be
trained and reports no p-value, so its mean g-value score is tested with a z-test here).

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python -m benchmarks.marks_anchors \
        [--calibration 1000] [--prompts 8] [--tokens 150] [--parts calibration,generation] \
        [--out OUT]

1. calibration: each tool's reported p-value on N unmarked human texts (GSM8K train
   answers, tokenised by SmolLM2), under one key and under a fresh random key per text:
   FPR at 1e-2 / 1e-3 / 1e-4 and the KS test against uniform.
2. generation: SmolLM2 with each scheme on identical prompts and seeds (temperature 0.7):
   per-answer and pooled detection, perplexity under gemma3-270m, tokens/s.

The KGW reference implementation (jwkirchenbauer/lm-watermarking) and MarkLLM are not on
PyPI under those names, so they are not in this run. OUT/anchors.json is rewritten after
each part; progress lines go to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import secrets
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats as st

from distilltrace import jsonl
from distilltrace.bench.marks import _bench_key, _load, make_config
from distilltrace.bench.marks_quality import perplexity
from distilltrace.marks.detect import TupleScorer, encode_text
from distilltrace.marks.keys import make_watermark
from distilltrace.marks.schemes import SchemeParams, TokenizerBinding
from distilltrace.marks.secret import Secret
from distilltrace.prompts import generate_prompts

GSM8K_TRAIN = Path("/work/shared/data/prompts/gsm8k-train.jsonl")
OURS = {
    "distilltrace tournament (default)": SchemeParams(),
    "distilltrace greenlist d2": SchemeParams(scheme="greenlist", delta=2.0),
    "distilltrace gumbel": SchemeParams(scheme="gumbel"),
}
SYNTHID_KEYS = [654, 400, 836, 123, 340, 443, 597, 160, 57, 29, 590, 639, 13, 715, 468, 990,
                966, 226, 324, 585, 118, 504, 402, 578, 417, 718, 124, 567, 567, 893]  # fmt: skip
ALPHAS = (1e-2, 1e-3, 1e-4)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def unmarked_texts(n: int) -> list[str]:
    """GSM8K train answers without the calculator annotations <<...>>."""
    import re

    out = []
    for line in jsonl.lines(GSM8K_TRAIN.read_text(encoding="utf-8")):
        if not line.strip():
            continue
        out.append(re.sub(r"<<[^>]*>>", "", json.loads(line)["answer"]))
        if len(out) >= n:
            break
    return out


def calib(ps) -> dict:
    ps = np.array([p for p in ps if p is not None and np.isfinite(p)])
    d = {"n": int(len(ps)), "ks_p": float(st.kstest(ps, "uniform").pvalue)}
    d["ks_greater_p"] = float(st.kstest(ps, "uniform", alternative="greater").pvalue)
    for a in ALPHAS:
        d[f"fpr@{a:g}"] = float(np.mean(ps <= a))
        d[f"count@{a:g}"] = int(np.sum(ps <= a))
    return d


def ours_p(wm, ids) -> float | None:
    sc = TupleScorer(wm)
    sc.add_sequence(ids, context_is_marked=wm.impl.masks_repeated_windows())
    return sc.test(min_scored=1).pvalue


def tf_green(config, key: int, ignore_repeated: bool):
    from transformers.generation import WatermarkDetector, WatermarkingConfig

    wc = WatermarkingConfig(greenlist_ratio=0.25, bias=2.0, hashing_key=key)
    return WatermarkDetector(config, "cpu", wc, ignore_repeated_ngrams=ignore_repeated)


def tf_green_p(det, ids) -> float | None:
    if len(ids) < 3:
        return None
    out = det(torch.tensor([ids]), return_dict=True)
    return float(out.p_value[0])


def synthid(keys):
    from transformers.generation import SynthIDTextWatermarkLogitsProcessor

    return SynthIDTextWatermarkLogitsProcessor(
        ngram_len=5, keys=list(keys), sampling_table_size=2**16, sampling_table_seed=0,
        context_history_size=1024, device="cpu",
    )  # fmt: skip


def synthid_p(proc, ids) -> float | None:
    """z-test on the mean g-value over unmasked (non-repeated-context) n-grams."""
    if len(ids) < proc.ngram_len + 1:
        return None
    x = torch.tensor([ids])
    g = proc.compute_g_values(x)[0].double()  # [T - ngram_len + 1, depth]
    mask = proc.compute_context_repetition_mask(x)[0].bool()
    g = g[mask]
    n = g.numel()
    if n == 0:
        return None
    z = (float(g.sum()) - n / 2) / math.sqrt(n / 4)
    return float(st.norm.sf(z))


def part_calibration(a, model, res):
    tok = model.tokenizer
    ids = [encode_text(tok, t) for t in unmarked_texts(a.calibration)]
    binding = TokenizerBinding.of_model(model)
    cfg_model = model.hf_model.config
    fixed = {n: make_watermark(p, binding, Secret(bytes(range(32)))) for n, p in OURS.items()}
    rows: dict[str, dict] = {}
    for name, wm in fixed.items():
        one = [ours_p(wm, x) for x in ids]
        rnd = [ours_p(make_watermark(OURS[name], binding), x) for x in ids]
        rows[name] = {"one_key": calib(one), "random_keys": calib(rnd)}
        log(f"{name}: {json.dumps(rows[name])}")
    for ign in (False, True):
        name = f"transformers WatermarkDetector (ignore_repeated_ngrams={ign})"
        det = tf_green(cfg_model, 15485863, ign)
        one = [tf_green_p(det, x) for x in ids]
        rnd = [tf_green_p(tf_green(cfg_model, secrets.randbelow(2**31), ign), x) for x in ids]
        rows[name] = {"one_key": calib(one), "random_keys": calib(rnd)}
        log(f"{name}: {json.dumps(rows[name])}")
    name = "transformers SynthID mean g-value, z-test"
    proc = synthid(SYNTHID_KEYS)
    one = [synthid_p(proc, x) for x in ids]
    rng = np.random.default_rng(a.seed)
    rnd = [synthid_p(synthid(rng.integers(0, 2**20, 30).tolist()), x) for x in ids]
    rows[name] = {"one_key": calib(one), "random_keys": calib(rnd)}
    log(f"{name}: {json.dumps(rows[name])}")
    res["calibration"] = {"texts": "GSM8K train answers", "n_texts": len(ids), "tools": rows}


class _Reset:
    """Fresh SynthID state per generate batch (its processor keeps per-batch state)."""

    def __init__(self, proc):
        self.proc = proc

    def __call__(self, n_done: int) -> None:
        self.proc.state = None


def _arms(model, cfg):
    from transformers.generation import WatermarkLogitsProcessor

    binding = TokenizerBinding.of_model(model)
    v = model.hf_model.config.vocab_size
    arms = {"unmarked": ([], None)}
    for name, p in OURS.items():
        wm = _bench_key(p, binding, cfg, f"anchors:{name}")
        arms[name] = (wm.logits_processors(model), ("ours", wm))
    tfg = WatermarkLogitsProcessor(v, "cpu", greenlist_ratio=0.25, bias=2.0)
    arms["transformers greenlist d2"] = ([tfg], ("tf_green", None))
    sid = synthid(SYNTHID_KEYS)
    arms["transformers SynthID"] = ([sid], ("synthid", sid))
    return arms


def _detect(kind, model, ids):
    if kind is None:
        return None
    what, obj = kind
    if what == "ours":
        return ours_p(obj, ids)
    if what == "tf_green":
        return tf_green_p(tf_green(model.hf_model.config, 15485863, True), ids)
    return synthid_p(obj, ids)


def part_generation(a, model, judge, res):
    cfg = make_config("full", {"teacher": a.teacher, "seed": a.seed})
    prompts = [p.text for p in generate_prompts(a.prompts, seed=a.seed + 11)]
    model.batch_size = a.prompts
    out = {}
    for name, (procs, kind) in _arms(model, cfg).items():
        reset = _Reset(procs[0]) if kind and kind[0] == "synthid" else None
        if reset:
            reset(0)
        t0 = time.perf_counter()
        gens = model.generate(
            prompts, a.tokens, cfg.temperature, cfg.top_p, a.seed, procs or None,
            on_batch=reset,
        )  # fmt: skip
        secs = time.perf_counter() - t0
        ps = [_detect(kind, model, encode_text(model.tokenizer, g.text)) for g in gens]
        lp = [math.log10(max(p, 1e-300)) for p in ps if p is not None]
        out[name] = {
            "tokens_per_s": sum(len(g.token_ids) for g in gens) / secs,
            "median_log10_p": float(np.median(lp)) if lp else None,
            "answers_p_below_1e-6": int(sum(1 for p in ps if p is not None and p <= 1e-6)),
            "answers": len(gens),
            "ppl_judge": perplexity(judge, prompts, [g.text for g in gens]),
        }
        log(f"{name}: {json.dumps(out[name])}")
    base = out["unmarked"]["ppl_judge"]
    for row in out.values():
        row["ppl_ratio"] = row["ppl_judge"] / base
    res["generation"] = {"prompts": a.prompts, "tokens": a.tokens, "arms": out}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--teacher", default="smollm2-135m-instruct")
    ap.add_argument("--judge", default="gemma3-270m")
    ap.add_argument("--calibration", type=int, default=1000)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=150)
    ap.add_argument("--parts", default="calibration,generation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench-marks-anchors"))
    a = ap.parse_args()
    parts = a.parts.split(",")
    import transformers

    res = {
        "meta": {
            "teacher": a.teacher,
            "transformers": transformers.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": " ".join(sys.argv),
        }
    }
    model = _load(a.teacher, make_config("full", {"teacher": a.teacher}))
    a.out.mkdir(parents=True, exist_ok=True)
    if "calibration" in parts:
        if GSM8K_TRAIN.is_file():
            part_calibration(a, model, res)
        else:
            res["calibration"] = {"skipped": f"{GSM8K_TRAIN} absent"}
        (a.out / "anchors.json").write_text(json.dumps(res, indent=1))
    if "generation" in parts:
        judge = _load(a.judge, make_config("full", {"teacher": a.teacher}))
        part_generation(a, model, judge, res)
        (a.out / "anchors.json").write_text(json.dumps(res, indent=1))
    log(f"wrote {a.out}/anchors.json")


if __name__ == "__main__":
    main()
