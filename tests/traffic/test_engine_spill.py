"""DuckDB spill folders: a run killed with -9 cannot clean its own up, so the next run
removes this host's folders whose process is gone, and never a live process's."""

from __future__ import annotations

import os
import subprocess
import sys

from distilltrace.traffic import engine as E


def test_next_engine_sweeps_a_dead_runs_spill_folder_only(tmp_path, monkeypatch):
    monkeypatch.setattr(E.tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    prefix = E._spill_prefix()
    stale = tmp_path / (prefix.replace(str(os.getpid()), dead.stdout.strip()) + "abc")
    live = tmp_path / (prefix + "def")  # this process: alive
    other = tmp_path / "distilltrace-duckdb-otherhost-1-xyz"  # another host's: not ours
    for d in (stale, live, other):
        d.mkdir()
        (d / "spill.tmp").write_bytes(b"x" * 10)
    eng = E.DuckDBEngine()
    try:
        assert not stale.exists() and live.exists() and other.exists()
        spill = eng.con.execute("SELECT current_setting('temp_directory')").fetchone()[0]
        assert os.path.basename(spill).startswith(prefix) and os.path.isdir(spill)
    finally:
        eng.close()
    assert not os.path.exists(spill)
    assert E.sweep_stale_spill(str(tmp_path)) == []  # the live one stays


def test_the_sweep_runs_once_per_process_and_temp_root(tmp_path, monkeypatch):
    monkeypatch.setattr(E.tempfile, "tempdir", str(tmp_path))
    calls = []
    monkeypatch.setattr(E, "sweep_stale_spill", lambda root=None: calls.append(root) or [])
    for _ in range(3):
        E.DuckDBEngine().close()
    assert calls == [str(tmp_path)]
