"""`distilltrace bench provenance`: the provenance benchmark on a zoo. Options left out take
the library's defaults (ProvenanceConfig; the pool size: BENCH_POOL_SIZE)."""

from __future__ import annotations

from pathlib import Path

import typer

from distilltrace.bench.provenance import BENCH_POOL_SIZE
from distilltrace.provenance.cli import dtype_option, membership_fresh_option
from distilltrace.provenance.config import DEFAULTS


def bench(
    zoo: Path = typer.Option(..., "--zoo", help="Zoo folder (with its manifest)."),
    budget: int | None = typer.Option(
        None, "--budget", help="Suspect queries per test.", show_default=str(DEFAULTS.budget)
    ),
    out: Path = typer.Option(Path("bench-provenance"), "--out", help="Output folder."),
    cache: Path | None = typer.Option(
        None, "--cache", help="Query cache folder (default: OUT/cache)."
    ),
    seed: int | None = typer.Option(None, "--seed", show_default=str(DEFAULTS.seed)),
    pool_size: int | None = typer.Option(None, "--pool-size", show_default=str(BENCH_POOL_SIZE)),
    limit: int | None = typer.Option(
        None, "--limit", help="At most this many suspects (smoke runs)."
    ),
    suspect: list[str] | None = typer.Option(
        None, "--suspect", help="Test only this suspect (repeatable; in the order given)."
    ),
    max_controls: int | None = typer.Option(
        None, "--max-controls", help="At most this many controls per test (seeded subset)."
    ),
    n_sampled: int | None = typer.Option(
        None,
        "--n-sampled",
        help="Prompts with sampled outputs.",
        show_default=str(DEFAULTS.n_sampled),
    ),
    any_controls: bool = typer.Option(
        False,
        "--any-controls",
        help="Use every non-derived model as a control, not only those of the suspect's recipe.",
    ),
    no_baseline: bool = typer.Option(
        False, "--no-baseline", help="Skip the first-words agreement baseline (same budget)."
    ),
    control_rule: str | None = typer.Option(
        None,
        "--control-rule",
        help="all | matched (capability-matched controls only; see provenance test --help).",
        show_default=DEFAULTS.control_rule,
    ),
    served: str | None = typer.Option(
        None,
        "--served",
        help="TEACHER=FILE: the exchanges that teacher served (JSON Lines, as provenance test "
        "--served); adds the harvest_membership test against it for every suspect.",
    ),
    membership_fresh: int | None = membership_fresh_option(),
    dtype: str | None = dtype_option(),
) -> None:
    """Every suspect in the zoo against every teacher, scored against the manifest."""
    from distilltrace.bench.provenance import run_bench
    from distilltrace.progress import progress_display
    from distilltrace.provenance.cli import _cache_file
    from distilltrace.provenance.inputs import check_out_dir

    check_out_dir(out)
    pair = parse_served(served)
    cf = _cache_file(cache if cache is not None else out / "cache")
    with progress_display() as prog:
        task = prog.add_task("bench", total=None)

        def note(msg: str, done: int, total: int) -> None:
            prog.update(task, description=msg, completed=done, total=total)

        res = run_bench(
            zoo,
            budget=budget,
            out=out,
            cache=cf,
            seed=seed,
            pool_size=pool_size,
            limit=limit,
            suspects=suspect or None,
            max_controls=max_controls,
            match_recipe=not any_controls,
            config=DEFAULTS.with_options(
                n_sampled=n_sampled,
                control_rule=control_rule,
                dtype=dtype,
                membership_fresh=membership_fresh,
            ),  # fmt: skip
            progress=note,
            baseline=not no_baseline,
            served=pair,
        )
    typer.echo(res.summary())
    typer.echo(f"wrote {out / 'bench.json'} and {out / 'bench.html'}")


def parse_served(text: str | None) -> tuple[str, Path] | None:
    """TEACHER=FILE, or a readable error."""
    from distilltrace.errors import InputError

    if text is None:
        return None
    teacher, sep, path = text.partition("=")
    if not sep or not teacher or not path:
        raise InputError(f"--served takes TEACHER=FILE, got {text!r}")
    return teacher, Path(path)
