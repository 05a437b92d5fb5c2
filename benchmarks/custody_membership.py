"""The harvest-membership claim on a custody demo's models: its power on the harvested
student, and its null on models that never saw the served answers.

    .venv/bin/python -m benchmarks.custody_membership custody-demo/ [--fresh 9] \
        [--draws 10] [--independent gemma3-270m]

DEMO is a finished `distilltrace custody demo` folder: its teacher and key, the harvested
bundle's exchanges and log segment (their serving settings), and its five students.

1. **The log's served answers.** Each suspect's membership test with `--fresh` k fresh
   answers per exchange. Null suspects: `benign`, `control-1..3` (the demo's base
   fine-tuned on ShareGPT) and `--independent` (a model of another family). If the fresh
   answers were not draws of the served answers' distribution (another serving path,
   other numerics), the null suspects would tell them apart here, more surely the larger
   k is.
2. **Null calibration.** `--draws` independent trials: our model draws the "served"
   answers anew (seed = trial) and one fresh answer each (the build's own code), and
   every null suspect is tested on them: the share of p-values at or below 0.01, 0.05,
   0.1 and 0.5 against those levels.

Writes DEMO/membership.json and prints Markdown rows.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from pathlib import Path

NULL = ("benign", "control-1", "control-2", "control-3")


def _exchanges(demo: Path) -> tuple[list[dict], list[dict], dict]:
    """The harvested bundle's tested exchanges with their serving settings."""
    from distilltrace import jsonl
    from distilltrace.custody.bundle import read_jsonl
    from distilltrace.custody.logs import parse_segment
    from distilltrace.custody.verify import tested_exchanges

    b = demo / "bundle-harvested"
    cfg = json.loads((b / "manifest.json").read_text(encoding="utf-8"))["config"]
    harvested = read_jsonl(b / "harvested.jsonl")  # split on "\n" only: U+2028 is text
    rows = []
    for seg in sorted((b / "log").glob("segment-*.jsonl")):
        lines = jsonl.lines(seg.read_text(encoding="utf-8"))
        rows += parse_segment([x for x in lines if x.strip()], seg.name)
    settings, idx, _ = tested_exchanges(b, cfg, rows, harvested)
    return [harvested[i] for i in idx], [settings[i] for i in idx], cfg


def _draw(ref, wm, prompts, settings, k: int, seed: int) -> list[list[str]]:
    from distilltrace.provenance.membership import draw_fresh

    return draw_fresh(ref, prompts, settings, k, seed, wm.logits_processors(ref))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo", type=Path, help="a finished `custody demo` folder")
    ap.add_argument("--fresh", type=int, default=9, help="fresh answers per exchange (part 1)")
    ap.add_argument("--draws", type=int, default=10, help="null trials (part 2; 0: skip)")
    ap.add_argument("--independent", default="gemma3-270m", help="a null suspect of another family")
    a = ap.parse_args(argv)
    from distilltrace.marks.keys import load_watermark
    from distilltrace.models import load_model
    from distilltrace.provenance.membership import exchange_logprobs as lps
    from distilltrace.provenance.membership import test_logprobs

    demo = json.loads((a.demo / "demo.json").read_text(encoding="utf-8"))
    dtype = demo["config"]["dtype"]
    t0 = time.perf_counter()
    ref = load_model(demo["config"]["teacher"], dtype=dtype)
    wm = load_watermark(a.demo / "key.json")
    ex, settings, cfg = _exchanges(a.demo)
    prompts = [str(h["prompt"]) for h in ex]
    names = ["harvested", *NULL, a.independent]
    spec = {n: str(a.demo / "students" / n) for n in names[:-1]} | {a.independent: a.independent}
    suspects = {n: load_model(spec[n], dtype=dtype) for n in names}
    print(f"{len(ex)} exchanges; drawing {a.fresh} fresh answers each", flush=True)
    fresh = _draw(ref, wm, prompts, settings, a.fresh, int(cfg.get("membership_seed", 1_000_003)))
    answers = [[str(h["response"]), *f] for h, f in zip(ex, fresh, strict=True)]
    r_lp = lps(ref, prompts, answers)
    part1 = {}
    for n, m in suspects.items():
        t = test_logprobs(lps(m, prompts, answers), r_lp, answers, seed=0)
        part1[n] = {"pvalue": t.pvalue, "statistic": t.statistic, "n": t.n, "k": t.k,
                    "mean_margin": t.mean_margin}  # fmt: skip
        print(f"served answers, {n}: p {t.pvalue:.3g}, mean rank {t.statistic:.3f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    part2: dict[str, list[float]] = {n: [] for n in names[1:]}
    for d in range(a.draws):
        served = _draw(ref, wm, prompts, settings, 1, 500 + d)
        new = _draw(ref, wm, prompts, settings, 1, 900_000 + d)
        ans = [[s[0], f[0]] for s, f in zip(served, new, strict=True)]
        r2 = lps(ref, prompts, ans)
        for n in part2:
            part2[n].append(test_logprobs(lps(suspects[n], prompts, ans), r2, ans, seed=d).pvalue)
        print(f"null trial {d + 1}/{a.draws} ({time.perf_counter() - t0:.0f} s)", flush=True)
    ps = [p for v in part2.values() for p in v]
    fpr = {str(x): (sum(p <= x for p in ps) / len(ps) if ps else None)
           for x in (0.01, 0.05, 0.1, 0.5)}  # fmt: skip
    out = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(), "demo": str(a.demo),
        "fresh": a.fresh, "draws": a.draws, "n_exchanges": len(ex), "served": part1,
        "null_trials": part2, "null_share_at_or_below": fpr,
        "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip
    (a.demo / "membership.json").write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(f"| suspect | served answers: p (k = {a.fresh}) | mean rank |")
    for n, r in part1.items():
        print(f"| {n} | {r['pvalue']:.3g} | {r['statistic']:.3f} |")
    print(f"null trials: {len(ps)} p-values; share at or below 0.01/0.05/0.1/0.5: "
          + " / ".join(f"{v:.3f}" for v in fpr.values() if v is not None))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
