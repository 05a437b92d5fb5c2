"""`distilltrace bench marks`: detector calibration and power, robustness, cost, radioactivity.

Tiers: ``quick`` uses a tiny byte-level teacher (CPU minutes); ``full`` uses the bundled
SmolLM2 as the marked teacher and gemma3-270m as the perplexity judge. Every size is a
field of `BenchConfig`, overridable (``overrides``) so a bigger machine can run more. The
watermark keys' parameters are `SchemeParams` (`mark`, `radio_mark`) and the students'
training settings a `TrainConfig` (`train`), nested in the config.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from distilltrace.distill.config import TrainConfig
from distilltrace.errors import InputError
from distilltrace.marks.detect import TupleScorer, encode_text
from distilltrace.marks.keys import make_watermark
from distilltrace.marks.radioactivity import (
    read_open,
    reference_token_probs,
    score_closed,
    score_open,
)
from distilltrace.marks.schemes import SchemeParams, TokenizerBinding, Watermark
from distilltrace.prompts import generate_prompts
from distilltrace.stats import binomial_slack, calibration


@dataclass
class BenchConfig:
    """Sizes and settings of one benchmark run."""

    tier: str = "quick"
    teacher: str = "tiny"  # a model spec, or "tiny" (a random byte-level model)
    ascii_only: bool = True  # tiny byte teacher: printable ASCII only, so text round-trips
    ppl_model: str | None = None  # judge of the text-quality cost (perplexity)
    mark: SchemeParams = field(default_factory=SchemeParams)  # detector sections: the default mark
    temperature: float = 0.7
    top_p: float = 1.0
    batch_size: int = 16
    # detector
    n_power: int = 40
    power_tokens: int = 200
    n_null_keys: int = 200
    lengths: tuple[int, ...] = (25, 50, 100, 150, 200)
    substitutions: tuple[float, ...] = (0.1, 0.2, 0.3)
    n_cost: int = 16
    # sections to run
    detector: bool = True
    cost: bool = True
    # radioactivity
    radio: bool = True
    radio_mark: SchemeParams = field(
        default_factory=lambda: SchemeParams(scheme="greenlist", context_width=1, delta=4.0)
    )
    radio_prompts: int = 120
    radio_tokens: int = 100
    mixes: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1, 1.0)
    student: str = "tiny-2l"  # an architecture name, or a model spec to fine-tune
    student_tokenizer: str = "byte"
    train: TrainConfig = field(  # the students' training (seed and device: this config's)
        default_factory=lambda: TrainConfig(epochs=8.0, lr=1e-2, batch_size=16, progress=False)
    )
    closed_prompts: int = 40
    closed_tokens: int = 64
    radio_null_keys: int = 100
    device: str = "auto"
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in fields(self):
            v = self.student_training() if f.name == "train" else getattr(self, f.name)
            out[f.name] = v.to_dict() if hasattr(v, "to_dict") else v
        return out

    def student_training(self) -> TrainConfig:
        return replace(self.train, seed=self.seed, device=self.device)


TIERS: dict[str, BenchConfig] = {
    "quick": BenchConfig(),
    "full": BenchConfig(
        tier="full",
        teacher="smollm2-135m-instruct",
        ascii_only=False,
        ppl_model="gemma3-270m",
        n_power=100,
        n_null_keys=400,
        n_cost=32,
        radio_mark=SchemeParams(scheme="greenlist", context_width=2, delta=2.0),
        radio_prompts=2000,
        radio_tokens=128,
        student="smollm2-135m-instruct",
        student_tokenizer="smollm2",
        train=TrainConfig(epochs=1.0, lr=5e-5, batch_size=16, progress=False),
        closed_prompts=200,
        closed_tokens=128,
        radio_null_keys=200,
    ),
}

# Flat names of nested settings, accepted in overrides (and used by the documented
# commands): name -> [(nested field, its setting)].
_FLAT = {
    "scheme": [("mark", "scheme"), ("radio_mark", "scheme")],
    "gamma": [("mark", "gamma"), ("radio_mark", "gamma")],
    "seeding": [("mark", "seeding"), ("radio_mark", "seeding")],
    "delta": [("mark", "delta")],
    "context_width": [("mark", "context_width")],
    "radio_delta": [("radio_mark", "delta")],
    "radio_context_width": [("radio_mark", "context_width")],
    "train_epochs": [("train", "epochs")],
    "train_lr": [("train", "lr")],
    "train_batch": [("train", "batch_size")],
}


def _with_params(base: SchemeParams, changes: dict[str, Any]) -> SchemeParams:
    """`base` with some parameters changed (another scheme starts from its own defaults)."""
    d = base.to_dict()
    if changes.get("scheme", base.scheme) != base.scheme:
        d = {k: d[k] for k in ("context_width", "seeding")}
    return SchemeParams.from_dict({**d, **changes})


def make_config(tier: str, overrides: dict[str, Any] | None = None) -> BenchConfig:
    """The tier's config with field overrides (unknown fields are an error). The nested
    `mark`, `radio_mark` and `train` take a dict of their own settings; their flat names
    (``delta``, ``radio_delta``, ``train_lr``, ... see `_FLAT`) work too."""
    if tier not in TIERS:
        raise InputError(f"unknown tier {tier!r}; choose from {sorted(TIERS)}")
    cfg = TIERS[tier]
    if not overrides:
        return cfg
    names = {f.name for f in fields(BenchConfig)}
    bad = sorted(set(overrides) - names - set(_FLAT))
    if bad:
        raise InputError(f"unknown benchmark setting(s) {bad}")
    nested: dict[str, dict[str, Any]] = {}
    conv: dict[str, Any] = {}
    for k, v in overrides.items():
        if k in _FLAT:
            for outer, inner in _FLAT[k]:
                nested.setdefault(outer, {})[inner] = v
        elif is_dataclass(getattr(cfg, k)) and isinstance(v, dict):
            nested.setdefault(k, {}).update(v)
        else:
            conv[k] = tuple(v) if isinstance(getattr(cfg, k), tuple) else v
    try:
        for k, changes in nested.items():
            cur = conv.get(k, getattr(cfg, k))
            if isinstance(cur, SchemeParams):
                conv[k] = _with_params(cur, changes)
            else:
                conv[k] = TrainConfig.resolve(cur, changes)
    except (TypeError, ValueError) as e:
        raise InputError(f"bad benchmark setting: {e}") from None
    return replace(cfg, **conv)


class PrintableAscii:
    """Logits processor keeping a byte-level model on printable ASCII (ids 37..131)."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        mask = torch.full_like(scores, float("-inf"))
        mask[:, 5 + 32 : 5 + 127] = 0.0
        return scores + mask


@dataclass
class BenchResult:
    """Everything measured, with the config and timings."""

    config: dict[str, Any]
    sections: dict[str, Any] = field(default_factory=dict)
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        s = self.sections
        lines = [f"marks bench ({self.config['tier']}, teacher {self.config['teacher']})"]
        if "power" in s:
            p = s["power"]
            lines.append(
                f"power: {p['frac_p_below_1e-6']:.0%} of {p['n']} marked texts at p<1e-6 "
                f"(median {p['median_tokens']:.0f} tokens)"
            )
        if "null" in s:
            for k, v in s["null"].items():
                lines.append(
                    f"null {k}: KS p={v['ks_pvalue']:.3g}, FPR@0.01={v['fpr']['0.01']:.3f}"
                )
        if "cost" in s:
            c = s["cost"]
            lines.append(f"cost: tokens/s ratio marked/unmarked {c['speed_ratio']:.3f}")
        for row in s.get("radioactivity", {}).get("students", []):
            lines.append(
                f"radioactivity {row['mix']:.0%}: open p={row['open']['pvalue_text']}, "
                f"closed p={row['closed']['pvalue_text']}"
                + (
                    f", closed where our model was unsure p="
                    f"{row['closed_held_reference']['pvalue_text']} (held-out), "
                    f"{row['closed_reelicited_reference']['pvalue_text']} (re-elicited)"
                    if "closed_held_reference" in row
                    else ""
                )
            )
        return "\n".join(lines)


# --------------------------------------------------------------------------- helpers
def _log(msg: str) -> None:
    import sys

    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _on_device(model: Any, device: str) -> Any:
    """The same local model with its weights on `device` ('auto': CUDA when available)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" or not hasattr(model, "hf_model"):
        return model
    from distilltrace.models.local import TransformersModel

    info = model.info
    return TransformersModel.from_objects(
        model.hf_model.to(device),
        model.tokenizer,
        name=info.name,
        identity=info.identity,
        spec=info.spec,
    )


def _load(spec: str, cfg: BenchConfig) -> Any:
    from distilltrace.models import load_model

    return _on_device(load_model(spec), cfg.device)


def _teacher(cfg: BenchConfig, work: Path) -> Any:
    if cfg.teacher == "tiny":
        from distilltrace.models.tiny import make_tiny_model

        return _load(str(make_tiny_model(work / "tiny-teacher", seed=cfg.seed + 5)), cfg)
    return _load(cfg.teacher, cfg)


def _bench_key(params: SchemeParams, binding: TokenizerBinding, cfg: BenchConfig, purpose: str):
    """A benchmark key whose secret derives from the seed (reproducible runs; such a key is
    public by construction, so never use it outside benchmarks)."""
    import hashlib

    from distilltrace.marks.secret import Secret

    raw = hashlib.blake2b(f"distilltrace-bench:{cfg.seed}:{purpose}".encode(), digest_size=32)
    return make_watermark(params, binding, Secret(raw.digest()))


def _base_processors(cfg: BenchConfig) -> list:
    return [PrintableAscii()] if cfg.ascii_only else []


def _gen(model: Any, prompts: Sequence[str], cfg: BenchConfig, tokens: int, procs: list) -> list:
    model.batch_size = cfg.batch_size
    return model.generate(
        list(prompts),
        max_new_tokens=tokens,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        seed=cfg.seed,
        logits_processors=procs or None,
    )


def _test_text(wm: Watermark, tok: Any, text: str, min_scored: int = 16):
    sc = TupleScorer(wm)
    sc.add_sequence(encode_text(tok, text))
    return sc.test(min_scored=min_scored)


def _cal(ps: Sequence[float | None]) -> dict[str, Any] | None:
    n_none = sum(1 for p in ps if p is None)
    ps = [p for p in ps if p is not None]
    if len(ps) < 2:
        return None if not n_none else {"n": 0, "not_enough_evidence": n_none}
    c = calibration(ps)
    d = c.to_dict()
    d["slack_0.01"] = binomial_slack(len(ps), 0.01)
    d["not_enough_evidence"] = n_none
    d["ok"] = c.ok(ks_level=0.01, slack=max(binomial_slack(len(ps), a) for a in (0.01, 0.05, 0.1)))
    return d


def _substitute(text: str, frac: float, pool: Sequence[str], rng: random.Random) -> str:
    words = text.split(" ")
    idx = [i for i, w in enumerate(words) if w.strip()]
    for i in rng.sample(idx, k=int(round(frac * len(idx)))):
        words[i] = rng.choice(pool)
    return " ".join(words)


def _summ(tests: Sequence[Any]) -> dict[str, Any]:
    lp = [t.log10_pvalue for t in tests if t.log10_pvalue is not None]
    n = len(tests)
    return {
        "n": n,
        "frac_p_below_1e-6": sum(1 for t in tests if t.pvalue is not None and t.pvalue < 1e-6) / n,
        "frac_p_below_1e-3": sum(1 for t in tests if t.pvalue is not None and t.pvalue < 1e-3) / n,
        "median_log10_p": float(np.median(lp)) if lp else None,
        "median_scored": float(np.median([t.n_scored for t in tests])),
        "not_enough": sum(1 for t in tests if t.pvalue is None),
    }


# --------------------------------------------------------------------------- sections
def bench_detector(cfg: BenchConfig, teacher: Any, wm: Watermark, res: BenchResult) -> dict:
    """Null calibration, power, detection vs length, robustness to substitutions."""
    tok = teacher.tokenizer
    prompts = [p.text for p in generate_prompts(cfg.n_power, seed=cfg.seed + 11)]
    t0 = time.perf_counter()
    marked = _gen(
        teacher,
        prompts,
        cfg,
        cfg.power_tokens,
        [*_base_processors(cfg), *wm.logits_processors(teacher)],
    )
    plain = _gen(teacher, prompts, cfg, cfg.power_tokens, _base_processors(cfg))
    res.timings_s["detector_generation"] = time.perf_counter() - t0
    mtests = [_test_text(wm, tok, g.text) for g in marked]
    n_tokens = [len(g.token_ids) for g in marked]
    power = _summ(mtests)
    power["median_tokens"] = float(np.median(n_tokens))
    full = [t for t, n in zip(mtests, n_tokens, strict=True) if n >= cfg.power_tokens]
    power["n_full_length"] = len(full)
    power["frac_p_below_1e-6_full_length"] = _summ(full)["frac_p_below_1e-6"] if full else None
    # null: unmarked texts under one key; random keys on unmarked and on marked text
    rng = np.random.default_rng(cfg.seed)
    params = wm.params
    null_one = [_test_text(wm, tok, g.text) for g in plain]
    rand_keys_plain, rand_keys_marked = [], []
    for i in range(cfg.n_null_keys):
        k = _bench_key(params, wm.tokenizer, cfg, f"null-{i}")
        rand_keys_plain.append(_test_text(k, tok, plain[i % len(plain)].text))
        rand_keys_marked.append(_test_text(k, tok, marked[i % len(marked)].text))
    null = {}
    for name, tests in (
        ("unmarked_text_one_key", null_one),
        ("unmarked_text_random_keys", rand_keys_plain),
        ("marked_text_random_keys", rand_keys_marked),
    ):
        null[name] = _cal([t.pvalue for t in tests])
        null[name + "_randomized"] = _cal([wm.impl.randomized_pvalue(t, rng) for t in tests])
    # detection vs length (prefixes of the marked generations, as text)
    by_len = []
    for L in cfg.lengths:
        tests = [
            _test_text(wm, tok, tok.decode(list(g.token_ids[:L]), skip_special_tokens=True), 8)
            for g in marked
            if len(g.token_ids) >= L
        ]
        if tests:
            by_len.append({"tokens": L, **_summ(tests)})
    # robustness: random word substitutions from the unmarked vocabulary
    pool = sorted({w for g in plain for w in g.text.split() if w.isalpha()}) or ["the"]
    rob = []
    r = random.Random(cfg.seed)
    for q in cfg.substitutions:
        tests = [_test_text(wm, tok, _substitute(g.text, q, pool, r)) for g in marked]
        rob.append({"substituted": q, **_summ(tests)})
    res.sections["power"] = power
    res.sections["null"] = null
    res.sections["length"] = by_len
    res.sections["robustness"] = rob
    return {"marked": marked, "plain": plain, "prompts": prompts}


def bench_cost(cfg: BenchConfig, teacher: Any, wm: Watermark, gens: dict, res: BenchResult) -> None:
    """Tokens/s with and without the mark; perplexity of both under the judge model."""
    prompts = [p.text for p in generate_prompts(cfg.n_cost, seed=cfg.seed + 21)]
    base = _base_processors(cfg)
    marked_procs = [*base, *wm.logits_processors(teacher)]
    _gen(teacher, prompts[:2], cfg, 8, marked_procs)  # warm up
    times: dict[str, list[float]] = {"plain": [], "marked": []}
    toks: dict[str, int] = {"plain": 0, "marked": 0}
    for rep in range(2):  # alternate, keep the best of two runs each
        for name, procs in (("plain", base), ("marked", marked_procs)):
            t0 = time.perf_counter()
            out = _gen(teacher, prompts, cfg, cfg.power_tokens // 2, procs)
            times[name].append(time.perf_counter() - t0)
            if rep == 0:
                toks[name] = sum(len(g.token_ids) for g in out)
    speed = {k: toks[k] / min(times[k]) for k in times}
    cost: dict[str, Any] = {
        "tokens_per_s_plain": speed["plain"],
        "tokens_per_s_marked": speed["marked"],
        "speed_ratio": speed["marked"] / speed["plain"],
        "n_prompts": len(prompts),
        "batch_size": cfg.batch_size,
    }
    if cfg.ppl_model and gens:
        _log(f"cost: perplexity under {cfg.ppl_model}")
        judge = _load(cfg.ppl_model, cfg)
        for name in ("plain", "marked"):
            gs = [g for g in gens[name] if g.text.strip()]
            scored = judge.score([g.prompt for g in gs], [g.text for g in gs])
            lp = sum(s.total_logprob for s in scored)
            n = sum(s.n_tokens for s in scored)
            cost[f"ppl_{name}"] = math.exp(-lp / max(1, n))
            cost[f"ppl_tokens_{name}"] = n
        cost["ppl_model"] = cfg.ppl_model
    res.sections["cost"] = cost


def bench_radioactivity(
    cfg: BenchConfig, teacher: Any, work: Path, res: BenchResult, out: Path | None = None
) -> None:
    """Students distilled on 0..100% marked data, each tested in both modes."""
    wm = _bench_key(cfg.radio_mark, TokenizerBinding.of_model(teacher), cfg, "radioactivity")
    allp = [
        p.text for p in generate_prompts(cfg.radio_prompts + cfg.closed_prompts, seed=cfg.seed + 31)
    ]
    data = _RadioData(allp[: cfg.radio_prompts], allp[cfg.radio_prompts :])
    _radio_harvest(cfg, teacher, wm, work, res, data)
    order = list(data.train_prompts)
    random.Random(cfg.seed).shuffle(order)
    rows: list[dict[str, Any]] = []
    nulls: dict[str, list[float | None]] = {"open": [], "closed": [], "closed_reference": []}
    for mix in cfg.mixes:
        n_marked = int(round(mix * len(order)))
        chosen = set(order[:n_marked])
        rows.append(_radio_student(cfg, wm, teacher, work, data, chosen, mix, nulls))
        res.sections["radioactivity"] = {"key": wm.to_dict(), "students": rows}
        if out is not None:
            _write(res, out)
    res.sections["radioactivity"] = {
        "key": wm.to_dict(),
        "n_train_records": len(data.train_prompts),
        "n_closed_prompts": len(data.closed_prompts),
        "students": rows,
        "null_zero_percent_student_random_keys": {k: _cal(v) for k, v in nulls.items()},
    }


@dataclass
class _RadioData:
    """The radioactivity section's prompts and the teacher's answers to them."""

    train_prompts: list[str]
    closed_prompts: list[str]
    marked: dict[str, Any] = field(default_factory=dict)  # prompt -> marked record
    plain: dict[str, Any] = field(default_factory=dict)  # prompt -> unmarked record

    @property
    def marked_texts(self) -> list[str]:
        return [self.marked[p].response for p in self.train_prompts]


def _radio_harvest(
    cfg: BenchConfig, teacher: Any, wm: Watermark, work: Path, res: BenchResult, data: _RadioData
) -> None:
    """The teacher answers the training prompts twice: with the mark and without."""
    from distilltrace.distill.dataset import read_records
    from distilltrace.distill.harvesting import harvest

    kw = {
        "max_new_tokens": cfg.radio_tokens,
        "temperature": cfg.temperature,
        "top_p": cfg.top_p,
        "seed": cfg.seed,
        "batch_size": cfg.batch_size,
        "progress": False,
    }
    t0 = time.perf_counter()
    base = _base_processors(cfg)
    _log(f"radioactivity: harvesting {len(data.train_prompts)} prompts, marked and unmarked")
    marked_procs = [*base, *wm.logits_processors(teacher)]
    harvest(
        teacher, data.train_prompts, work / "marked.jsonl", logits_processors=marked_procs, **kw
    )
    harvest(teacher, data.train_prompts, work / "plain.jsonl", logits_processors=base or None, **kw)
    res.timings_s["radio_harvest"] = time.perf_counter() - t0
    data.marked = {r.prompt: r for r in read_records(work / "marked.jsonl")}
    data.plain = {r.prompt: r for r in read_records(work / "plain.jsonl")}


def _radio_student(
    cfg: BenchConfig,
    wm: Watermark,
    teacher: Any,
    work: Path,
    data: _RadioData,
    chosen: set[str],
    mix: float,
    nulls: dict[str, list[float | None]],
) -> dict[str, Any]:
    """Train one student on `mix` marked data and test it in both modes (the 0% student
    also under random keys: the null)."""
    from distilltrace.distill.dataset import Record, write_records
    from distilltrace.distill.student import make_student
    from distilltrace.distill.training import train_seq_kd

    recs = [
        Record(p, (data.marked if p in chosen else data.plain)[p].response, {"marked": p in chosen})
        for p in data.train_prompts
    ]
    ds = work / f"mix-{mix:g}.jsonl"
    _log(f"radioactivity: student with {mix:.0%} marked data ({len(chosen)} records)")
    write_records(ds, recs)
    t0 = time.perf_counter()
    st = make_student(cfg.student, tokenizer=cfg.student_tokenizer, seed=cfg.seed + 1)
    tr = train_seq_kd(st, ds, work / f"student-{mix:g}", cfg.student_training())
    train_s = time.perf_counter() - t0
    student = _load(str(work / f"student-{mix:g}"), cfg)
    student.batch_size = cfg.batch_size
    t0 = time.perf_counter()
    marked_texts = data.marked_texts
    reading = read_open(
        student, marked_texts, marked_prompts=data.train_prompts, batch_size=cfg.batch_size
    )
    open_t = score_open(wm, reading)
    closed = data.closed_prompts
    outs = _greedy(student, closed, cfg)
    closed_t, _ = score_closed(wm, outs, closed, student.tokenizer)
    closed_f, n_allowed = score_closed(
        wm, outs, closed, student.tokenizer, marked_texts=marked_texts, filter_min_count=2
    )
    ours, held_probs = _with_reference(cfg, wm, teacher, student, data, chosen, closed, outs)
    test_s = time.perf_counter() - t0
    if mix == 0.0:  # the null: this student is independent of any fresh key
        for i in range(cfg.radio_null_keys):
            k = _bench_key(cfg.radio_mark, wm.tokenizer, cfg, f"radio-null-{i}")
            nulls["open"].append(score_open(k, reading).pvalue)
            nulls["closed"].append(score_closed(k, outs, closed, student.tokenizer)[0].pvalue)
            ref = score_closed(k, outs, closed, student.tokenizer, reference_probs=held_probs)[0]
            nulls["closed_reference"].append(ref.pvalue)
    _log(f"  open p={open_t.pvalue_text}, closed p={closed_t.pvalue_text}")
    return {
        "mix": mix,
        "n_marked_records": len(chosen),
        "train_final_loss": tr.final_loss,
        "train_steps": tr.steps,
        "train_s": train_s,
        "test_s": test_s,
        "open": open_t.to_dict(),
        "closed": closed_t.to_dict(),
        "closed_supervised_filter": {**closed_f.to_dict(), "n_allowed_windows": n_allowed},
        **ours,
    }


def _greedy(model: Any, prompts: Sequence[str], cfg: BenchConfig) -> list[str]:
    gens = model.generate(list(prompts), max_new_tokens=cfg.closed_tokens, temperature=0.0)
    return [g.text for g in gens]


def _with_reference(
    cfg: BenchConfig,
    wm: Watermark,
    teacher: Any,
    student: Any,
    data: _RadioData,
    chosen: set[str],
    held: Sequence[str],
    held_outs: Sequence[str],
) -> tuple[dict[str, Any], list[list[float]]]:
    """Closed mode scored only where the teacher (our model) gave the student's token
    <= 0.5: on the held-out prompts, and on the prompts whose marked answers the student
    was trained on (re-elicited; for the 0% student the same number of training prompts,
    none of them answered with the mark)."""
    tok = student.tokenizer
    ask = [p for p in data.train_prompts if p in chosen] or list(
        data.train_prompts[: max(1, round(0.1 * len(data.train_prompts)))]
    )
    ask = ask[: cfg.closed_prompts]
    again = _greedy(student, ask, cfg)
    out: dict[str, Any] = {"n_reelicited_prompts": len(ask)}
    probs = {}
    for name, prompts, outs in (("held", held, held_outs), ("reelicited", ask, again)):
        probs[name] = reference_token_probs(teacher, prompts, outs, tok, batch_size=cfg.batch_size)
        ref, _ = score_closed(wm, outs, prompts, tok, reference_probs=probs[name])
        out[f"closed_{name}_reference"] = ref.to_dict()
    out["closed_reelicited"] = score_closed(wm, again, ask, tok)[0].to_dict()
    return out, probs["held"]


def run_bench(
    tier: str = "quick",
    out: str | Path = "bench-marks",
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
    work: str | Path | None = None,
) -> BenchResult:
    """Run the benchmark and write result.json and report.html into out (models and
    data sets go to `work`, default out/work)."""
    cfg = make_config(tier, {**(overrides or {}), "seed": seed})
    out = Path(out)
    work = Path(work) if work is not None else out / "work"
    work.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    res = BenchResult(config=cfg.to_dict())
    res.sections["machine"] = _machine()
    t_all = time.perf_counter()
    teacher = _teacher(cfg, work)
    wm = _bench_key(cfg.mark, TokenizerBinding.of_model(teacher), cfg, "detector")
    res.sections["key"] = wm.to_dict()
    gens = None
    if cfg.detector or cfg.cost:
        _log("detector: generating marked and unmarked texts")
        t0 = time.perf_counter()
        gens = bench_detector(cfg, teacher, wm, res)
        res.timings_s["detector"] = time.perf_counter() - t0
        _write(res, out)
    if cfg.cost:
        _log("cost: tokens/s with and without the mark")
        t0 = time.perf_counter()
        bench_cost(cfg, teacher, wm, gens, res)
        res.timings_s["cost"] = time.perf_counter() - t0
        _write(res, out)
    if cfg.radio:
        t0 = time.perf_counter()
        bench_radioactivity(cfg, teacher, work, res, out)
        res.timings_s["radioactivity"] = time.perf_counter() - t0
    res.timings_s["total"] = time.perf_counter() - t_all
    _write(res, out)
    return res


def _machine() -> dict[str, Any]:
    import os
    import platform

    d: dict[str, Any] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    try:
        import psutil

        d["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    return d


def _write(res: BenchResult, out: Path) -> None:
    from distilltrace.report import render_html, write_json

    write_json(res, out / "result.json")
    r = res.to_dict()
    names = ("key", "power", "null", "length", "robustness", "cost", "radioactivity")
    r["sections"] = {k: r["sections"].get(k) for k in names}
    render_html("marks_bench.html", {"r": r, "summary": res.summary()}, out / "report.html")


def load_overrides(text: str | None) -> dict[str, Any]:
    """Parse a JSON object of config overrides (from --set)."""
    if not text:
        return {}
    try:
        d = json.loads(text)
    except json.JSONDecodeError:
        raise InputError("benchmark overrides must be a JSON object") from None
    if not isinstance(d, dict):
        raise InputError("benchmark overrides must be a JSON object")
    return d
