"""Provenance wall time per suspect (issue 18's targets: first suspect < 10 min, each
further one < 3 min at budget 1,000 on 2 cores), side by side in one run. Modes (MODES):
the default procedure (stop a reference once decided, precision "auto"), the full one
(`stop_when_decided=False`: every test and the greedy stream, the procedure before session
20), and each of them in float32 (`--modes early,early-f32` compares precisions, the
procedure of session 20 against session 21's bfloat16 on this CPU). Each mode gets its own
fresh query cache, and the suspects run in the given order against the same reference and
controls, so the first pays for the reference's and the controls' work. The modes are
interleaved suspect by suspect, so that a drift in the machine's speed hits both.

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.provenance_walltime \
        --reference gemma3-270m --control ZOO/smollm2-ft-sharegpt-s0 \
        --control ZOO/smollm2-ft-sharegpt-s1 --control ZOO/smollm2-ft-sharegpt-s2 \
        --suspect ZOO/smollm2-ft-gemma3-10-s0 --suspect ZOO/smollm2-ft-gemma3-100-s0 \
        --budget 1000 --out /tmp/walltime

Prints a Markdown table (for docs/benchmarks.md) and writes walltime.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import resource
import time
from pathlib import Path

# mode -> (stop_when_decided, compute precision of every model)
MODES = {
    "early": (True, "auto"),  # the default procedure
    "full": (False, "auto"),  # every test and the greedy stream
    "early-f32": (True, "float32"),  # the default procedure in float32 (before session 21)
    "full-f32": (False, "float32"),  # the procedure of session 19
}


def run_one(mode: str, i: int, spec: str, a: argparse.Namespace, out: Path) -> dict:
    """One suspect under one mode, on that mode's cache (fresh before its first suspect)."""
    from distilltrace.models import load_model
    from distilltrace.progress import LineProgress
    from distilltrace.provenance.config import ProvenanceConfig
    from distilltrace.provenance.tester import test_provenance

    cache = out / f"cache-{mode}.sqlite"
    stop, dtype = MODES[mode]
    cfg = ProvenanceConfig(budget=a.budget, stop_when_decided=stop, dtype=dtype)
    lines = LineProgress()
    t0 = time.time()
    ref = load_model(a.reference, cache=cache, dtype=dtype)
    ctrls = [load_model(c, cache=cache, dtype=dtype) for c in a.control]
    s = load_model(spec, cache=cache, dtype=dtype)
    task = lines.add_task(f"{mode} {i + 1}/{len(a.suspect)}")
    res = test_provenance(
        s, [ref], ctrls, config=cfg,
        progress=lambda msg, d, n: lines.update(task, description=msg, completed=d, total=n),
    )  # fmt: skip
    r = res.references[0]
    row = {
        "mode": mode, "dtype": s.info.extra.get("dtype"), "order": i + 1, "suspect": Path(spec).name, "wall_s": time.time() - t0,
        "holm_p": r.holm_pvalue, "suspect_queries": res.suspect_queries,
        "tests": {k: t.pvalue for k, t in r.tests.items()},
        "not_run": sorted(k for k, t in r.tests.items() if (t.skipped or "").startswith("not run")),
        "stream_probes": r.tests["greedy_agreement"].n if "greedy_agreement" in r.tests else None,
    }  # fmt: skip
    print(f"{mode} {i + 1} {row['suspect']}: {row['wall_s']:.0f} s", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference", required=True)
    ap.add_argument("--control", action="append", required=True)
    ap.add_argument("--suspect", action="append", required=True, help="in this order")
    ap.add_argument("--budget", type=int, default=1000)
    ap.add_argument("--modes", default="early,full")
    ap.add_argument("--out", default="bench-walltime")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC)
    modes = a.modes.split(",")
    for m in modes:
        if m not in MODES or (out / f"cache-{m}.sqlite").exists():
            raise SystemExit(f"mode {m!r}: one of {list(MODES)}, with no cache in {out} yet")
    # interleaved (suspect 1 in each mode, then suspect 2, ...): drift hits both modes
    rows = [run_one(m, i, spec, a, out) for i, spec in enumerate(a.suspect) for m in modes]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    (out / "walltime.json").write_text(json.dumps(rows, indent=1))
    print(f"\n- {started:%Y-%m-%d %H:%M} UTC, {platform.machine()}, budget {a.budget}, "
          f"peak RSS of the run {peak:.1f} GB\n")  # fmt: skip
    print(
        "| mode | dtype | order | suspect | wall | suspect queries | Holm p | not run | stream probes |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['dtype']} | {r['order']} | `{r['suspect']}` | {r['wall_s']:.0f} s | "
            f"{r['suspect_queries']} | {r['holm_p']:.2g} | {', '.join(r['not_run']) or '-'} | "
            f"{r['stream_probes']} |"
        )


if __name__ == "__main__":
    main()
