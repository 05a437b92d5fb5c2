"""Traffic simulate/evaluate commands and `distilltrace demo` (parse, call the library, render)."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from distilltrace.errors import InputError


def _campaign_list(text: str | None) -> tuple[str, ...]:
    from distilltrace.traffic.simulate import ARCHETYPES

    return _value_list(text, ARCHETYPES)


def _value_list(text: str | None, every) -> tuple[str, ...]:
    """A comma list; empty, 'all' or 'default' for every value, 'none' for none."""
    if text is None or text.strip().lower() in ("", "all", "default"):
        return tuple(every)
    if text.strip().lower() == "none":
        return ()
    return tuple(x.strip() for x in text.split(",") if x.strip())


def simulate_cmd(
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output log file (.parquet, .jsonl or .csv)."
    ),
    accounts: int = typer.Option(20000, "--accounts", "-n", help="Number of accounts."),
    days: int = typer.Option(7, "--days", "-d", help="Days of traffic."),
    seed: int = typer.Option(0, "--seed", "-s", help="Random seed (same seed, same logs)."),
    fmt: str | None = typer.Option(
        None, "--format", "-f", help="parquet, jsonl or csv (default: from the file name)."
    ),
    campaigns: str | None = typer.Option(
        None,
        "--campaigns",
        help="Comma-separated archetypes (single_heavy,hydra,reseller_mixed,paraphrased,slow_low,"
        "release_pivot,pool_farm,proxy_mismatch,reconstruct_daily,reseller_agentic), "
        "'all' (default) or 'none' for benign-only traffic.",
    ),
    wordings: str | None = typer.Option(
        None,
        "--wordings",
        help="Comma-separated wording families the campaigns may use (show_work,agentic_think,"
        "reconstruct,complete_cot,preference_ab,grader_rubric,structured_trace); default all.",
    ),
    languages: str | None = typer.Option(
        None,
        "--languages",
        help="Comma-separated campaign languages (en,zh,ru,es,ko,ja,ar,de,fr); default all.",
    ),
    lookalikes: str | None = typer.Option(
        None,
        "--lookalikes",
        help="Comma-separated benign look-alike families to include (default all, 'none').",
    ),
    reseller_share: float = typer.Option(
        0.05, "--reseller-share", help="Campaign share of the mixed reseller's traffic."
    ),
    start: str = typer.Option(
        "2026-03-02T00:00:00Z", "--start", help="Window start (UTC, ISO 8601)."
    ),
    workers: int = typer.Option(
        0, "--workers", help="Processes drawing days in parallel (0: automatic, 1 for small runs)."
    ),
) -> None:
    """Simulate API request logs with benign hard cases and labelled distillation campaigns."""
    from rich.console import Console
    from rich.progress import Progress

    from distilltrace.traffic.simulate import (
        LANGUAGES,
        LOOKALIKES,
        WORDINGS,
        SimConfig,
        default_workers,
        write_logs,
    )

    cfg = SimConfig(
        n_accounts=accounts,
        days=days,
        seed=seed,
        start=start,
        campaigns=_campaign_list(campaigns),
        reseller_share=reseller_share,
        wordings=_value_list(wordings, WORDINGS),
        languages=_value_list(languages, LANGUAGES),
        lookalikes=_value_list(lookalikes, LOOKALIKES),
    )
    cfg.validate()
    console = Console(stderr=True)
    t0 = time.perf_counter()
    with Progress(console=console, transient=True) as prog:
        task = prog.add_task("simulating days", total=days)

        def step(done: int, total: int, rows: int) -> None:
            prog.update(task, completed=done, description=f"simulating days ({rows:,} requests)")

        nw = workers if workers > 0 else default_workers(cfg)
        info = write_logs(out, cfg, fmt, progress=step, workers=nw)
    dt = time.perf_counter() - t0
    typer.echo(
        f"wrote {info['rows']:,} requests ({info['campaign_rows']:,} campaign) from "
        f"{info['accounts']:,} accounts to {info['path']} in {dt:.1f}s"
    )
    typer.echo(
        f"ground truth: {info['truth']}  campaigns: {', '.join(info['campaigns']) or 'none'}"
    )


def evaluate_cmd(
    scan_dir: Path = typer.Argument(
        ..., help="A scan output directory (accounts.parquet, requests.parquet)."
    ),
    logs: list[Path] = typer.Argument(
        ..., help="The log file(s) that were scanned, with campaign_id."
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="eval.json path or folder (default: SCAN_DIR)."
    ),
    truth: Path | None = typer.Option(
        None, "--truth", help="Ground-truth JSON (default: LOG.truth.json or Parquet metadata)."
    ),
) -> None:
    """Score a scan against the logs' ground truth: precision, recall, FPR, AUCs, campaigns, hard cases."""
    from distilltrace.traffic.evaluate import evaluate, write_evaluation

    res = evaluate(scan_dir, logs, truth)
    paths = write_evaluation(res, out if out is not None else scan_dir)
    print_evaluation(res)
    typer.echo(f"evaluation: {paths['json']}  {paths['html']}")


def print_evaluation(res) -> None:
    """A short Rich summary of an EvalResult."""
    from rich.console import Console
    from rich.table import Table

    def pct(x):
        return "n/a" if x is None else f"{100 * x:.2f}%"

    con = Console()
    t = Table(title="Detection vs ground truth")
    for c in ("level", "n", "positives", "precision", "recall", "FPR", "ROC AUC", "PR AUC"):
        t.add_column(c)
    for name, m in (("accounts", res.accounts), ("requests", res.requests)):
        t.add_row(
            name,
            f"{m.n:,}",
            f"{m.n_positive:,}",
            pct(m.precision),
            pct(m.recall),
            pct(m.fpr),
            "n/a" if m.roc_auc is None else f"{m.roc_auc:.4f}",
            "n/a" if m.pr_auc is None else f"{m.pr_auc:.4f}",
        )
    kw = res.baseline.get("accounts") if res.baseline else None
    if kw:
        t.add_row(
            "accounts, keyword rule",
            f"{kw['n']:,}",
            f"{kw['n_positive']:,}",
            pct(kw["precision"]),
            pct(kw["recall"]),
            pct(kw["fpr"]),
            "n/a",
            "n/a",
        )
    con.print(t)
    c = Table(title="Campaigns (found = more than half of accounts flagged)")
    for col in ("campaign", "accounts", "flagged", "requests flagged", "found"):
        c.add_column(col)
    for x in res.campaigns:
        c.add_row(
            x["campaign_id"],
            str(x["n_accounts"]),
            pct(x["account_fraction_flagged"]),
            pct(x["request_fraction_flagged"]),
            "[green]yes[/]" if x["found"] else "[red]no[/]",
        )
    con.print(c)
    if res.hard_cases:
        flagged = [h for h in res.hard_cases if h["n_flagged"]]
        if flagged:
            con.print(
                "[red]hard cases with flagged accounts:[/] "
                + ", ".join(
                    f"{h['group']} ({h['n_flagged']}/{h['n_active_accounts']})" for h in flagged
                ),
                markup=True,
                highlight=False,
            )
        else:
            con.print(
                f"[green]no benign hard-case account flagged[/] ({len(res.hard_cases)} groups)"
            )
    met = ", ".join(
        f"{k}={'yes' if v else ('n/a' if v is None else 'no')}" for k, v in res.targets.items()
    )
    con.print(f"targets: {met}", highlight=False, markup=False)


def demo(
    out: Path = typer.Option(Path("distilltrace-demo"), "--out", "-o", help="Output folder."),
    accounts: int = typer.Option(3000, "--accounts", "-n", help="Accounts to simulate."),
    days: int = typer.Option(7, "--days", "-d", help="Days of traffic."),
    seed: int = typer.Option(0, "--seed", "-s", help="Random seed."),
) -> None:
    """Simulate a week of traffic with hidden campaigns, scan it, evaluate, print the report path."""
    run_demo(out, accounts=accounts, days=days, seed=seed)


def run_demo(out: Path, accounts: int = 3000, days: int = 7, seed: int = 0, quiet: bool = False):
    """The demo as a function: returns (EvalResult, path of report.html)."""
    from rich.console import Console

    from distilltrace.traffic.evaluate import evaluate, write_evaluation
    from distilltrace.traffic.simulate import SimConfig, write_logs

    try:
        from distilltrace.traffic import scan
    except ImportError as e:  # the scan pipeline is a separate part of the package
        raise InputError(f"the traffic scan pipeline is not available: {e}") from None
    con = Console(stderr=True, quiet=quiet)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs.parquet"
    t0 = time.perf_counter()
    with con.status(f"simulating {accounts:,} accounts x {days} days ..."):
        info = write_logs(logs, SimConfig(n_accounts=accounts, days=days, seed=seed))
    con.print(
        f"simulated {info['rows']:,} requests, {len(info['campaigns'])} hidden campaigns "
        f"({time.perf_counter() - t0:.0f}s) -> {logs}"
    )
    t1 = time.perf_counter()
    with con.status("scanning ..."):
        result = scan([str(logs)], out_dir=out / "scan", engine="duckdb", progress=False)
    con.print(f"scanned in {time.perf_counter() - t1:.0f}s -> {out / 'scan'}")
    ev = evaluate(out / "scan", logs)
    write_evaluation(ev, out / "scan")
    if not quiet:
        print_evaluation(ev)
    report = Path(getattr(result, "files", {}).get("report", out / "scan" / "report.html"))
    typer.echo(f"report: {report.resolve()}")
    typer.echo(f"evaluation: {(out / 'scan' / 'eval.html').resolve()}")
    return ev, report


def register(app: typer.Typer) -> None:
    """Add the simulate and evaluate commands to the traffic app."""
    app.command("simulate", help="Simulate request logs with hard cases and labelled campaigns.")(
        simulate_cmd
    )
    app.command("evaluate", help="Score a scan against the logs' ground truth.")(evaluate_cmd)
