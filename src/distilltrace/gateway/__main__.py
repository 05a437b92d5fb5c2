"""``python -m distilltrace.gateway ...``: the gateway CLI without loading every other
command (starts faster; used by the crash test and the overhead benchmark)."""

from __future__ import annotations

import sys

import typer

from distilltrace.errors import DistilltraceError
from distilltrace.gateway.cli import app


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, prog_name="distilltrace gateway", standalone_mode=True)
    except DistilltraceError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
