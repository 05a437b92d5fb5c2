"""`distilltrace bench marks`: the watermark benchmark (distilltrace.bench.marks)."""

from __future__ import annotations

from pathlib import Path

import typer


def bench(
    tier: str = typer.Option("quick", help="quick (tiny teacher, CPU minutes) | full (SmolLM2)."),
    out: Path = typer.Option(Path("bench-marks"), "--out", help="Output folder."),
    seed: int = typer.Option(0),
    set_: str | None = typer.Option(
        None,
        "--set",
        help="JSON object overriding BenchConfig settings, e.g. '{\"n_power\": 200}' or "
        '\'{"train": {"lr": 1e-3}, "mark": {"delta": 2}}\'.',
    ),
) -> None:
    """Benchmark marks: detector calibration and power, radioactivity of distilled students."""
    from distilltrace.bench.marks import load_overrides, run_bench

    res = run_bench(tier=tier, out=out, seed=seed, overrides=load_overrides(set_))
    typer.echo(res.summary())
    typer.echo(f"wrote {out}/result.json and {out}/report.html")
