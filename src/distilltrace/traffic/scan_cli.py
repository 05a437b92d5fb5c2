"""Traffic scan commands. (Being written by the scan work.)"""

import typer


def register(app: typer.Typer) -> None:
    """Add the scan commands to the traffic app."""
