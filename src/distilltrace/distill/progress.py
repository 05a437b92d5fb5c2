"""A small Rich progress display (on stderr) for harvests and training runs; periodic lines
with an ETA instead when stderr is not a terminal (a log file, CI)."""

from __future__ import annotations

import sys
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
    """A progress bar with a free-text field (loss, tokens/s); a no-op when disabled; lines
    when stderr is not a terminal."""
    if not enabled:
        yield _Bar(None, None)
        return
    if not sys.stderr.isatty():
        from distilltrace.progress import LineProgress

        lines = LineProgress()
        yield _Bar(lines, lines.add_task(description, total=total, info=""))
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
