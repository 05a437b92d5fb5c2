"""Write a provenance result as result.json and a self-contained, escaped report.html."""

from __future__ import annotations

from pathlib import Path

from distilltrace.provenance.result import ProvenanceResult
from distilltrace.report import figure_data_uri, render_html, write_json


def pvalue_plot(result: ProvenanceResult) -> str | None:
    """Data URI of the running (anytime-valid) p-value against suspect queries."""
    curves = [(r.reference, r.trajectory) for r in result.references if r.trajectory]
    if not curves:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for name, traj in curves:
        q = [t[0] for t in traj]
        p = [max(min(1.0, t[1]), 1e-300) for t in traj]
        ax.plot(q, p, label=name)
    ax.axhline(result.alpha, color="grey", ls="--", lw=1, label=f"alpha = {result.alpha:g}")
    ax.set_yscale("log")
    ax.set_xlabel("suspect queries")
    ax.set_ylabel("p-value bound (greedy test x tests)")
    ax.set_title("Evidence against 'no closer than the controls' as queries accrue")
    ax.legend(fontsize=8)
    return figure_data_uri(fig)


def write_report(result: ProvenanceResult, out_dir: str | Path) -> dict[str, Path]:
    """Write result.json and report.html into out_dir; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    j = write_json(result, out / "result.json")
    h = render_html(
        "provenance.html",
        {"r": result.to_dict(), "plot": pvalue_plot(result)},
        out / "report.html",
    )
    return {"json": j, "html": h}
