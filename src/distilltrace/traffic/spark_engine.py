"""The Apache Spark engine: the same pipeline statements, run where the logs live.

`SparkEngine` implements the `distilltrace.traffic.engine.Engine` protocol on a
SparkSession (one it builds from a master URL, ``local[*]`` by default, or one it is
given). Every statement is the DuckDB-dialect text of `distilltrace.traffic.pipeline`
(and of the readers' validation), transpiled by sqlglot with `to_spark_sql`, which
also rewrites the few constructs whose meaning differs between the engines:

- ``hash(x)`` (DuckDB's 64-bit hash, only used for distinct counts) becomes Spark's
  64-bit ``xxhash64(x)``: the values differ, the distinct counts agree unless two
  different prompts collide in 64 bits;
- ``epoch(ts)`` becomes ``unix_micros(ts) / 1e6`` (Spark's ``unix_timestamp`` drops
  the fraction of a second);
- ``avg(x)`` averages ``CAST(x AS DOUBLE)`` (DuckDB returns a DOUBLE for the average
  of a DECIMAL, Spark a DECIMAL rounded to a few digits);
- regular expressions are translated from RE2 (DuckDB) to Java syntax with the same
  meaning (`re2_to_java`).

Tables are cached Spark DataFrames registered as temporary views; the small reduced
tables come back to the driver as pandas frames, where the graph and statistics stage
runs unchanged. Input: Parquet paths Spark can read (local, ``hdfs://``, ``s3a://``,
...), a Spark DataFrame, or a pandas/pyarrow table; validation and quarantine are the
readers' own (`distilltrace.traffic.readers`), run in Spark.

Row-wise statements whose regular expressions search text (the per-request text
features) are the exception: java.util.regex backtracks through every alternative at
every position, so they run, by default, in DuckDB inside Spark's Python workers, one
Arrow batch at a time (`mapInArrow`): the same SQL text, evaluated by the same engine as
`DuckDBEngine`, so the values are DuckDB's own. A chain of such row-wise steps (a view,
then a row-wise statement over it) runs as one DuckDB statement per batch
(`inline_rowwise_view`). Checks anchored at both ends (the readers' validation of ids,
numbers and timestamps) stay in Spark SQL, which runs them without the round trip to
Python. ``row_engine="duckdb"`` sends every row-wise regex statement to DuckDB;
``row_engine="spark"`` (or a worker Python without DuckDB, which ``"auto"`` detects)
keeps them all in Spark SQL with the RE2 -> Java translation below.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import sqlglot
from sqlglot import exp

from distilltrace.errors import DistilltraceError, InputError

log = logging.getLogger(__name__)

#: Default master URL.
DEFAULT_MASTER = "local[*]"


class SparkUnavailableError(DistilltraceError):
    """PySpark or a Java runtime is missing, so the Spark engine cannot start."""


# --------------------------------------------------------------------------- SQL


_W = "[0-9A-Za-z_]"
#: RE2's ``\b`` is an ASCII word boundary; Java's is Unicode-aware (Java 17), so spell it out.
_WORD_BOUNDARY = f"(?:(?<={_W})(?!{_W})|(?<!{_W})(?={_W}))"
_NOT_WORD_BOUNDARY = f"(?:(?<={_W})(?={_W})|(?<!{_W})(?!{_W}))"
#: RE2's ``\s`` is [\t\n\f\r ] (no \v); Java's adds \x0B.
_SPACE = "\\t\\n\\f\\r "


def re2_to_java(pattern: str) -> str:
    """An RE2 regular expression (as DuckDB runs it) rewritten for java.util.regex (Spark)
    so that it matches the same strings at the same positions.

    Differences handled: ``\\b``/``\\B`` (ASCII in RE2, Unicode in Java), ``\\s``/``\\S``
    (RE2 excludes \\v), ``\\v`` (one character in RE2, a class in Java), ``.`` (RE2
    excludes only \\n, Java also \\r, \\u0085, \\u2028, \\u2029), ``$`` (RE2: end of text
    only; Java: also before a final line terminator), and ``[``/``&&`` inside a
    character class (nested classes and intersection in Java, literals in RE2).
    Inline flag groups other than ``(?:`` are left as written.
    """
    flags = re.search(r"\(\?[a-zA-Z]", pattern) is not None
    out: list[str] = []
    i, n = 0, len(pattern)
    in_cls = False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            d = pattern[i + 1]
            if in_cls:
                rep = {"s": _SPACE, "S": f"[^{_SPACE}]", "v": "\\x0B"}.get(d, c + d)
            elif d == "b" and i + 2 < n and _is_word_literal(pattern, i + 2):
                rep = f"(?<!{_W})"  # next character is a word character
            elif d == "b" and i > 0 and _is_word_literal(pattern, i - 1):
                rep = f"(?!{_W})"  # previous character was a word character
            else:
                rep = {
                    "b": _WORD_BOUNDARY,
                    "B": _NOT_WORD_BOUNDARY,
                    "s": f"[{_SPACE}]",
                    "S": f"[^{_SPACE}]",
                    "v": "\\x0B",
                }.get(d, c + d)
            out.append(rep)
            i += 2
            continue
        if in_cls:
            if c == "]":
                in_cls = False
                out.append(c)
            elif c in "[&":
                out.append("\\" + c)
            else:
                out.append(c)
            i += 1
            continue
        if c == "[":
            in_cls = True
            out.append(c)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            if i < n and pattern[i] == "]":
                out.append("\\]")
                i += 1
            continue
        if c == "." and not flags:
            out.append("[^\\n]")
        elif c == "$" and not flags:
            out.append("\\z")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _is_word_literal(pattern: str, j: int) -> bool:
    """True when pattern[j] is a literal ASCII word character (not escaped, not a
    quantifier target that could repeat zero times)."""
    c = pattern[j]
    if not (c.isascii() and (c.isalnum() or c == "_")):
        return False
    if j > 0 and pattern[j - 1] == "\\":
        return False
    nxt = pattern[j + 1] if j + 1 < len(pattern) else ""
    return nxt not in "?*{"


def _translate(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Anonymous) and str(node.this).lower() == "hash":
        return exp.Anonymous(this="xxhash64", expressions=node.expressions)
    if isinstance(node, exp.Anonymous) and str(node.this).lower() == "strlen":
        return exp.Anonymous(this="octet_length", expressions=node.expressions)  # UTF-8 bytes
    if isinstance(node, exp.TimeToUnix):
        micros = exp.Anonymous(this="unix_micros", expressions=[node.this])
        return exp.Div(
            this=exp.Cast(this=micros, to=exp.DataType.build("DOUBLE")),
            expression=exp.Literal.number(1000000),
        )
    if isinstance(node, exp.Avg) and not (
        isinstance(node.this, exp.Cast) and node.this.to.is_type("double")
    ):
        return exp.Avg(this=exp.Cast(this=node.this, to=exp.DataType.build("DOUBLE")))
    if isinstance(node, exp.RegexpLike | exp.RegexpReplace | exp.RegexpExtract):
        pat = node.args.get("expression")
        if isinstance(pat, exp.Literal) and pat.is_string:
            node = node.copy()
            node.set("expression", exp.Literal.string(re2_to_java(pat.this)))
        return node
    return node


def to_spark_sql(sql: str, schemas: dict[str, list[str]] | None = None) -> str:
    """Transpile one DuckDB-dialect pipeline statement to Spark SQL with the same meaning.

    ``schemas`` (table -> columns) lets ``alias.* EXCLUDE (...)`` be expanded, which
    Spark SQL does not have.
    """
    tree = sqlglot.parse_one(sql, read="duckdb")
    if schemas is not None:
        tree = _expand_star_except(tree, schemas)
    tree = tree.transform(_translate)
    return tree.sql(dialect="spark")


def _expand_star_except(tree: exp.Expression, schemas: dict[str, list[str]]) -> exp.Expression:
    for sel in tree.find_all(exp.Select):
        aliases: dict[str, str] = {}
        for t in sel.find_all(exp.Table):
            aliases[t.alias_or_name.lower()] = t.name.lower()
        new = []
        changed = False
        for e in sel.expressions:
            star = e.this if isinstance(e, exp.Column) and isinstance(e.this, exp.Star) else None
            if star is not None and star.args.get("except_") and e.table:
                table = aliases.get(e.table.lower(), e.table.lower())
                drop = {c.name.lower() for c in star.args["except_"]}
                for col in schemas.get(table, []):
                    if col.lower() not in drop:
                        new.append(exp.column(col, table=e.table, quoted=True))
                changed = True
            else:
                new.append(e)
        if changed:
            sel.set("expressions", new)
    return tree


# ----------------------------------------------------- row-wise SQL in DuckDB, per batch

#: Node types that make a statement more than a row-by-row map of one table.
_NOT_ROWWISE = (
    exp.AggFunc,
    exp.Window,
    exp.Join,
    exp.Group,
    exp.Order,
    exp.Limit,
    exp.Distinct,
    exp.Union,
    exp.Having,
    exp.Qualify,
    exp.CTE,
)
_REGEX_NODES = (exp.RegexpLike, exp.RegexpReplace, exp.RegexpExtract, exp.RegexpSplit)
_ROW_ENGINES = ("auto", "duckdb", "spark")


def rowwise_regex_source(sql: str) -> tuple[str, list[str] | None] | None:
    """``(table, columns)`` when a DuckDB-dialect statement maps the rows of one table one
    by one (no aggregate, window, join, union, sort or limit) and uses a regular
    expression, else None. ``columns``: the table columns it may read (None: all of them,
    when the outermost select has a ``*``)."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    if not isinstance(tree, exp.Select) or not any(tree.find_all(*_REGEX_NODES)):
        return None
    if any(tree.find_all(*_NOT_ROWWISE)):
        return None
    tables = {t.name.lower() for t in tree.find_all(exp.Table)}
    if len(tables) != 1:
        return None
    star = any(isinstance(e, exp.Star) or isinstance(e.this, exp.Star) for e in tree.expressions)
    cols = None if star else sorted({c.name.lower() for c in tree.find_all(exp.Column)})
    return tables.pop(), cols


def searches_text(sql: str) -> bool:
    """Whether a statement uses a regular expression that is not anchored at both ends
    (``^...$``): one that java.util.regex tries at every position of the text, through
    every alternative (the per-request text features). A pattern anchored at both ends
    (the readers' checks of ids, numbers and timestamps) is tried at one position only,
    and Spark SQL runs it without leaving the JVM."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    for node in tree.find_all(*_REGEX_NODES):
        pat = node.args.get("expression")
        if not (isinstance(pat, exp.Literal) and pat.is_string):
            return True
        if not _anchored(pat.this):
            return True
    return False


def _anchored(p: str) -> bool:
    """``^...$`` with no alternative outside a group or class (``^a|b$`` searches)."""
    if not (p.startswith("^") and p.endswith("$")) or p.endswith("\\$"):
        return False
    depth, cls, i = 0, False, 0
    while i < len(p):
        c = p[i]
        if c == "\\":
            i += 2
            continue
        if cls:
            cls = c != "]"
        elif c == "[":
            cls = True
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "|" and depth == 0:
            return False
        i += 1
    return True


def inline_rowwise_view(sql: str, views: dict[str, str]) -> str | None:
    """``sql`` with its one table replaced by that view's own statement, when ``sql``
    maps the rows of one table one by one and that table is a row-wise view in
    ``views`` (name -> DuckDB-dialect statement); else None.

    The composed statement reads the view's base table directly, so a chain of
    row-wise steps (validation, then the valid or the quarantined rows, then events)
    runs as one DuckDB statement per Arrow batch, and only its own columns leave the
    Python workers."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    if not isinstance(tree, exp.Select) or any(tree.find_all(*_NOT_ROWWISE)):
        return None
    tables = list(tree.find_all(exp.Table))
    if len(tables) != 1 or tables[0].name.lower() not in views:
        return None
    t = tables[0]
    inner = sqlglot.parse_one(views[t.name.lower()], read="duckdb")
    t.replace(exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier(t.name))))
    return tree.sql(dialect="duckdb")


def _duckdb_batches(sql: str, table: str, out_schema):
    """A `mapInArrow` function: ``sql`` run by DuckDB on each Arrow batch registered as
    ``table``. A closure (pickled by value), so workers need only duckdb and pyarrow."""

    def run(batches):
        import duckdb
        import pyarrow as pa

        con = duckdb.connect(":memory:")
        con.execute("SET threads=1")
        con.execute("SET TimeZone='UTC'")
        for b in batches:
            if b.num_rows == 0:
                continue
            con.register(table, pa.Table.from_batches([b]))
            rel = con.sql(sql)
            got = rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.arrow()
            if hasattr(got, "read_all"):
                got = got.read_all()
            con.unregister(table)
            cols = []
            for name, f in zip(out_schema.names, out_schema, strict=True):
                c = got.column(name)
                if pa.types.is_uint64(c.type):  # DuckDB's hash: the same 64 bits, signed
                    c = pa.chunked_array([ch.view(pa.int64()) for ch in c.chunks], pa.int64())
                if c.type != f.type:
                    c = c.cast(f.type)
                cols.append(c)
            yield from pa.Table.from_arrays(cols, schema=out_schema).to_batches()
        con.close()

    return run


def _arrow_of(rel):
    """A DuckDB relation's rows as a pyarrow Table (DuckDB 1.x and 2.x spellings)."""
    if hasattr(rel, "to_arrow_table"):
        return rel.to_arrow_table()
    got = rel.arrow()
    return got.read_all() if hasattr(got, "read_all") else got


def _probe_worker_duckdb(spark) -> str | None:
    """The DuckDB version Spark's Python workers import (None when they cannot)."""

    def probe(batches):
        import pyarrow as pa

        try:
            import duckdb

            v = duckdb.__version__
        except Exception:  # noqa: BLE001 - any import failure means "no DuckDB here"
            v = ""
        for _ in batches:
            pass
        yield pa.RecordBatch.from_pydict({"v": [v]})

    try:
        rows = spark.range(1, numPartitions=1).mapInArrow(probe, "v string").collect()
    except Exception:  # noqa: BLE001 - no Python workers, pyarrow missing, ...
        return None
    return (rows[0]["v"] or None) if rows else None


def _to_arrow_schema(schema, *, large: bool):
    """pyspark's Spark -> Arrow schema (UTC timestamps; large strings when Spark uses them),
    with the keyword arguments the installed PySpark has."""
    import inspect

    from pyspark.sql.pandas.types import to_arrow_schema

    params = inspect.signature(to_arrow_schema).parameters
    kw: dict[str, Any] = {}
    if "timezone" in params:
        kw["timezone"] = "UTC"
    if "prefers_large_types" in params:
        kw["prefers_large_types"] = large
    return to_arrow_schema(schema, **kw)


def _signed(t):
    """Arrow type Spark can hold for a DuckDB result column type (unsigned -> signed)."""
    import pyarrow as pa

    if pa.types.is_uint64(t):
        return pa.int64()
    if pa.types.is_uint32(t):
        return pa.int64()
    if pa.types.is_uint16(t):
        return pa.int32()
    if pa.types.is_uint8(t):
        return pa.int16()
    if pa.types.is_string_view(t):
        return pa.string()
    return t


# ------------------------------------------------------------------ availability


def _java_version(java: str) -> str:
    """What ``java -version`` prints ("" when it cannot run)."""
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stderr + out.stdout


def _java_major(text: str) -> int | None:
    """The major Java version in a ``java -version`` output."""
    m = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


def check_spark_available() -> tuple[str, str]:
    """Raise SparkUnavailableError (one line: what to install) unless PySpark and a
    suitable Java runtime are present; return that runtime (path, ``-version`` output)."""
    try:
        import pyspark
    except ImportError:
        raise SparkUnavailableError(
            "the Spark engine needs PySpark: pip install 'distilltrace[spark]' (or pip install pyspark)"
        ) from None
    need = 17 if int(pyspark.__version__.split(".")[0]) >= 4 else 8
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).exists():
        raise SparkUnavailableError(
            f"the Spark engine needs Java {need} or newer: install a JDK/JRE "
            "(e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        )
    text = _java_version(java)
    major = _java_major(text)
    if major is None or major < need:
        found = f"Java {major}" if major else f"no working Java at {java}"
        raise SparkUnavailableError(
            f"PySpark {pyspark.__version__} needs Java {need} or newer, found {found}: "
            "install openjdk-17-jre-headless or point JAVA_HOME at a newer JDK"
        )
    return java, text


_JVM_OPTIONS = "spark.driver.extraJavaOptions"

#: Settings of every session the engine builds.
_SESSION_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.log.level": "ERROR",
}


def local_settings(
    tmp_dir: str, memory_limit: str | None = None, shuffle_partitions: int | None = None
) -> dict[str, str]:
    """The settings of a local session the engine builds (its scratch files in ``tmp_dir``);
    its Python workers run this interpreter (with its duckdb and pyarrow)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    cores = os.cpu_count() or 2
    return {
        **_SESSION_SETTINGS,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.sql.shuffle.partitions": str(shuffle_partitions or max(4, 2 * cores)),
        "spark.local.dir": tmp_dir,
        "spark.driver.memory": _spark_mem(memory_limit) if memory_limit else "4g",
        # fewer, larger Arrow batches for the row-wise statements run by DuckDB in the
        # Python workers; an uncompressed columnar cache (local mode: one machine's
        # memory, CPU is what is short)
        "spark.sql.execution.arrow.maxRecordsPerBatch": "50000",
        "spark.sql.inMemoryColumnarStorage.compressed": "false",
        # a user's own JVM options (conf) replace these
        _JVM_OPTIONS: LOCAL_JVM_OPTIONS,
    }


#: The local driver's JVM options: a batch job on one machine wants the throughput
#: collector, not the low-pause default (G1), whose write barriers slow every row (-4% on
#: the 3M scan, docs/benchmarks.md).
LOCAL_JVM_OPTIONS = "-XX:+UseParallelGC"


def prepare_class_archive(conf: dict[str, str] | None = None) -> Path | None:
    """Build (when missing) the class archive a local `SparkEngine` with ``conf`` maps, so
    that its first start does not pay for the build (about 25 s, once per install); None
    when there is none (`spark_cds`)."""
    return _class_archive(
        check_spark_available(), {_JVM_OPTIONS: LOCAL_JVM_OPTIONS, **(conf or {})}
    )


def _class_archive(java: tuple[str, str], settings: dict[str, str]) -> Path | None:
    """The class archive (`spark_cds`) for a local JVM with ``settings``; None when this
    process already runs a JVM (PySpark starts one per process), the options manage
    class sharing themselves, or anything about the archive fails (it only saves time)."""
    from pyspark import SparkContext

    from distilltrace.traffic import spark_cds

    opts = settings.get(_JVM_OPTIONS, "")
    if SparkContext._gateway is not None or any(
        k in opts for k in ("SharedArchiveFile", "Xshare", "ArchiveClassesAtExit")
    ):
        return None
    try:
        return spark_cds.archive_for(java[0], java[1], opts)
    except Exception as e:  # noqa: BLE001 - an unreadable cache folder, an odd install, ...
        log.warning("starting Spark without a class archive: %s", e)
        return None


def _start_session(master: str, app_name: str, settings: dict[str, str], archive: Path | None):
    """(A SparkSession for ``master`` with ``settings``, the class archive its JVM maps):
    ``archive`` when given, but a JVM that does not start with it starts again without it
    (and the archive is discarded)."""
    from pyspark.sql import SparkSession

    from distilltrace.traffic import spark_cds

    conf = dict(settings)
    if archive is not None:
        conf[_JVM_OPTIONS] = (
            f"{conf.get(_JVM_OPTIONS, '')} {spark_cds.use_options(archive)}".strip()
        )
    b = SparkSession.builder.master(master).appName(app_name)
    for k, v in conf.items():
        b = b.config(k, v)
    try:
        return b.getOrCreate(), archive
    except Exception as e:  # noqa: BLE001 - JVM start-up failures come in many types
        if archive is not None:
            log.warning("the Spark JVM did not start with class archive %s: discarded", archive)
            spark_cds.discard(archive)
            return _start_session(master, app_name, settings, None)
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SparkUnavailableError(f"could not start Spark (master {master}): {msg}") from None


def _is_spark_df(obj: Any) -> bool:
    return type(obj).__module__.startswith("pyspark.sql") and type(obj).__name__ == "DataFrame"


# ------------------------------------------------------------------------ engine


class SparkEngine:
    """Runs the pipeline on Apache Spark (local mode or a cluster)."""

    name = "spark"

    def __init__(
        self,
        spark: Any | None = None,
        *,
        master: str | None = None,
        conf: dict[str, str] | None = None,
        threads: int | None = None,
        memory_limit: str | None = None,
        shuffle_partitions: int | None = None,
        app_name: str = "distilltrace-traffic-scan",
        temp_dir: str | None = None,
        row_engine: str = "auto",
        class_archive: bool = True,
    ) -> None:
        """Use ``spark`` (an existing SparkSession, left running on close) or build one
        for ``master`` (``local[*]``, ``local[N]``, ``spark://host:7077``, ``yarn``, ...).

        ``threads`` sets N in ``local[N]`` when no master is given; ``memory_limit``
        (e.g. "6GB") the driver memory of a session built here; ``conf`` any other
        Spark settings.

        ``row_engine``: where row-wise statements with regular expressions run:
        ``"duckdb"`` (DuckDB in the Python workers, per Arrow batch; the workers need
        the driver's duckdb and pyarrow versions), ``"spark"`` (Spark SQL, regexes
        translated to Java), or ``"auto"``: DuckDB when the workers have it, for the
        statements whose regexes search text (`searches_text`); Spark SQL for checks
        anchored at both ends and when the workers lack DuckDB.

        ``class_archive``: when this starts a local session's JVM, map the archive of
        Spark's classes (`distilltrace.traffic.spark_cds`, built on first use), which
        starts the JVM and its first statements about 3 s sooner.
        """
        if row_engine not in _ROW_ENGINES:
            raise InputError(f"unknown row engine {row_engine!r}: use auto, duckdb or spark")
        self._row_engine = row_engine
        self._worker_duckdb: str | None | bool = False  # not probed yet
        self._tables: dict[str, Any] = {}
        self._views: set[str] = set()
        self._rowwise_views: dict[str, str] = {}  # view -> its DuckDB statement
        #: the class archive (`spark_cds`) this engine's JVM maps, if it started one
        self.class_archive: Path | None = None
        self._prefix = "dt_" + uuid.uuid4().hex[:8]
        self._tmp = tempfile.TemporaryDirectory(prefix="distilltrace-spark-", dir=temp_dir)
        if spark is None:
            java = check_spark_available()
            from pyspark.sql import SparkSession

            if master is None:
                master = f"local[{int(threads)}]" if threads else DEFAULT_MASTER
            local = master.startswith("local")
            if local:
                settings = local_settings(self._tmp.name, memory_limit, shuffle_partitions)
            else:
                settings = dict(_SESSION_SETTINGS)
                if shuffle_partitions:
                    settings["spark.sql.shuffle.partitions"] = str(shuffle_partitions)
                if memory_limit:
                    settings["spark.executor.memory"] = _spark_mem(memory_limit)
            settings.update(conf or {})
            existing = SparkSession.getActiveSession()
            archive = _class_archive(java, settings) if class_archive and local else None
            self.spark, self.class_archive = _start_session(master, app_name, settings, archive)
            # a session that was already running (getOrCreate returns it) is left running
            self._own = existing is None
            if (
                self._own
                and local
                and os.environ.get("PYSPARK_PYTHON") == sys.executable
                and "spark.pyspark.python" not in settings
            ):
                import duckdb

                # local Python workers run this interpreter: no need to ask them
                self._worker_duckdb = duckdb.__version__
            self._saved_conf: dict[str, str | None] = {}
        else:
            self.spark = spark
            self._own = False
            self._saved_conf = {}
            for k, v in {
                "spark.sql.session.timeZone": "UTC",
                "spark.sql.execution.arrow.pyspark.enabled": "true",
                **(conf or {}),
            }.items():
                self._saved_conf[k] = self.spark.conf.get(k, None)
                self.spark.conf.set(k, v)
            if shuffle_partitions:
                self._saved_conf["spark.sql.shuffle.partitions"] = self.spark.conf.get(
                    "spark.sql.shuffle.partitions", None
                )
                self.spark.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions))
        self.master = self.spark.sparkContext.master

    # -- SQL
    def to_spark(self, sql: str) -> str:
        """Transpile a DuckDB-dialect statement, expanding ``* EXCLUDE`` from known tables."""
        schemas = {}
        for t in sqlglot.parse_one(sql, read="duckdb").find_all(exp.Table):
            name = t.name.lower()
            if name in self._tables or name in self._views:
                schemas[name] = self.columns(name)
        return to_spark_sql(sql, schemas)

    def _df(self, sql: str, name: str | None = None):
        """``sql`` as a DataFrame; ``name``: a view being defined by it (a row-wise
        view run by DuckDB is remembered, so row-wise statements over it compose)."""
        if self._row_engine != "spark":
            fused = inline_rowwise_view(sql, self._rowwise_views)
            df = self._rowwise_df(fused) if fused is not None else None
            if df is None:
                fused, df = sql, self._rowwise_df(sql)
            if df is not None:
                if name is not None:
                    self._rowwise_views[name] = fused
                return df
        return self.spark.sql(self.to_spark(sql))

    @property
    def row_engine(self) -> str:
        """Where row-wise regex statements run: "duckdb" or "spark" (probed on first use)."""
        if self._row_engine == "spark":
            return "spark"
        return "duckdb" if self._duckdb_workers() else "spark"

    def _duckdb_workers(self) -> bool:
        """Whether Spark's Python workers import the driver's DuckDB version (asked once)."""
        if self._worker_duckdb is False:
            import duckdb

            got = _probe_worker_duckdb(self.spark)
            self._worker_duckdb = got
            if got != duckdb.__version__ and self._row_engine == "duckdb":
                raise SparkUnavailableError(
                    f"row_engine='duckdb' needs duckdb {duckdb.__version__} in Spark's Python "
                    f"workers, found {got or 'none'}: install it there (or set PYSPARK_PYTHON) "
                    "or use row_engine='spark'"
                )
        import duckdb

        return self._worker_duckdb == duckdb.__version__

    def _rowwise_df(self, sql: str):
        """``sql`` as a DataFrame computed by DuckDB per Arrow batch, when it is a row-wise
        regex statement over one table and the workers have DuckDB; else None."""
        src = rowwise_regex_source(sql)
        if src is None or (self._row_engine == "auto" and not searches_text(sql)):
            return None
        if not self._duckdb_workers():
            return None
        table, cols = src
        base = self.spark.table(table)
        for use in ([c for c in base.columns if c.lower() in cols] if cols else None, None):
            df = base.select(*[f"`{c}`" for c in use]) if use else base
            schemas = self._duckdb_schemas(sql, table, df.schema)
            if schemas is not None:
                arrow_out, spark_out = schemas
                return df.mapInArrow(_duckdb_batches(sql, table, arrow_out), spark_out)
        return None

    def _duckdb_schemas(self, sql: str, table: str, schema):
        """(Arrow, Spark) schemas of ``sql``'s result, from DuckDB run on no rows of
        ``schema``; None when DuckDB or Spark cannot type it (Spark SQL runs it then)."""
        import duckdb
        import pyarrow as pa
        from pyspark.sql.pandas.types import from_arrow_schema

        try:
            empty = _to_arrow_schema(schema, large=False).empty_table()
            con = duckdb.connect(":memory:")
            try:
                con.execute("SET TimeZone='UTC'")
                con.register(table, empty)
                got = _arrow_of(con.sql(sql))
            finally:
                con.close()
            arrow = pa.schema([pa.field(f.name, _signed(f.type)) for f in got.schema])
            spark_schema = from_arrow_schema(arrow, prefer_timestamp_ntz=True)
            large = str(
                self.spark.conf.get("spark.sql.execution.arrow.useLargeVarTypes", "false")
            ).lower()
            arrow = _to_arrow_schema(spark_schema, large=large == "true")
        except Exception:  # noqa: BLE001 - a type either side lacks: Spark SQL runs it
            return None
        return arrow, spark_schema

    def _store(self, name: str, df) -> None:
        from pyspark import StorageLevel

        old = self._tables.pop(name, None)
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
        df.createOrReplaceTempView(name)
        # built now, in a job of its own: left to its first use, a table is built inside
        # the plan of whatever reads it first, next to the other tables that plan reads,
        # and the scan took 12 s longer at 3M (docs/benchmarks.md)
        df.count()
        if old is not None:
            old.unpersist()
        self._tables[name] = df
        self._views.discard(name)
        self._rowwise_views.pop(name, None)

    def execute(self, name: str, sql: str, *, many_groups: bool = False) -> None:
        with self._many_groups(many_groups):
            self._store(name.lower(), self._df(sql))

    @contextmanager
    def _many_groups(self, on: bool = True):
        """Aggregates without the partial (pre-shuffle) step while inside, when ``on``:
        where nearly every group is one row, that step builds a hash table as large as
        its input and reduces nothing (the template frames: 2.1-2.3 s against 3.4-3.7 s
        at 3M; the ids' distinct count: 1.8-2.0 s against 2.6-3.1 s)."""
        if not on:
            yield
            return
        key = "spark.sql.execution.bypassPartialAggregation"
        before = self.spark.conf.get(key, None)
        self.spark.conf.set(key, "true")
        try:
            yield
        finally:
            self._restore_conf(key, before)

    def _restore_conf(self, key: str, value: str | None) -> None:
        """Put a session setting back (``None``: it was not set)."""
        if value is None:
            self.spark.conf.unset(key)
        else:
            self.spark.conf.set(key, value)

    def view(self, name: str, sql: str) -> None:
        """Define a (lazy) view."""
        name = name.lower()
        self._rowwise_views.pop(name, None)
        self._df(sql, name).createOrReplaceTempView(name)
        self._views.add(name)

    def run(self, sql: str) -> None:
        """Run a DuckDB-dialect statement with no result (CREATE ... AS, DROP, ALTER ... RENAME)."""
        s = sql.strip().rstrip(";")
        m = re.match(
            r"CREATE\s+(?:OR\s+REPLACE\s+)?TEMP(?:ORARY)?\s+(TABLE|VIEW)\s+(\w+)\s+AS\s+(.*)$",
            s,
            re.S | re.I,
        )
        if m:
            kind, name, body = m.groups()
            (self.execute if kind.upper() == "TABLE" else self.view)(name, body)
            return
        m = re.match(r"DROP\s+(?:TABLE|VIEW)\s+(?:IF\s+EXISTS\s+)?(\w+)$", s, re.I)
        if m:
            self.drop(m.group(1))
            return
        m = re.match(r"ALTER\s+TABLE\s+(\w+)\s+RENAME\s+TO\s+(\w+)$", s, re.I)
        if m:
            src, dst = m.group(1).lower(), m.group(2).lower()
            df = self._tables.pop(src)
            self.spark.catalog.dropTempView(src)
            old = self._tables.pop(dst, None)
            if old is not None:
                old.unpersist()
            df.createOrReplaceTempView(dst)
            self._tables[dst] = df
            return
        self.spark.sql(self.to_spark(s))

    def drop(self, name: str) -> None:
        """Drop a table or view."""
        name = name.lower()
        df = self._tables.pop(name, None)
        if df is not None:
            df.unpersist()
        self._views.discard(name)
        self._rowwise_views.pop(name, None)
        self.spark.catalog.dropTempView(name)

    def fetch(self, sql: str) -> pd.DataFrame:
        """A query's (small) result. One ending in ``ORDER BY`` output columns is fetched
        unsorted and sorted here (a stable sort, NULLs last as in DuckDB): Spark's global
        sort costs a sampling pass and a sort job (the 3M scan's six reduced tables came
        back in 1.8 s instead of 4.5 s). Sort keys of a floating type that hold a NULL or
        NaN (which pandas cannot tell apart) are left to Spark."""
        df, order = self._unsorted(sql)
        if order is None:
            return df.toPandas()
        out = df.toPandas()
        cols = [c for c, _ in order]
        floats = [c for c in cols if pd.api.types.is_float_dtype(out[c])]
        if any(out[c].isna().any() for c in floats):
            return _decimals_to_double(self._df(sql)).toPandas()
        return out.sort_values(
            cols,
            ascending=[not desc for _, desc in order],
            kind="stable",
            na_position="last",
            ignore_index=True,
        )

    def _unsorted(self, sql: str) -> tuple[Any, list[tuple[str, bool]] | None]:
        """``(rows, order)``: for ``sql`` ending in ``ORDER BY`` output columns, its rows
        unsorted and ``[(column as Spark spells it, descending), ...]``, so that the caller
        sorts them; else ``sql``'s own rows and None."""
        split = _split_order(sql)
        if split is not None:
            body, keys = split
            df = _decimals_to_double(self._df(body))
            cols = _order_columns(df, keys)
            if cols is not None:
                return df, [(c, desc) for c, (_, desc) in zip(cols, keys, strict=True)]
        return _decimals_to_double(self._df(sql)), None

    def columns(self, table: str) -> list[str]:
        return list(self.spark.table(table).columns)

    def register(self, name: str, frame: Any) -> None:
        """Upload a small pandas frame (or pyarrow table) as table ``name``."""
        self._store(name.lower(), self._from_local(frame))

    def _from_local(self, frame: Any):
        import pyarrow as pa

        tab = (
            frame
            if isinstance(frame, pa.Table)
            else pa.Table.from_pandas(frame, preserve_index=False)
        )
        tab = tab.replace_schema_metadata(None)
        return self.spark.createDataFrame(tab)

    def write_parquet(self, sql: str, path: str) -> None:
        """Write a query's result to one Parquet file on the driver (rows in query order).

        Local mode: every task writes its rows to an uncompressed part file, and DuckDB
        on the driver reads the parts in partition order and writes the one zstd file,
        sorting it when the query ends in ``ORDER BY`` output columns (the same sort as
        `DuckDBEngine`, NULLs last). Spark sorting in one task and compressing there took
        4.4-4.6 s for the 3M scan's requests.parquet, against 2.9-3.4 s
        (docs/benchmarks.md). Elsewhere the rows come back to the driver as Arrow."""
        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if self.master.startswith("local") and self._write_parts_then_duckdb(sql, dest):
            return
        import pyarrow.parquet as pq

        df = _decimals_to_double(self._df(sql))
        if hasattr(df, "toArrow"):  # PySpark >= 4.0
            tab = df.toArrow()
        else:  # pragma: no cover - PySpark 3.5
            import pyarrow as pa

            tab = pa.Table.from_pandas(df.toPandas(), preserve_index=False)
        pq.write_table(tab, str(dest), compression="zstd")

    def _write_parts_then_duckdb(self, sql: str, dest: Path) -> bool:
        """`write_parquet` in local mode; False when Spark wrote no part file (no rows)."""
        import duckdb

        # without an order to leave to DuckDB, Spark sorts (range partitions in part order)
        df, keys = self._unsorted(sql)
        order = (
            ""
            if keys is None
            else " ORDER BY "
            + ", ".join(
                f"{_duck_ident(c)} {'DESC' if desc else 'ASC'} NULLS LAST" for c, desc in keys
            )
        )
        parts_dir = Path(self._tmp.name) / f"write-{uuid.uuid4().hex[:8]}"
        try:
            df.write.option("compression", "none").parquet(str(parts_dir))
            parts = sorted(parts_dir.glob("part-*.parquet"))
            if not parts:  # pragma: no cover - Spark writes a part even for no rows
                return False
            files = ", ".join(_duck_str(p) for p in parts)
            con = duckdb.connect(":memory:")
            try:
                con.execute("SET preserve_insertion_order=true")
                con.execute(f"SET temp_directory={_duck_str(parts_dir / 'duckdb')}")
                con.execute(
                    f"COPY (SELECT * FROM read_parquet([{files}]){order}) TO {_duck_str(dest)} "
                    "(FORMAT parquet, COMPRESSION zstd)"
                )
            finally:
                con.close()
        finally:
            shutil.rmtree(parts_dir, ignore_errors=True)
        return True

    def close(self) -> None:
        try:
            for name in list(self._tables):
                self.drop(name)
            for name in list(self._views):
                self.drop(name)
            for k, v in self._saved_conf.items():
                self._restore_conf(k, v)
        finally:
            if self._own:
                self.spark.stop()
            self._tmp.cleanup()

    # -- input
    def load_events(self, source: Any):
        """Read and validate logs into ``events`` and ``quarantine`` (see `readers.load_events`).

        ``source``: a Spark DataFrame, a pandas DataFrame or pyarrow Table, or Parquet
        paths (files or folders, any URL scheme Spark reads: hdfs://, s3a://, ...). Each
        source's record count is taken apart from the validation (the Parquet footers of
        a local file, else Spark's count) and must equal valid + quarantined rows.
        """
        from distilltrace.traffic import readers

        loader = readers.Loader(_DuckLike(self), self._tmp.name)
        if isinstance(source, str | os.PathLike):
            source = [source]
        if _is_spark_df(source) or isinstance(source, pd.DataFrame) or readers.is_arrow(source):
            df = source if _is_spark_df(source) else self._from_local(source)
            rows = df.count() if _is_spark_df(source) else _local_rows(source)
            loader.expect(0, "<relation>", rows)
            self._add_df(loader, 0, "<relation>", _with_row_index(df))
        else:
            paths = [str(p) for p in source]
            if not paths:
                raise InputError("no log files given")
            for i, p in enumerate(paths):
                self._add_path(loader, i, p)
        with self._many_groups():  # the loader's aggregates group by request id
            loader.finish()
        return loader.report

    def _add_path(self, loader, i: int, p: str) -> None:
        from distilltrace.traffic import readers

        remote = re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", p) is not None and not p.startswith(
            "file://"
        )
        footer_rows, nanos, groups = None, None, 0
        if not remote:
            local = Path(p[len("file://") :] if p.startswith("file://") else p)
            if not local.exists():
                raise InputError(f"log file not found: {local}")
            if local.is_file():
                readers.check_readable(local)
                if local.stat().st_size == 0:
                    loader.add_empty(i, local)
                    return
                fmt = readers.detect_format(local)
                if fmt != "parquet":
                    readers.check_text_start(local, jsonl=fmt == "jsonl")  # not binary junk
                    raise InputError(
                        f"{local}: the Spark engine reads Parquet (or a Spark DataFrame); "
                        f"this looks like {fmt.upper()}: convert it to Parquet or use --engine duckdb"
                    )
                footer_rows, groups = _footer_rows(local)
                nanos = _nano_columns(local)
            p = str(local.resolve())
        try:
            df = self._read_parquet(p, nanos)
            df = df.select("*", "_metadata.row_index")
            df = df.withColumnRenamed("row_index", "__row")
            rows = footer_rows if footer_rows is not None else df.count()
        except Exception as e:  # noqa: BLE001 - Spark raises analysis/IO errors of many types
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise InputError(f"cannot read {p} as Parquet: {msg}") from None
        k = read_slices(groups, self.spark.sparkContext.defaultParallelism)
        if k > 1:  # row groups cannot be split: k scans, each of every k-th row
            parts = [df.where(f"__row % {k} = {j}") for j in range(k)]
            df = functools.reduce(lambda a, b: a.unionAll(b), parts)
        loader.expect(i, p, rows)
        self._add_df(loader, i, p, df)

    def _read_parquet(self, p: str, nanos: list[str] | None):
        """``p`` read by Spark, nanosecond timestamps included (what pandas writes):
        Spark reads those only as longs (``spark.sql.legacy.parquet.nanosAsLong``), so
        they are turned into timestamps here, rounded to the microsecond half away from
        zero as DuckDB casts them. ``nanos``: the nanosecond columns from the file's
        footer; None (a folder, a remote path) when unknown: then the schema's timestamp
        columns that Spark reads as longs while the setting is on."""
        flag = "spark.sql.legacy.parquet.nanosAsLong"
        if nanos:
            self._set_conf(flag, "true")
        try:
            df = self.spark.read.parquet(p)
        except Exception as e:  # noqa: BLE001 - Spark's AnalysisException
            if "NANOS" not in str(e) or nanos is not None:
                raise
            self._set_conf(flag, "true")
            df = self.spark.read.parquet(p)
        if nanos is None and str(self.spark.conf.get(flag, "false")).lower() == "true":
            from pyspark.sql.types import LongType

            from distilltrace.traffic import schema

            nanos = [
                f.name
                for f in df.schema.fields
                if schema.ALL.get(f.name) == "timestamp" and isinstance(f.dataType, LongType)
            ]
        if not nanos:
            return df
        from pyspark.sql import functions as F

        cols = []
        for f in df.schema.fields:
            c = f"`{f.name}`"
            if f.name in nanos:
                cols.append(
                    F.expr(
                        f"timestamp_micros({c} div 1000 + CASE WHEN {c} % 1000 >= 500 THEN 1 "
                        f"WHEN {c} % 1000 <= -500 THEN -1 ELSE 0 END)"
                    ).alias(f.name)
                )
            else:
                cols.append(F.col(c))
        return df.select(*cols)

    def _set_conf(self, key: str, value: str) -> None:
        """Set a session setting for this engine's life (restored on close)."""
        if key not in self._saved_conf:
            self._saved_conf[key] = self.spark.conf.get(key, None)
        self.spark.conf.set(key, value)

    def _add_df(self, loader, idx: int, name: str, df) -> None:
        view = f"__input_{idx}"
        df.createOrReplaceTempView(view)
        self._views.add(view)
        types = {f.name: _duck_type(f.dataType) for f in df.schema.fields if f.name != "__row"}
        # 1-based row positions, as the DuckDB reader's
        loader.add_typed(idx, Path(name), view, types, row_expr="__row + 1")


def _local_rows(obj: Any) -> int:
    return len(obj) if isinstance(obj, pd.DataFrame) else int(obj.num_rows)


def _nano_columns(path: Path) -> list[str] | None:
    """Columns of a local Parquet file stored as nanosecond timestamps (None: unreadable)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        sch = pq.read_schema(path)
    except Exception:  # noqa: BLE001 - Spark reports the error
        return None
    return [f.name for f in sch if pa.types.is_timestamp(f.type) and f.type.unit == "ns"]


def _footer_rows(path: Path) -> tuple[int | None, int]:
    """Rows and row groups in a local Parquet file's footer ((None, 0) when pyarrow cannot
    read it: Spark's count is used, and Spark's error, if any, is the one reported)."""
    import pyarrow.parquet as pq

    try:
        md = pq.read_metadata(path)
        return int(md.num_rows), int(md.num_row_groups)
    except Exception:  # noqa: BLE001 - any unreadable footer
        return None, 0


#: At most this many scans of one file (each decodes every row group once more).
MAX_READ_SLICES = 4


def read_slices(groups: int, cores: int) -> int:
    """How many scans (each of every k-th row) to read a Parquet file of ``groups`` row
    groups with, on ``cores`` cores: Spark splits a file only between row groups, so a file
    of few groups leaves cores idle in every pass over its rows (three groups on two cores:
    partitions of 2M and 1M rows at 3M). The number of scans (up to MAX_READ_SLICES, the
    fewest among equals) that gives the busiest core the least work, when that is at
    least a fifth less than with one scan; else 1."""
    if groups <= 0 or cores <= 1 or groups >= 2 * cores:
        return 1

    def makespan(k: int) -> float:  # in row groups: pieces of 1/k group dealt to cores
        return math.ceil(groups * k / cores) / k

    best = min(range(1, MAX_READ_SLICES + 1), key=lambda k: (makespan(k), k))
    return best if makespan(best) <= 0.8 * makespan(1) else 1


class _Result:
    def __init__(self, df: pd.DataFrame) -> None:
        self._df = df

    def fetchall(self) -> list[tuple]:
        return [
            tuple(r)
            for r in self._df.astype(object).where(self._df.notna(), None).to_numpy().tolist()
        ]

    def fetchone(self) -> tuple | None:
        rows = self.fetchall()
        return rows[0] if rows else None

    def df(self) -> pd.DataFrame:
        return self._df


class _DuckLike:
    """The small part of a DuckDB connection the readers use, answered by Spark."""

    def __init__(self, engine: SparkEngine) -> None:
        self.engine = engine
        self.con = self

    def run(self, sql: str) -> None:
        self.engine.run(sql)

    def execute(self, sql: str) -> _Result:
        return _Result(self.engine.fetch(sql))


def _split_order(sql: str) -> tuple[str, list[tuple[str, bool]]] | None:
    """``(sql without its ORDER BY, [(column, descending), ...])`` for a DuckDB-dialect
    SELECT ending in ``ORDER BY`` plain, unqualified column names with NULLs last (DuckDB's
    default in both directions) and no LIMIT; else None."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    order = tree.args.get("order") if isinstance(tree, exp.Select) else None
    if order is None or tree.args.get("limit") is not None or tree.args.get("offset"):
        return None
    keys = []
    for o in order.expressions:
        if not (isinstance(o, exp.Ordered) and isinstance(o.this, exp.Column)) or o.this.table:
            return None
        if o.args.get("nulls_first"):
            return None
        keys.append((o.this.name, bool(o.args.get("desc"))))
    tree.set("order", None)
    return tree.sql(dialect="duckdb"), keys


def _order_columns(df, keys: list[tuple[str, bool]]) -> list[str] | None:
    """The output columns of ``df`` that `_split_order`'s ``keys`` name (case as Spark
    spells them); None when one is not an output column."""
    names = {c.lower(): c for c in df.columns}
    cols = [names.get(k.lower()) for k, _ in keys]
    return None if any(c is None for c in cols) else cols


def _duck_ident(name: str) -> str:
    """A column name quoted for DuckDB SQL."""
    return '"' + name.replace('"', '""') + '"'


def _duck_str(value: Any) -> str:
    """A string (or path) as a DuckDB SQL literal."""
    return "'" + str(value).replace("'", "''") + "'"


def _decimals_to_double(df):
    from pyspark.sql import functions as F
    from pyspark.sql.types import DecimalType

    if not any(isinstance(f.dataType, DecimalType) for f in df.schema.fields):
        return df
    return df.select(
        *[
            F.col(f"`{f.name}`").cast("double").alias(f.name)
            if isinstance(f.dataType, DecimalType)
            else F.col(f"`{f.name}`")
            for f in df.schema.fields
        ]
    )


def _duck_type(dt) -> str:
    """The DuckDB name of a Spark type, as the readers' validation expects it."""
    from pyspark.sql import types as T

    simple = {
        T.StringType: "VARCHAR",
        T.LongType: "BIGINT",
        T.IntegerType: "INTEGER",
        T.ShortType: "SMALLINT",
        T.ByteType: "TINYINT",
        T.DoubleType: "DOUBLE",
        T.FloatType: "FLOAT",
        T.BooleanType: "BOOLEAN",
        T.DateType: "DATE",
        T.BinaryType: "BLOB",
        T.TimestampType: "TIMESTAMP WITH TIME ZONE",
        T.TimestampNTZType: "TIMESTAMP",
    }
    for cls, name in simple.items():
        if isinstance(dt, cls):
            return name
    if isinstance(dt, T.DecimalType):
        return f"DECIMAL({dt.precision},{dt.scale})"
    return dt.simpleString().upper()


def _with_row_index(df):
    """``df`` with ``__row``: 0-based positions in the DataFrame's order (no global sort)."""
    from pyspark.sql import functions as F

    df = df.withColumn("__mid", F.monotonically_increasing_id())
    counts = (
        df.select(F.shiftright("__mid", 33).alias("p")).groupBy("p").count().orderBy("p").collect()
    )
    offsets, acc = {}, 0
    for r in counts:
        offsets[int(r["p"])] = acc
        acc += int(r["count"])
    if not offsets:
        return df.withColumn("__row", F.col("__mid")).drop("__mid")
    m = F.create_map(*[x for k, v in offsets.items() for x in (F.lit(k), F.lit(v))])
    part = F.shiftright("__mid", 33)
    row = F.col("__mid") - F.shiftleft(part, 33) + F.element_at(m, part)
    return df.withColumn("__row", row.cast("bigint")).drop("__mid")


def _spark_mem(limit: str) -> str:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", limit.upper())
    if not m:
        raise InputError(f"cannot read memory limit {limit!r}: use e.g. 6GB or 512MB")
    num, unit = float(m.group(1)), m.group(2) or "B"
    mb = num * {"B": 1 / 2**20, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2}[unit]
    return f"{max(int(mb), 512)}m"


def scan_spark(source: Any, *, spark: Any | None = None, master: str | None = None, **kwargs: Any):
    """Scan logs on Spark: ``source`` is a Spark DataFrame or Parquet paths; ``spark`` an
    existing SparkSession (else one is started for ``master``). Other arguments as
    `distilltrace.traffic.scan`."""
    from distilltrace.traffic.scanner import scan

    eng = SparkEngine(spark, master=master)
    return scan(source, engine=eng, **kwargs)
