"""A small Rich progress display (on stderr) for harvests and training runs; periodic lines
with an ETA instead when stderr is not a terminal (a log file, CI)."""

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
    """A progress bar with a free-text field (loss, tokens/s); a no-op when disabled; lines
    when stderr is not a terminal (`progress.progress_display`)."""
    if not enabled:
        yield _Bar(None, None)
        return
    from distilltrace.progress import progress_display

    with progress_display(info=True) as p:
        yield _Bar(p, p.add_task(description, total=total, info=""))
