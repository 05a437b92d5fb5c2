"""Traffic simulate/evaluate/demo commands. (Being written by the simulator work.)"""

import typer


def register(app: typer.Typer) -> None:
    """Add the simulate and evaluate commands to the traffic app."""


def demo() -> None:
    """Simulate a week of traffic with hidden campaigns, scan, evaluate, print the report path."""
    raise NotImplementedError
