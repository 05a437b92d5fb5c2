"""Leave-one-out provenance pairs on a custody demo's students (issue 17's benign verdict,
issue 18's false-accusation rate, on the quick tier's fine-tuned students).

A finished `distilltrace custody demo` folder holds five students of one base and one
recipe: `harvested` (the campaign's marked answers) and four that never saw the
reference's outputs (`benign` and `control-1..3`, ShareGPT answers). Each of those four is
tested as the suspect against the other three (a null pair: it does not derive from the
reference), and `harvested` against the demo's three controls, with the demo's provenance
settings and its query cache (the reference's and controls' answers are reused). Each
line also gives the model-level standing p-values (provenance.standing) of the tests that
measured one.

    .venv/bin/python -m benchmarks.custody_null_pairs custody-demo/ [--budget 400]

Prints one line per suspect and a Markdown row, and writes DEMO/null_pairs.json. The
suspects' sampled answers are drawn again (the demo does not cache them), so a harvested
p-value here need not equal its bundle's.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from pathlib import Path

NULL = ("benign", "control-1", "control-2", "control-3")
CONTROLS = ("control-1", "control-2", "control-3")  # the demo's controls


def pairs() -> list[tuple[str, list[str]]]:
    """(suspect, controls): the harvested student against the demo's controls, and each
    null student against the other three."""
    return [("harvested", list(CONTROLS))] + [(s, [c for c in NULL if c != s]) for s in NULL]


def reverse_advantage(test) -> dict[str, float]:
    """The suspect's advantage over each control in scoring the reference's outputs (nats
    per character), before any margin."""
    d = test.details if test is not None else {}
    s, ctl = d.get("suspect_score_of_reference"), d.get("control_scores_of_reference") or {}
    return {c: round(float(s) - float(v), 4) for c, v in ctl.items()} if s is not None else {}


def one(suspect: str, controls: list[str], models: dict, ref, cfg, label: dict) -> dict:
    """One provenance test; `label` names each model object (id -> name)."""
    from distilltrace.provenance.tester import test_provenance

    t0 = time.perf_counter()
    res = test_provenance(
        models[suspect], [ref], [models[c] for c in controls], config=cfg,
        name_of=lambda m: label[id(m)],
    )  # fmt: skip
    r = res.references[0]
    return {
        "suspect": suspect,
        "derived": suspect == "harvested",
        "controls": controls,
        "holm_pvalue": r.holm_pvalue,
        "tests": {k: t.pvalue for k, t in r.tests.items()},
        "reverse_advantage": reverse_advantage(r.tests.get("likelihood_reverse")),
        "standing": {  # model-level p (provenance.standing), where the test measured it
            k: t.details["standing"]["pvalue"]
            for k, t in r.tests.items()
            if t.ran and t.details.get("standing")
        },
        "suspect_queries": res.suspect_queries,
        "warnings": list(res.warnings),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo", type=Path, help="a finished `custody demo` folder")
    ap.add_argument("--budget", type=int, default=None, help="default: the demo's")
    ap.add_argument("--alpha", type=float, default=0.01)
    a = ap.parse_args(argv)
    demo = json.loads((a.demo / "demo.json").read_text(encoding="utf-8"))
    from distilltrace.custody.build import provenance_config
    from distilltrace.models import load_model
    from distilltrace.models.cache import CachedModel

    conf = dict(demo["config"]["provenance"])
    if a.budget is not None:
        conf["budget"] = a.budget
    cfg = provenance_config(conf)
    dtype, cache = demo["config"]["dtype"], a.demo / "query-cache"
    ref = CachedModel(load_model(demo["config"]["teacher"], dtype=dtype), cache)
    models = {
        n: CachedModel(load_model(str(a.demo / "students" / n), dtype=dtype), cache)
        for n in ("harvested", *NULL)
    }
    label = {id(m): n for n, m in models.items()} | {id(ref): "reference"}
    rows, todo = [], pairs()
    for i, (s, ctl) in enumerate(todo):
        rows.append(one(s, ctl, models, ref, cfg, label))
        r = rows[-1]
        st = ", ".join(f"{k} {v:.2g}" for k, v in sorted(r["standing"].items()))
        print(f"[{i + 1}/{len(todo)}] {s}: Holm p {r['holm_pvalue']:.3g} "
              f"({r['suspect_queries']} queries, {r['seconds']:.0f} s); "
              f"model-level standing p: {st or 'none measured'}", flush=True)  # fmt: skip
    nulls = [r for r in rows if not r["derived"]]
    fp = sum(r["holm_pvalue"] is not None and r["holm_pvalue"] <= a.alpha for r in nulls)
    out = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(),
        "demo": str(a.demo), "config": conf, "alpha": a.alpha, "pairs": rows,
        "null_pairs_rejected": fp, "null_pairs": len(nulls),
    }  # fmt: skip
    (a.demo / "null_pairs.json").write_text(json.dumps(out, indent=1), encoding="utf-8")
    h = rows[0]["holm_pvalue"]
    print(f"| {a.demo} | {h:.2g} | "
          + ", ".join(f"{r['holm_pvalue']:.2g}" for r in nulls)
          + f" | {fp} of {len(nulls)} at {a.alpha} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
