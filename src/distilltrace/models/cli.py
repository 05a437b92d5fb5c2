"""CLI for models: list, generate. (Filled in by the models work.)"""

import typer

app = typer.Typer(no_args_is_help=True)


def generate(model: str, prompt: str) -> None:
    """Generate from MODEL on PROMPT."""
    raise NotImplementedError
