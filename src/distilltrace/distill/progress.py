"""A small Rich progress display (on stderr) for harvests and training runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class _Bar:
    def __init__(self, progress: Any, task: Any):
        self._p = progress
        self._t = task

    def update(self, completed: int, info: str = "") -> None:
        if self._p is not None:
            self._p.update(self._t, completed=completed, info=info)


@contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[_Bar]:
    """A progress bar with a free-text field (loss, tokens/s); a no-op when disabled."""
    if not enabled:
        yield _Bar(None, None)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=Console(stderr=True),
        transient=False,
    ) as p:
        task = p.add_task(description, total=total, info="")
        yield _Bar(p, task)
