"""`distilltrace traffic scan LOGS... --out DIR`."""

from __future__ import annotations

import inspect
from pathlib import Path

import typer


def scan_command(
    logs: list[str] = typer.Argument(
        ...,
        help="Log files (Parquet, JSON Lines or CSV); with --engine spark, Parquet paths or URLs.",
    ),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    engine: str = typer.Option(
        "duckdb", "--engine", help="Where the pipeline runs: duckdb or spark."
    ),
    spark_master: str = typer.Option(
        "local[*]",
        "--spark-master",
        help="Spark master URL with --engine spark (local[*], spark://..., yarn).",
    ),
    account_alpha: float = typer.Option(
        0.0005,
        "--account-alpha",
        help="Calibrated tail probability at which a lone account is flagged.",
    ),
    campaign_alpha: float = typer.Option(
        0.001, "--campaign-alpha", help="Family-wise level for calling a cluster a campaign."
    ),
    threads: int = typer.Option(0, "--threads", help="Engine threads (0: all cores)."),
    memory_limit: str = typer.Option("", "--memory-limit", help="Engine memory limit, e.g. 6GB."),
    content: bool = typer.Option(
        True,
        "--content/--no-content",
        help="Read what accounts ask for with the multilingual content model (docs/traffic.md).",
    ),
) -> None:
    """Find distillation campaigns in API request logs.

    --out is checked before any work. The files are written into a staging folder next
    to it and moved into place only when all are written and checked: a failed or killed
    scan leaves --out as it was. A folder holding a previous scan is replaced; a folder
    holding anything else is refused.
    """
    from distilltrace.traffic.engine import make_engine
    from distilltrace.traffic.outputs import discard_staging, prepare_out_dir
    from distilltrace.traffic.scanner import scan

    staging = prepare_out_dir(out)
    try:
        if engine == "spark":  # Parquet paths may be any URL Spark reads (hdfs://, s3a://)
            eng = make_engine("spark", master=spark_master, memory_limit=memory_limit or None)
        res = scan(
            [str(p) for p in logs],
            out_dir=staging,
            engine=eng if engine == "spark" else engine,
            account_alpha=account_alpha,
            campaign_alpha=campaign_alpha,
            threads=threads or None,
            memory_limit=memory_limit or None,
            content=content,
            progress=True,
        )
    except BaseException:
        discard_staging(staging)
        raise
    s = res.summary
    typer.echo(
        f"{s['n_requests']} requests, {s['n_accounts']} accounts, {s['rows_quarantined']} quarantined; "
        f"{s['n_campaigns']} campaign(s), {s['n_flagged_alone_outside']} account(s) flagged on their "
        f"own, {s['n_flagged_accounts']} flagged accounts"
    )
    for w in s.get("warnings", []):
        typer.echo(f"warning: {w}", err=True)
    typer.echo(f"report: {res.files.get('report')}")


def reflowed(doc: str | None) -> str:
    """A docstring with each paragraph on one line: Rich help keeps a docstring's hard line
    breaks after its first paragraph, which wraps them again at a narrower terminal."""
    paras = inspect.cleandoc(doc or "").split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paras)


def register(app: typer.Typer) -> None:
    """Add the scan commands to the traffic app."""
    app.command("scan", help=reflowed(scan_command.__doc__))(scan_command)
