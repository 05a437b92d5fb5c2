"""CLI for distill and zoo. (Filled in by the distill work.)"""

import typer

app = typer.Typer(no_args_is_help=True)
zoo_app = typer.Typer(no_args_is_help=True)
