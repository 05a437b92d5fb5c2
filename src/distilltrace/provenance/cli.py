"""CLI for provenance. (Filled in by the provenance work.)"""

import typer

app = typer.Typer(no_args_is_help=True)


def bench() -> None:
    """Benchmark provenance on a zoo."""
    raise NotImplementedError
