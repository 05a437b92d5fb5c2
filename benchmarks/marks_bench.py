"""Marks benchmark: detector null calibration and power, detection vs length, robustness to
word substitutions, generation cost, perplexity cost, and radioactivity of students
distilled on 0/1/5/10/100% marked data (open and closed mode).

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python -m benchmarks.marks_bench \
        [--tier quick|full] [--out DIR] [--seed N] [--set '{"n_power": 200, "radio": false}']

Same as `distilltrace bench marks`. Every size is a field of
`distilltrace.bench.marks.BenchConfig`; `--set` overrides any of them.
"""

from __future__ import annotations

import argparse

from distilltrace.bench.marks import load_overrides, run_bench


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tier", default="quick", choices=["quick", "full"])
    ap.add_argument("--out", default="bench-marks")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=None, help="folder for models and data (default OUT/work)")
    ap.add_argument("--set", dest="overrides", default=None, help="JSON object of overrides")
    a = ap.parse_args()
    res = run_bench(a.tier, a.out, a.seed, load_overrides(a.overrides), work=a.work)
    print(res.summary())
    print(f"wrote {a.out}/result.json and {a.out}/report.html")


if __name__ == "__main__":
    main()
