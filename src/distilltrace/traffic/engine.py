"""The engine abstraction: named SQL statements run where the logs live.

The pipeline is one list of named SQL statements written in DuckDB's dialect
(`distilltrace.traffic.pipeline`). An engine runs each statement as
``CREATE TABLE <name> AS <sql>`` and hands back the small reduced tables as pandas
frames. The DuckDB engine runs them as written; a Spark engine transpiles the same
text with sqlglot (`to_dialect`), so there is one definition of the pipeline.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
import sqlglot


def to_dialect(sql: str, dialect: str) -> str:
    """Transpile a pipeline statement from DuckDB SQL to another dialect (e.g. "spark")."""
    if dialect == "duckdb":
        return sql
    if dialect == "spark":  # same meaning, not just same syntax (see spark_engine)
        from distilltrace.traffic.spark_engine import to_spark_sql

        return to_spark_sql(sql)
    out = sqlglot.transpile(sql, read="duckdb", write=dialect, pretty=False)
    return ";\n".join(out)


class Engine(Protocol):
    """Where the SQL runs: a table namespace plus a way to bring small tables back."""

    name: str

    def load_events(self, source: Any) -> Any:
        """Read and validate logs (paths, or a frame the engine takes) into the tables
        ``events`` and ``quarantine``; return the `readers.LoadReport`. Engines build on
        the public reader API: `readers.Loader` (``expect``, ``add_typed``,
        ``add_empty``, ``finish``), `readers.check_readable`, `readers.check_text_start`,
        `readers.detect_format`, `readers.is_arrow`."""

    def run(self, sql: str) -> None:
        """Run a statement with no result (``CREATE [OR REPLACE] TEMP TABLE|VIEW x AS``,
        ``DROP TABLE|VIEW``, ``ALTER TABLE x RENAME TO y``), as the readers issue them."""

    def execute(self, name: str, sql: str, *, many_groups: bool = False) -> None:
        """Materialise ``sql`` as table ``name`` (replacing it). ``many_groups``: its
        aggregates group by nearly unique keys (most groups hold one row), so an engine
        that pre-aggregates before a shuffle may skip that step."""

    def fetch(self, sql: str) -> pd.DataFrame:
        """Run a query and return its (small) result as a pandas frame."""

    def columns(self, table: str) -> list[str]:
        """Column names of a table."""

    def register(self, name: str, frame: pd.DataFrame) -> None:
        """Upload a small pandas frame as table ``name`` (replacing it)."""

    def write_parquet(self, sql: str, path: str) -> None:
        """Write a query's (possibly large) result to a Parquet file."""

    def close(self) -> None:
        """Release resources."""


SPILL_PREFIX = "distilltrace-duckdb-"


def _spill_prefix() -> str:
    """This process's spill-folder prefix: host and PID, so a later run can tell a dead
    run's folder (kill -9 skips the clean-up, and a 10M scan can spill gigabytes)."""
    host = "".join(c for c in socket.gethostname() if c.isalnum())[:24] or "host"
    return f"{SPILL_PREFIX}{host}-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def sweep_stale_spill(root: str | None = None) -> list[Path]:
    """Remove spill folders that this host's dead processes left behind; returns them."""
    mine = _spill_prefix().rsplit("-", 2)[0] + "-"
    gone = []
    for p in Path(root or tempfile.gettempdir()).glob(f"{mine}*-*"):
        pid = p.name[len(mine) :].split("-", 1)[0]
        if p.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p)
    return gone


_SWEPT: set[str] = set()  # temp roots this process has already swept


def _sweep_once() -> None:
    """Sweep the temp root once per process (not at every engine: a benchmark or a test
    session builds hundreds, and the folders of dead processes do not come back)."""
    root = tempfile.gettempdir()
    if root not in _SWEPT:
        _SWEPT.add(root)
        sweep_stale_spill(root)


class DuckDBEngine:
    """The embedded default: an in-process DuckDB database."""

    name = "duckdb"

    def __init__(
        self,
        *,
        threads: int | None = None,
        memory_limit: str | None = None,
        temp_dir: str | None = None,
    ) -> None:
        import duckdb

        _sweep_once()
        self._tmp = tempfile.TemporaryDirectory(prefix=_spill_prefix())
        self.con = duckdb.connect(":memory:")
        self.con.execute("SET TimeZone='UTC'")
        self.con.execute(f"SET temp_directory='{temp_dir or self._tmp.name}'")
        self.con.execute("SET preserve_insertion_order=true")
        if threads:
            self.con.execute(f"SET threads={int(threads)}")
        elif os.environ.get("DISTILLTRACE_THREADS"):
            self.con.execute(f"SET threads={int(os.environ['DISTILLTRACE_THREADS'])}")
        if memory_limit:
            self.con.execute(f"SET memory_limit='{memory_limit}'")
        try:
            self.con.execute("SET enable_progress_bar=false")
        except Exception:  # pragma: no cover - older DuckDB
            pass

    def load_events(self, source: Any) -> Any:
        """Read and validate logs into ``events`` and ``quarantine`` (`readers.load_events`)."""
        from distilltrace.traffic.readers import load_events

        return load_events(self, source)

    def execute(self, name: str, sql: str, *, many_groups: bool = False) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")

    def run(self, sql: str) -> None:
        """Run a statement with no result (engine-specific reader set-up)."""
        self.con.execute(sql)

    def fetch(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def columns(self, table: str) -> list[str]:
        return [r[0] for r in self.con.execute(f"DESCRIBE {table}").fetchall()]

    def register(self, name: str, frame: pd.DataFrame) -> None:
        self.con.register(f"__{name}_df", frame)
        try:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM __{name}_df")
        finally:
            self.con.unregister(f"__{name}_df")

    def write_parquet(self, sql: str, path: str) -> None:
        p = str(path).replace("'", "''")
        self.con.execute(f"COPY ({sql}) TO '{p}' (FORMAT parquet, COMPRESSION zstd)")

    def close(self) -> None:
        try:
            self.con.close()
        finally:
            self._tmp.cleanup()


def make_engine(engine: str | Engine, **opts) -> Engine:
    """An engine by name ("duckdb", "spark") or an Engine instance as given."""
    if not isinstance(engine, str):
        return engine
    if engine == "duckdb":
        opts.pop("master", None)
        return DuckDBEngine(**opts)
    if engine == "spark":
        from distilltrace.traffic.spark_engine import SparkEngine

        return SparkEngine(**opts)
    from distilltrace.errors import InputError

    raise InputError(f"unknown engine {engine!r}: use 'duckdb' or 'spark'")
