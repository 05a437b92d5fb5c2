"""Long work shows progress: a Rich bar on a terminal, periodic lines with an ETA elsewhere."""

from __future__ import annotations

import io

from distilltrace import progress as lines
from distilltrace.distill import progress


def _clock(monkeypatch, times):
    it = iter(times)
    monkeypatch.setattr(lines.time, "perf_counter", lambda: next(it))


def test_bar_prints_lines_when_not_a_terminal(capsys, monkeypatch):
    _clock(monkeypatch, [0.0, 0.0, 1.0, 1.5, 2.0, 3.0, 40.0, 41.0, 100.0])
    with progress.progress_bar("harvest m", 100) as bar:  # pytest's stderr is not a tty
        bar.update(5)  # t=1: the first update
        bar.update(6)  # t=2: under a tenth more, under 30 s: silent
        bar.update(10, "loss 2.0")  # t=2: a tenth
        bar.update(12)  # t=3: silent
        bar.update(13)  # t=40: 38 s since the last line
        bar.update(14)  # t=41: silent
        bar.update(100)  # t=100: done
    assert capsys.readouterr().err.splitlines() == [
        "[1 s] harvest m: 5/100 (5%), 1 s, ETA 19 s",
        "[2 s] harvest m: 10/100 (10%), 2 s, ETA 18 s, loss 2.0",
        "[40 s] harvest m: 13/100 (13%), 40 s, ETA 268 s",
        "[100 s] harvest m: 100/100 (100%), 100 s, ETA 0 s",
    ]


def test_line_progress_restarts_its_clock_for_each_phase(monkeypatch):
    _clock(monkeypatch, [0.0, 0.0, 5.0, 6.0, 10.0, 20.0])
    out = io.StringIO()
    with lines.LineProgress(stream=out) as p:
        t = p.add_task("provenance", total=None)  # t=0
        p.update(t, description="suspect a: pilot", completed=0, total=4)  # t=5: new phase
        p.update(t, completed=1)  # t=6: a quarter
        p.update(t, description="suspect a: greedy", completed=0, total=10)  # t=10
        p.update(t, completed=5)  # t=20
    assert out.getvalue().splitlines() == [
        "[5 s] suspect a: pilot: 0/4 (0%), 0 s",
        "[6 s] suspect a: pilot: 1/4 (25%), 1 s, ETA 3 s",
        "[10 s] suspect a: greedy: 0/10 (0%), 0 s",
        "[20 s] suspect a: greedy: 5/10 (50%), 10 s, ETA 10 s",
    ]


def test_disabled_is_silent(capsys):
    with progress.progress_bar("x", 10, enabled=False) as bar:
        bar.update(10)
    assert capsys.readouterr().err == ""


def test_terminal_gets_rich_bar_with_eta_and_info_on_stderr(monkeypatch):
    """On a terminal: Rich's bar on stderr, with an ETA column and, for training runs, the
    free-text info column (one display for the provenance, marks and distill commands)."""
    from rich.progress import Progress, TimeRemainingColumn

    monkeypatch.setattr(lines.sys.stderr, "isatty", lambda: True, raising=False)
    plain, with_info = lines.progress_display(), lines.progress_display(info=True)
    for p in (plain, with_info):
        assert isinstance(p, Progress) and p.console.stderr
        assert any(isinstance(c, TimeRemainingColumn) for c in p.columns)
    assert len(with_info.columns) == len(plain.columns) + 1
    with progress.progress_bar("train", 4) as bar:
        bar.update(2, "loss 1.5")
        assert isinstance(bar._p, Progress)
        task = bar._p.tasks[0]
        assert task.completed == 2 and task.fields["info"] == "loss 1.5"
