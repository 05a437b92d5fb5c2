"""CLI for marks. (Filled in by the marks work.)"""

import typer

app = typer.Typer(no_args_is_help=True)


def bench() -> None:
    """Benchmark marks."""
    raise NotImplementedError
