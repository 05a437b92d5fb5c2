"""Write a scan's files: accounts.parquet, requests.parquet, campaigns.json, summary.json,
quarantine.parquet and a self-contained, escaped report.html."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distilltrace.report import figure_data_uri, render_html, write_json

_CTRL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def visible(text: str, limit: int = 600) -> str:
    """Log text made safe to show: control characters replaced, length bounded.
    (HTML escaping is done by the template engine.)"""
    s = _CTRL.sub("\ufffd", str(text))
    return s if len(s) <= limit else s[:limit] + " …"


def _write_parquet(df, path: Path) -> None:
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, path, compression="zstd")


def _timeline_png(camp) -> str | None:
    if not camp.timeline:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [dt.datetime.fromtimestamp(r["day"] * 86400, dt.UTC).date() for r in camp.timeline]
    fig, ax = plt.subplots(figsize=(6, 1.8))
    ax.bar(days, [r["requests"] for r in camp.timeline], color="#a33")
    ax.set_ylabel("requests/day")
    ax2 = ax.twinx()
    ax2.plot(days, [r["accounts"] for r in camp.timeline], color="#335", marker=".")
    ax2.set_ylabel("active accounts")
    fig.autofmt_xdate()
    return figure_data_uri(fig)


def write_outputs(result, out: Path) -> None:
    """Write every output file of a scan into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    files = dict(result.files)
    _write_parquet(result.accounts, out / "accounts.parquet")
    files["accounts"] = str(out / "accounts.parquet")
    if result.requests is not None and "requests" not in files:
        _write_parquet(result.requests, out / "requests.parquet")
        files["requests"] = str(out / "requests.parquet")
    if result.quarantine is not None:
        _write_parquet(result.quarantine, out / "quarantine.parquet")
        files["quarantine"] = str(out / "quarantine.parquet")
    write_json({"campaigns": [c.to_dict() for c in result.campaigns]}, out / "campaigns.json")
    files["campaigns"] = str(out / "campaigns.json")
    summary = dict(result.summary)
    summary = {k: v for k, v in summary.items() if k != "timings_s"}
    write_json(summary, out / "summary.json")
    files["summary"] = str(out / "summary.json")
    write_json({"timings_s": result.summary.get("timings_s", {})}, out / "timings.json")
    render_report(result, out / "report.html")
    files["report"] = str(out / "report.html")
    result.files = files
    result.out_dir = out


def render_report(result, path: Path) -> Path:
    """The HTML report (campaign table, timelines, shared infrastructure, example prompts)."""
    camps = []
    for c in result.campaigns[:25]:
        camps.append(
            {
                "c": c,
                "png": _timeline_png(c),
                "examples": [dict(e, prompt=visible(e["prompt"])) for e in c.examples],
                "infra": [dict(i, value=visible(i["value"], 120)) for i in c.shared_infrastructure],
                "members": [visible(m, 80) for m in c.members[:30]],
                "top_signals": sorted(c.signals.items(), key=lambda kv: -kv[1])[:5],
            }
        )
    s = result.summary
    top_accounts = result.accounts.sort_values(
        ["risk", "account_id"], ascending=[False, True]
    ).head(30)
    accounts = [
        {
            "account_id": visible(r.account_id, 80),
            "risk": r.risk,
            "flagged": bool(r.flagged),
            "cluster_id": int(r.cluster_id),
            "n_requests": int(r.n_requests),
        }
        for r in top_accounts.itertuples()
    ]
    return render_html(
        "traffic_scan.html",
        {
            "summary": s,
            "campaigns": camps,
            "accounts": accounts,
            "quarantine_reasons": s.get("load", {}).get("quarantine_reasons", {}),
        },
        path,
    )
