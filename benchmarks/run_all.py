"""Run the benchmarks one after another with their default settings.

    .venv/bin/python -m benchmarks.run_all [NAME ...]     # e.g. traffic_scale models_throughput

Each benchmark is also runnable alone (`python -m benchmarks.<name> --help`); they write
their results under benchmarks/results/ or print Markdown for docs/benchmarks.md. Some
take hours on 2 cores (the real-teacher zoo); run those by name.
"""

from __future__ import annotations

import subprocess
import sys
import time

BENCHMARKS = [
    "models_throughput",
    "models_precision",
    "serve_overhead",
    "traffic_scale",
    "traffic_quality",
    "traffic_spark",
    "distill_harvest",
    "distill_train_throughput",
    "distill_zoo",
    "provenance_zoo",
    "marks_bench",
]


def main(argv: list[str]) -> int:
    names = argv or BENCHMARKS
    unknown = [
        n for n in names if n not in [*BENCHMARKS, "provenance_stylezoo", "provenance_walltime"]
    ]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    failed = []
    for name in names:
        t0 = time.time()
        print(f"== benchmarks.{name}", flush=True)
        rc = subprocess.call([sys.executable, "-m", f"benchmarks.{name}"])
        print(f"== benchmarks.{name}: exit {rc} after {time.time() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
