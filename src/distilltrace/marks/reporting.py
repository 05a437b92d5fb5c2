"""Write marks results as result.json and an escaped, self-contained report.html."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distilltrace.marks.detect import DetectionReport
from distilltrace.marks.radioactivity import RadioactivityResult
from distilltrace.report import render_html, write_json
from distilltrace.stats import HolmResult


def write_detect_report(rep: DetectionReport, texts: Sequence[str], out: str | Path) -> Path:
    """result.json and report.html for a detection run (text excerpts escaped)."""
    out = Path(out)
    write_json(rep, out / "result.json")
    rows = []
    for t in rep.texts:
        rows.append(
            {
                "index": t.index,
                "test": t.test,
                "adjusted": t.holm_adjusted,
                "excerpt": texts[t.index][:300],
                "max_window_z": max((w.z for w in t.windows), default=None),
            }
        )
    render_html(
        "marks_detect.html",
        {"rep": rep, "rows": rows[:500], "n_rows_hidden": max(0, len(rows) - 500)},
        out / "report.html",
    )
    return out


def write_radioactivity_report(
    results: Sequence[RadioactivityResult], family: HolmResult | None, out: str | Path
) -> Path:
    """result.json and report.html for radioactivity tests (one per mode)."""
    out = Path(out)
    payload: dict[str, Any] = {
        "results": [r.to_dict() for r in results],
        "holm_across_modes": family.to_dict() if family is not None else None,
    }
    write_json(payload, out / "result.json")
    render_html(
        "marks_radioactivity.html", {"results": results, "family": family}, out / "report.html"
    )
    return out
