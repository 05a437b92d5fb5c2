"""CLI for serve. (Filled in by the serve work.)"""


def serve(model: str) -> None:
    """Serve MODEL."""
    raise NotImplementedError
