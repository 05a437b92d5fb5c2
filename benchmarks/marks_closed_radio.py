"""Closed-mode radioactivity of SmolLM2 students, scored where our model was unsure.

The teacher SmolLM2 answers N generated prompts (seed 31) twice at temperature 0.7, up to
``--tokens`` tokens: once marked with a benchmark key (derived from the word "reelicit";
public by construction), once unmarked. Each student is SmolLM2 fine-tuned on the N
prompts with a share ``mix`` of the answers taken from the marked harvest (2 epochs, lr
1e-4, batch 16: the issue's settings, with batch 16 for the 24 GiB machine). Each student
is then tested (greedy, ``--tokens`` new tokens):

- open mode over the marked answers it was trained on (for reference);
- closed mode on ``--held`` held-out prompts and on the prompts whose marked answers it
  was trained on (re-elicited; for the 0% student, a fixed 10% of the training prompts),
  each scored three ways: every tuple; the supervised window filter (windows seen >= 2
  times in those marked answers); and only tokens the teacher gave probability <= 0.5
  after the student's context (``reference_token_probs``, the rule fixed before the 10%,
  0% and green-list students were measured).

Each student runs in a fresh process (``--student MIX``): two SmolLM2 trainings in one
process do not fit in 24 GiB. Results are appended as JSON lines to OUT/results.jsonl.

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.marks_closed_radio --out OUT \\
        [--prompts 240] [--held 96] [--tokens 128] [--scheme tournament|greenlist] \\
        [--mixes 1.0,0.1,0.0] [--null-keys 20] [--precision float32|bf16]
    ... --prefix MIX [--stride 4]   # prefix mode on a trained student (-1: the teacher)
    ... --logprobs MIX [--top-k 20] # logprobs mode on a trained student (-1: the teacher)
    ... --sampled MIX [--samples 8] # closed mode from sampled answers (tried, not adopted)

Only the prompts that the largest mix takes get a marked answer (the mixes are nested:
a smaller mix takes a prefix of the same shuffled order). ``--precision bf16`` loads the
models in bfloat16 where the CPU has native support and trains bf16-mixed (2-2.7x
faster on this machine, "Compute precision" in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _key(model: Any, scheme: str, word: str = "reelicit") -> Any:
    from distilltrace.marks.keys import make_watermark
    from distilltrace.marks.schemes import SchemeParams, TokenizerBinding
    from distilltrace.marks.secret import Secret

    params = (
        SchemeParams()
        if scheme == "tournament"
        else SchemeParams(scheme="greenlist", context_width=2, gamma=0.25, delta=3.0)
    )
    raw = hashlib.blake2b(word.encode(), digest_size=32).digest()
    return make_watermark(params, TokenizerBinding.of_model(model), Secret(raw))


def _r(z: float | None) -> float | None:
    return None if z is None else round(z, 2)  # None: nothing was scored


def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def _prompts(a: argparse.Namespace) -> tuple[list[str], list[str]]:
    from distilltrace.distill.prompts import generate_prompts

    allp = [p.text for p in generate_prompts(a.prompts + a.held, seed=31)]
    return allp[: a.prompts], allp[a.prompts :]


def _order(n: int) -> list[int]:
    """The training prompts in the order that their marked answers are taken (nested)."""
    order = list(range(n))
    random.Random(0).shuffle(order)
    return order


def _dtype(a: argparse.Namespace) -> str | None:
    return "auto" if a.precision == "bf16" else None


def harvest(a: argparse.Namespace, work: Path) -> dict[str, list[str | None]]:
    """Marked answers for the prompts the largest mix takes (None elsewhere), plain for all."""
    from distilltrace.models import load_model

    path = work / "harvest.json"
    if path.exists():
        return json.loads(path.read_text())
    m = load_model("smollm2-135m-instruct", dtype=_dtype(a))
    m.batch_size = 16
    train, _ = _prompts(a)
    top = max(float(x) for x in a.mixes.split(","))
    need = sorted(_order(len(train))[: int(round(top * len(train)))])
    kw = {"max_new_tokens": a.tokens, "temperature": 0.7, "seed": 0}
    t0 = time.time()
    procs = _key(m, a.scheme).logits_processors(m)
    got = m.generate([train[i] for i in need], logits_processors=procs, **kw)
    marked: list[str | None] = [None] * len(train)
    for i, g in zip(need, got, strict=True):
        marked[i] = g.text
    plain = [g.text for g in m.generate(train, **kw)]
    h = {"marked": marked, "plain": plain}
    path.write_text(json.dumps(h))
    _log(f"harvest: {len(need) + len(train)} answers in {time.time() - t0:.0f} s")
    return h


def _closed(wm, teacher, student, prompts, marked, tokens, null_keys) -> dict[str, Any]:
    from distilltrace.marks.radioactivity import reference_token_probs, score_closed

    tok = teacher.tokenizer
    gens = student.generate(prompts, max_new_tokens=tokens, temperature=0.0, seed=0)
    outs = [g.text for g in gens]
    probs = reference_token_probs(teacher, prompts, outs, tok)
    plain, _ = score_closed(wm, outs, prompts, tok)
    filt, _ = score_closed(wm, outs, prompts, tok, marked_texts=marked, filter_min_count=2)
    ours, _ = score_closed(wm, outs, prompts, tok, reference_probs=probs)
    row = {k: [t.n_scored, _r(t.z), t.pvalue] for k, t in
           (("all", plain), ("filter", filt), ("ours_unsure", ours))}  # fmt: skip
    nps = [score_closed(k, outs, prompts, tok, reference_probs=probs)[0].pvalue for k in null_keys]
    row["random_keys_ours_unsure"] = {
        "n": len(nps),
        "fpr_0.01": sum(p is not None and p <= 0.01 for p in nps),
    }
    return row


def student(a: argparse.Namespace, work: Path, mix: float) -> dict[str, Any]:
    from distilltrace.distill.config import TrainConfig
    from distilltrace.distill.dataset import Record, write_records
    from distilltrace.distill.student import make_student
    from distilltrace.distill.training import train_seq_kd
    from distilltrace.marks.radioactivity import read_open, score_open
    from distilltrace.models import load_model

    h = harvest(a, work)
    train, held = _prompts(a)
    order = _order(len(train))
    chosen = set(order[: int(round(mix * len(train)))])
    if any(h["marked"][i] is None for i in chosen):
        sys.exit(f"{work / 'harvest.json'} has no marked answers for mix {mix}: use a new --out")
    recs = [Record(p, (h["marked"] if i in chosen else h["plain"])[i], {}) for i, p in
            enumerate(train)]  # fmt: skip
    write_records(work / f"mix-{mix:g}.jsonl", recs)
    t0 = time.time()
    prec = "bf16-mixed" if a.precision == "bf16" else "float32"
    cfg = TrainConfig(epochs=2.0, lr=1e-4, batch_size=16, progress=False, seed=a.train_seed,
                      precision=prec)  # fmt: skip
    tr = train_seq_kd(make_student("smollm2-135m-instruct", seed=1), work / f"mix-{mix:g}.jsonl",
                      work / f"student-{mix:g}", cfg)  # fmt: skip
    _log(f"student {mix:.0%}: trained in {time.time() - t0:.0f} s, final loss {tr.final_loss:.3f}")
    teacher = load_model("smollm2-135m-instruct", dtype=_dtype(a))
    s = load_model(str(work / f"student-{mix:g}"), dtype=_dtype(a))
    s.batch_size = teacher.batch_size = 16
    wm = _key(teacher, a.scheme)
    nulls = [_key(teacher, a.scheme, f"null{i}") for i in range(a.null_keys)]
    idx = sorted(chosen) or order[: max(1, round(0.1 * len(train)))]
    ask, marked = [train[i] for i in idx], [h["marked"][i] for i in idx]
    o = score_open(wm, read_open(s, marked, marked_prompts=ask, batch_size=16))
    row = {"scheme": a.scheme, "mix": mix, "prompts": len(train), "precision": a.precision, "n_marked": len(chosen), "loss": tr.final_loss,
           "open": [o.n_scored, _r(o.z), o.pvalue]}  # fmt: skip
    row["held"] = _closed(wm, teacher, s, held, marked, a.tokens, nulls)
    row["reelicited"] = _closed(wm, teacher, s, ask, marked, a.tokens, nulls)
    return row


def prefix(a: argparse.Namespace, work: Path, mix: float) -> dict[str, Any]:
    """Prefix mode on student `mix` (or on the teacher itself when mix < 0: a null twin)
    over the marked answers that the `mix` student trained on (for a null, those of
    --prefix-texts-mix): our answers cut every --stride tokens, the greedy next token."""
    from distilltrace.marks.radioactivity import score_open
    from distilltrace.marks.radioactivity_prefix import read_prefix
    from distilltrace.models import load_model

    h = harvest(a, work)
    train, _ = _prompts(a)
    take = mix if mix >= 0 else a.prefix_texts_mix
    idx = sorted(_order(len(train))[: int(round(take * len(train)))])
    ask, marked = [train[i] for i in idx], [h["marked"][i] for i in idx]
    spec = str(work / f"student-{mix:g}") if mix >= 0 else "smollm2-135m-instruct"
    s = load_model(spec, dtype=_dtype(a))
    wm = _key(s, a.scheme)
    t0 = time.time()
    probed = read_prefix(s, marked, ask, s.tokenizer, context_width=wm.context_width,
                         stride=a.stride)  # fmt: skip
    reading = probed.reading
    wall = time.time() - t0
    t = score_open(wm, reading)
    nps = [score_open(_key(s, a.scheme, f"null{i}"), reading).pvalue for i in range(a.null_keys)]
    return {"scheme": a.scheme, "prefix_of": "teacher" if mix < 0 else mix, "texts": len(idx),
            "stride": a.stride, "queries": probed.n_queries, "usable": probed.n_usable,
            "prefix": [t.n_scored, _r(t.z), t.pvalue],
            "wall_s": round(wall), "random_keys": {"n": len(nps),
            "fpr_0.01": sum(p is not None and p <= 0.01 for p in nps),
            "pvalues": [None if p is None else round(p, 4) for p in nps]}}  # fmt: skip


def logprobs(a: argparse.Namespace, work: Path, mix: float) -> dict[str, Any]:
    """Logprobs mode on student `mix` (mix < 0: the teacher itself): its greedy answers to
    the re-elicited prompts (for mix <= 0, those of --prefix-texts-mix) and the held-out
    ones, with their top-k log-probabilities, weighted by q and by q - p (p: the unmarked
    teacher), under the benchmark key and --null-keys random keys."""
    from distilltrace.marks.radioactivity_logprobs import (
        read_steps,
        reference_candidates,
        score_logprobs,
    )
    from distilltrace.models import load_model

    train, held = _prompts(a)
    take = mix if mix > 0 else a.prefix_texts_mix  # a null: the 10% student's prompts
    idx = sorted(_order(len(train))[: int(round(take * len(train)))])
    teacher = load_model("smollm2-135m-instruct", dtype=_dtype(a))
    spec = str(work / f"student-{mix:g}") if mix >= 0 else "smollm2-135m-instruct"
    s = load_model(spec, dtype=_dtype(a))
    s.batch_size = teacher.batch_size = 16
    wm = _key(teacher, a.scheme)
    nulls = [_key(teacher, a.scheme, f"null{i}") for i in range(a.null_keys)]
    row: dict[str, Any] = {"scheme": a.scheme, "logprobs_of": "teacher" if mix < 0 else mix,
                           "top_k": a.top_k, "texts": len(idx)}  # fmt: skip
    for name, ask in (("reelicited", [train[i] for i in idx]), ("held", held)):
        t0 = time.time()
        r = read_steps(wm, s, ask, teacher.tokenizer, top_k=a.top_k, max_new_tokens=a.tokens)
        ref = reference_candidates(teacher, r, batch_size=16)
        row[f"{name}_wall_s"] = round(time.time() - t0)
        for w, rp in (("q", None), ("q-p", ref)):
            t = score_logprobs(wm, r, teacher.tokenizer, reference_probs=rp)
            nps = [score_logprobs(k, r, teacher.tokenizer, reference_probs=rp).pvalue
                   for k in nulls]  # fmt: skip
            row[f"{name}/{w}"] = [t.n_scored, _r(t.z), t.pvalue]
            row[f"{name}/{w}/random_keys"] = {
                "n": len(nps),
                "fpr_0.01": sum(p is not None and p <= 0.01 for p in nps),
                "fpr_0.1": sum(p is not None and p <= 0.1 for p in nps),
            }
        _log(f"{name}: {json.dumps({k: v for k, v in row.items() if k.startswith(name)})}")
    return row


def sampled(a: argparse.Namespace, work: Path, mix: float) -> dict[str, Any]:
    """Closed mode from sampled text (a Monte Carlo logprobs mode, tried in session 31 and
    not adopted): student `mix` answers each re-elicited prompt --samples times at
    temperature 1; each token x it wrote gets weight 1 - p(x) and each other token y among
    our model's top 20 gets -p(y) (p: the unmarked teacher), or every written token weight 1
    ("x"). z is reported after the first 1, 2, 4, ... samples."""
    import numpy as np

    from distilltrace.marks.radioactivity_logprobs import (
        StepReading,
        reference_candidates,
        score_logprobs,
    )
    from distilltrace.models import load_model

    train, _ = _prompts(a)
    ask = [train[i] for i in sorted(_order(len(train))[: int(round(mix * len(train)))])]
    teacher = load_model("smollm2-135m-instruct", dtype=_dtype(a))
    s = load_model(str(work / f"student-{mix:g}"), dtype=_dtype(a))
    s.batch_size = teacher.batch_size = 16
    tok, k, t0 = teacher.tokenizer, 20, time.time()
    wm = _key(teacher, a.scheme)
    texts = [g.text for j in range(a.samples) for g in
             s.generate(ask, max_new_tokens=a.tokens, temperature=1.0, seed=1000 + j)]  # fmt: skip
    chosen = [tuple(tok.encode(t, add_special_tokens=False)) for t in texts]
    ids = [np.pad(np.array(c, np.int64)[:, None], ((0, 0), (0, k - 1)), constant_values=-1)
           for c in chosen]  # fmt: skip
    lps = [np.pad(np.zeros((len(c), 1)), ((0, 0), (0, k - 1)), constant_values=-np.inf)
           for c in chosen]  # fmt: skip
    r = StepReading(tuple(ask) * a.samples, tuple(texts), tuple(chosen), tuple(ids), tuple(lps), k)
    ref = reference_candidates(teacher, r, batch_size=16)
    row: dict[str, Any] = {"scheme": a.scheme, "sampled_of": mix, "samples": a.samples,
                           "wall_s": round(time.time() - t0)}  # fmt: skip
    nulls = [_key(teacher, a.scheme, f"null{i}") for i in range(a.null_keys)]
    for w, rp in (("x", None), ("x-p", ref)):
        t = score_logprobs(wm, r, tok, reference_probs=rp)
        nps = [score_logprobs(key, r, tok, reference_probs=rp).pvalue for key in nulls]
        row[w] = [t.n_scored, _r(t.z), t.pvalue]
        row[f"{w}/random_keys"] = {"n": len(nps), "fpr_0.01": sum(p <= 0.01 for p in nps)}
    m = 1
    while m < a.samples:
        n = m * len(ask)
        part = StepReading(r.prompts[:n], r.texts[:n], r.chosen[:n], r.top_ids[:n],
                           r.top_logprobs[:n], k)  # fmt: skip
        row[f"x-p/first_{m}"] = _r(score_logprobs(wm, part, tok, reference_probs=(
            ref[0][:n], ref[1][:n])).z)  # fmt: skip
        m *= 2
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--prompts", type=int, default=240)
    ap.add_argument("--held", type=int, default=96)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--scheme", choices=("tournament", "greenlist"), default="tournament")
    ap.add_argument("--mixes", default="1.0,0.1,0.0")
    ap.add_argument("--null-keys", type=int, default=20)
    ap.add_argument(
        "--precision",
        choices=("float32", "bf16"),
        default="float32",
        help="bf16: models in bfloat16 where the CPU has it, bf16-mixed training",
    )
    ap.add_argument("--student", type=float, default=None, help=argparse.SUPPRESS)
    ap.add_argument(
        "--train-seed", type=int, default=0, help="the students' training seed (batch order)"
    )
    ap.add_argument(
        "--prefix",
        type=float,
        default=None,
        help="prefix mode on the trained student MIX (-1: the teacher, a null)",
    )
    ap.add_argument("--stride", type=int, default=4, help="prefix mode: probe every N tokens")
    ap.add_argument(
        "--logprobs",
        type=float,
        default=None,
        help="logprobs mode on the trained student MIX (-1: the teacher, a null)",
    )
    ap.add_argument("--top-k", type=int, default=20, help="logprobs mode: log-probabilities a step")
    ap.add_argument(
        "--sampled",
        type=float,
        default=None,
        help="closed mode from --samples sampled answers per prompt of the trained student MIX",
    )
    ap.add_argument("--samples", type=int, default=8, help="sampled mode: answers per prompt")
    ap.add_argument(
        "--prefix-texts-mix",
        type=float,
        default=0.1,
        help="prefix and logprobs modes on the teacher: the prompts of this mix",
    )
    a = ap.parse_args(argv)
    work = a.out / a.scheme
    work.mkdir(parents=True, exist_ok=True)
    if any(x is not None for x in (a.student, a.prefix, a.logprobs, a.sampled)):
        if a.sampled is not None:
            row = sampled(a, work, a.sampled)
        elif a.logprobs is not None:
            row = logprobs(a, work, a.logprobs)
        else:
            row = student(a, work, a.student) if a.prefix is None else prefix(a, work, a.prefix)
        with open(a.out / "results.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        _log(json.dumps(row))
        return
    harvest(a, work)
    for mix in (float(x) for x in a.mixes.split(",")):
        cmd = [sys.executable, "-m", "benchmarks.marks_closed_radio", *sys.argv[1:]]
        subprocess.run([*cmd, "--student", str(mix)], check=True)


if __name__ == "__main__":
    main()
