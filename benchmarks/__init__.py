"""Benchmarks, one command each (docs/benchmarks.md records their runs)."""

from __future__ import annotations

import json
import os
import platform
import time


def write_rows(path: str, rows: list[dict]) -> None:
    """Write a benchmark's rows to JSON with the machine, its CPU count and the time."""
    meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}  # fmt: skip
    with open(path, "w") as f:
        json.dump(meta, f, indent=1)
