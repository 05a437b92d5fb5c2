"""CLI for traffic: the scan commands (scan_cli) and the simulate/evaluate/demo commands (sim_cli)."""

import typer

from distilltrace.traffic import scan_cli, sim_cli

app = typer.Typer(no_args_is_help=True)
scan_cli.register(app)
sim_cli.register(app)
demo = sim_cli.demo
