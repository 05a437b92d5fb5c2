"""Progress for long work when stderr is not a terminal (a log file, CI): the add_task/update
API of Rich's `Progress`, printed as plain lines with an ETA, so a run of many minutes
never looks hung in a log. On a terminal the callers use Rich's bar itself."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

LINE_EVERY_S = 30.0  # a line at least this often while work advances


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float = 0.0
    fields: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0  # when this description/total began (the ETA's clock)
    last: float = 0.0
    tenth: int = -1


class LineProgress:
    """A line when a task's description changes, at each tenth of its total, and at least
    every `every_s` seconds otherwise (when it is updated). Each line starts with the time
    since the progress began; the ETA counts from the start of the current phase."""

    def __init__(self, every_s: float = LINE_EVERY_S, stream: Any = None):
        self.every_s = every_s
        self.stream = stream
        self.tasks: list[_Task] = []
        self.t0 = time.perf_counter()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        now = time.perf_counter()
        self.tasks.append(_Task(description, total, 0.0, fields, now, now))
        return len(self.tasks) - 1

    def update(
        self,
        task_id: int,
        *,
        description: str | None = None,
        completed: float | None = None,
        total: float | None = None,
        advance: float | None = None,
        **fields: Any,
    ) -> None:
        t, now = self.tasks[task_id], time.perf_counter()
        new_phase = (description is not None and description != t.description) or (
            total is not None and total != t.total
        )
        if new_phase:
            t.started, t.tenth = now, -1
        t.description = t.description if description is None else description
        t.total = t.total if total is None else total
        t.completed = completed if completed is not None else t.completed + (advance or 0)
        t.fields.update(fields)
        tenth = int(10 * t.completed / t.total) if t.total else 0
        if new_phase or tenth > t.tenth or now - t.last >= self.every_s:
            t.tenth, t.last = max(tenth, t.tenth), now
            print(self._line(t, now), file=self.stream or sys.stderr, flush=True)

    def _line(self, t: _Task, now: float) -> str:
        """[time since start] description: done/total (share), the phase's time, its ETA."""
        spent = now - t.started
        text = f"[{now - self.t0:.0f} s] {t.description}"
        if t.total:
            text += f": {t.completed:g}/{t.total:g} ({t.completed / t.total:.0%})"
        text += f", {spent:.0f} s"
        if t.total and t.completed:
            text += f", ETA {spent * (t.total - t.completed) / t.completed:.0f} s"
        info = t.fields.get("info")
        return text + (f", {info}" if info else "")


def progress_display(transient: bool = False, info: bool = False) -> Any:
    """Rich's bar with an ETA on a terminal (on stderr); elsewhere (a log, CI)
    `LineProgress`, the same add_task/update API printing lines. `info`: a free-text
    column, the task's ``info`` field (loss, tokens/s)."""
    if not sys.stderr.isatty():
        return LineProgress()
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    cols = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]
    if info:
        cols.append(TextColumn("{task.fields[info]}"))
    return Progress(*cols, console=Console(stderr=True), transient=transient)
