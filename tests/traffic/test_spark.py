"""The Spark engine runs the one pipeline definition and gives DuckDB's results.

Local mode (``local[2]``, bound to 127.0.0.1, no UI), one session for the module.
Skipped, with the reason, when PySpark or a Java runtime is missing.
"""

from __future__ import annotations

import math
import os
import shutil
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distilltrace.errors import InputError
from distilltrace.traffic.engine import make_engine
from distilltrace.traffic.scanner import scan

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

try:
    import pyspark  # noqa: F401

    _why = (
        None
        if (os.environ.get("JAVA_HOME") or shutil.which("java"))
        else "no Java runtime (install openjdk-17-jre-headless)"
    )
except ImportError:
    _why = "PySpark is not installed (pip install 'distilltrace[spark]')"

needs_spark = pytest.mark.skipif(_why is not None, reason=_why or "")

# Spark's Python workers run this interpreter, whose DuckDB evaluates the row-wise
# regex statements (the engine's default row engine); set before the session starts.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

#: Relative tolerance for floating-point columns (different summation order across engines).
RTOL = 1e-9


@pytest.fixture(scope="module")
def sim_path(tmp_path_factory):
    from distilltrace.traffic.simulate import simulate

    path = tmp_path_factory.mktemp("spark_sim") / "logs.parquet"
    pq.write_table(simulate(n_accounts=500, days=1, seed=3), path)
    return path


def _engine(spark, row_engine: str = "auto"):
    from distilltrace.traffic.spark_engine import SparkEngine

    return SparkEngine(spark, row_engine=row_engine)


def assert_frames_equal(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for c in a.columns:
        x, y = a[c].reset_index(drop=True), b[c].reset_index(drop=True)
        if x.dtype.kind == "f" or y.dtype.kind == "f":
            np.testing.assert_allclose(
                x.to_numpy(float), y.to_numpy(float), rtol=RTOL, atol=0, err_msg=c
            )
        else:
            assert x.astype(str).tolist() == y.astype(str).tolist(), c


def assert_close(a, b, path="") -> None:
    """Nested equality with floats within RTOL."""
    if isinstance(a, float) or isinstance(b, float):
        assert math.isclose(float(a), float(b), rel_tol=RTOL, abs_tol=1e-12) or (
            math.isnan(float(a)) and math.isnan(float(b))
        ), path
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


@needs_spark
@pytest.mark.slow
def test_spark_dataframe_scan_equals_duckdb(spark, sim_path):
    """Same simulated log: DuckDB on the Parquet file, Spark on a Spark DataFrame."""
    duck = scan(str(sim_path), engine="duckdb")
    sdf = spark.read.parquet(str(sim_path))
    spk = scan(sdf)  # a Spark DataFrame is scanned in Spark, on its own session
    assert spk.summary["engine"] == "spark"
    assert duck.summary["n_campaigns"] >= 1  # the comparison covers a flagged campaign
    assert_frames_equal(duck.accounts, spk.accounts)
    assert_close([c.to_dict() for c in duck.campaigns], [c.to_dict() for c in spk.campaigns])
    for k in (
        "n_requests",
        "n_accounts",
        "n_flagged_accounts",
        "n_campaigns",
        "n_flagged_requests",
        "rows_quarantined",
        "duplicate_request_ids",
    ):
        assert duck.summary[k] == spk.summary[k], k
    assert_frames_equal(duck.requests, spk.requests)
    # the session given to the engine is left running
    assert spark.range(1).count() == 1


@needs_spark
@pytest.mark.slow
def test_java_row_engine_scan_equals_duckdb(spark, sim_path):
    """The same scan with the text features in Spark SQL (regexes translated to Java):
    same accounts, campaigns and request flags as DuckDB. The content model is off in
    both (its sample SQL is compared by the DataFrame test above; here the Java regexes
    are what is tested)."""
    duck = scan(str(sim_path), engine="duckdb", content=False)
    eng = _engine(spark, "spark")
    assert eng.row_engine == "spark"
    spk = scan(str(sim_path), engine=eng, content=False)
    assert duck.summary["n_campaigns"] >= 1
    assert_frames_equal(duck.accounts, spk.accounts)
    assert_close([c.to_dict() for c in duck.campaigns], [c.to_dict() for c in spk.campaigns])
    assert_frames_equal(duck.requests, spk.requests)


@needs_spark
def test_req_table_is_duckdbs_own(spark, sim_path):
    """With the DuckDB row engine the per-request feature table is DuckDB's, value for
    value (the prompt hash too: DuckDB's 64 bits read as a signed integer), except the
    account key, which each engine computes when loading (its own 64-bit hash)."""
    from distilltrace.traffic.engine import DuckDBEngine
    from distilltrace.traffic.pipeline import statements

    small = pq.read_table(sim_path).slice(0, 3000)
    tables = []
    for eng in (DuckDBEngine(threads=1), _engine(spark, "duckdb")):
        try:
            rep = eng.load_events(small)
            req = statements(set(rep.columns_present))[0]
            assert req.name == "req"
            eng.execute(req.name, req.sql)
            tables.append(eng.fetch("SELECT * EXCLUDE (aid) FROM req ORDER BY request_id"))
            if eng.name == "spark":
                assert eng.row_engine == "duckdb"
        finally:
            eng.close()
    duck, spk = tables
    duck["prompt_hash"] = duck["prompt_hash"].astype("uint64").astype("int64")
    assert list(duck.columns) == list(spk.columns)
    assert len(duck) == 3000
    for c in duck.columns:  # exact: the same engine computed both
        assert duck[c].astype(str).tolist() == spk[c].astype(str).tolist(), c


def test_rowwise_regex_statements_detected():
    """Only row-by-row maps of one table that use a regex go to DuckDB per batch."""
    from distilltrace.traffic.pipeline import statements
    from distilltrace.traffic.spark_engine import rowwise_regex_source

    sts = statements({"input_tokens", "output_tokens", "model", "client_ip", "user_agent"})
    found = {st.name: rowwise_regex_source(st.sql) for st in sts}
    table, cols = found.pop("req")
    assert table == "events"
    assert {"prompt", "request_id", "account_id", "t", "model"} <= set(cols)
    assert "client_ip" not in cols  # only the columns the statement reads travel
    assert all(v is None for v in found.values()), found  # aggregates, joins, windows
    assert rowwise_regex_source("SELECT a, b FROM e WHERE a > 1") is None  # no regex
    assert rowwise_regex_source("SELECT *, regexp_matches(a, 'x') AS m FROM e") == ("e", None)
    sql = "SELECT regexp_matches(e.a, 'x') AS m FROM e JOIN f ON e.k = f.k"
    assert rowwise_regex_source(sql) is None


def test_only_searching_regexes_leave_the_jvm():
    """`auto` sends a statement to DuckDB only when a regex can match anywhere in the
    text; checks anchored at both ends (the readers') stay in Spark SQL."""
    from distilltrace.traffic.pipeline import statements
    from distilltrace.traffic.spark_engine import searches_text

    req = next(st for st in statements({"model"}) if st.name == "req")
    assert searches_text(req.sql)
    assert not searches_text("SELECT regexp_matches(a, '^\\s*[0-9]+\\s*$') AS m FROM e")
    assert not searches_text("SELECT regexp_extract(a, '^([+-]?[0-9]+)(\\.0*)?$', 1) FROM e")
    assert searches_text("SELECT regexp_matches(a, '^a|b$') FROM e")  # either end alone
    assert not searches_text("SELECT regexp_matches(a, '^(a|b)$') FROM e")
    assert not searches_text("SELECT regexp_matches(a, '^[|]x$') FROM e")
    assert searches_text("SELECT regexp_matches(a, 'x\\$') FROM e")  # an escaped dollar
    assert searches_text("SELECT regexp_matches(a, b) FROM e")  # not a literal
    assert not searches_text("SELECT a FROM e")


def test_rowwise_views_compose_into_one_statement():
    """A row-wise statement over a row-wise view becomes one statement over the view's
    table (what DuckDB then runs per batch); anything else is left alone."""
    import duckdb

    from distilltrace.traffic.spark_engine import inline_rowwise_view

    views = {"chk": "SELECT a, regexp_matches(b, 'x') AS m, a > 1 AS ok FROM raw"}
    got = inline_rowwise_view("SELECT a, m FROM chk WHERE ok", views)
    con = duckdb.connect()
    con.execute("CREATE TABLE raw AS SELECT * FROM (VALUES (1, 'x'), (2, 'yx'), (3, 'y')) t(a, b)")
    assert con.execute(got).fetchall() == [(2, True), (3, False)]
    assert inline_rowwise_view("SELECT count(*) FROM chk", views) is None  # an aggregate
    assert inline_rowwise_view("SELECT a FROM other", views) is None  # not a view
    sql = "SELECT c.a FROM chk c JOIN raw r ON c.a = r.a"
    assert inline_rowwise_view(sql, views) is None  # a join


def _bad_logs(path):
    """Rows that break the schema in the ways a Parquet file can: text where numbers or
    timestamps belong, missing required values."""
    rows = pd.DataFrame(
        {
            "request_id": ["r1", "r2", None, "r4", "r5", "r6", "r1"],
            "timestamp": [
                "2026-03-01T10:00:00Z",
                "2026-03-01T10:05:00Z",
                "2026-03-01T10:06:00Z",
                "yesterday",
                "2026-03-01T11:00:00Z",
                "2026-03-01T12:00:00Z",
                "2026-03-01T12:30:00Z",
            ],
            "account_id": ["a1", "a1", "a2", "a2", "", "a3", "a1"],
            "prompt": [
                "Explain <script>alert(1)</script> step by step",
                "hello",
                "hi",
                "x",
                "y",
                "z",
                "dup",
            ],
            "input_tokens": ["12", "many", "3", "4", "5", "6", "7"],
            "client_ip": [
                "10.0.0.1",
                "10.0.0.1",
                "10.0.0.2",
                "10.0.0.3",
                "10.0.0.4",
                "10.0.0.5",
                "10.0.0.1",
            ],
        }
    )
    pq.write_table(pa.Table.from_pandas(rows, preserve_index=False), path)


@needs_spark
@pytest.mark.parametrize("row_engine", ["duckdb", "spark"])
def test_schema_mismatch_quarantined_like_duckdb(spark, tmp_path, row_engine):
    p = tmp_path / "bad.parquet"
    _bad_logs(p)
    duck = scan(str(p), engine="duckdb")
    spk = scan(str(p), engine=_engine(spark, row_engine))
    assert duck.summary["rows_quarantined"] == 4
    assert duck.summary["load"]["quarantine_reasons"] == spk.summary["load"]["quarantine_reasons"]
    for k in ("rows_read", "rows_valid", "rows_quarantined", "duplicate_request_ids"):
        assert duck.summary[k] == spk.summary[k], k
    cols = ["source", "row_number", "reason", "request_id", "account_id", "timestamp", "raw"]
    assert_frames_equal(duck.quarantine[cols], spk.quarantine[cols])
    assert_frames_equal(duck.accounts, spk.accounts)


@needs_spark
def test_wrong_column_type_in_spark_dataframe(spark):
    """A timestamp column of numbers is a type mismatch: every row quarantined, as in DuckDB."""
    pdf = pd.DataFrame(
        {
            "request_id": ["r1", "r2"],
            "timestamp": [1, 2],
            "account_id": ["a", "b"],
            "prompt": ["p", "q"],
        }
    )
    duck = scan(pdf, engine="duckdb")
    spk = scan(spark.createDataFrame(pdf), engine=_engine(spark))
    assert duck.summary["rows_quarantined"] == spk.summary["rows_quarantined"] == 2
    assert duck.summary["load"]["quarantine_reasons"] == spk.summary["load"]["quarantine_reasons"]
    assert spk.summary["n_accounts"] == 0


@needs_spark
def test_missing_required_column_one_line(spark):
    pdf = pd.DataFrame({"request_id": ["r1"], "account_id": ["a"], "prompt": ["p"]})
    with pytest.raises(InputError, match="timestamp"):
        scan(spark.createDataFrame(pdf), engine=_engine(spark))


@needs_spark
def test_regex_semantics_match_duckdb(spark):
    """The RE2 -> Java translation: word boundaries next to non-ASCII letters, \\r and
    \\v, a final newline, and the project's own rule patterns all match as in DuckDB."""
    import duckdb

    from distilltrace.traffic import textrules as tr
    from distilltrace.traffic.engine import to_dialect

    texts = [
        "écode here",
        "code",
        "a\rb",
        "a\nb",
        "x?\n",
        "x?",
        "tab\x0bhere",
        "please think step by step",
        "reasoning: a\r then final answer: 3",
        "ünicode python",
        "act as a strict grader",
        "c++ bug",
        "```\nprint(1)\n```\n",
        'see https://x.y/z and "quoted" 12.5',
        "Ask Alice about Bob",
    ]
    pats = {
        "wb": r"\bcode\b",
        "dot": "a.b",
        "end": r"\?$",
        "sp": r"tab\shere",
        "v": r"tab\vhere",
        "cls": r"[\s]here",
        "ncls": r"x[^\s]",
        **tr.RULES,
        **tr.KEYWORDS,
    }
    pdf = pd.DataFrame({"i": range(len(texts)), "s": texts})
    exprs = ", ".join(
        f"CAST(regexp_matches(s, '{p.replace(chr(39), chr(39) * 2)}') AS INTEGER) AS {n}"
        for n, p in pats.items()
    )
    exprs += f", {tr.skeleton_sql('s')} AS sk, {tr.topic_match_sql('lower(s)')} AS tm"
    sql = f"SELECT i, {exprs} FROM t ORDER BY i"
    con = duckdb.connect()
    con.register("t", pdf)
    want = con.execute(sql).df()
    spark.createDataFrame(pdf).createOrReplaceTempView("t")
    got = spark.sql(to_dialect(sql, "spark")).toPandas()
    assert_frames_equal(want, got)


def test_to_spark_sql_rewrites():
    from distilltrace.traffic.spark_engine import re2_to_java, to_spark_sql

    s = to_spark_sql("SELECT hash(x) AS h, epoch(ts) AS t, avg(y) AS a FROM e")
    assert "XXHASH64" in s.upper() and "UNIX_MICROS" in s.upper() and "CAST(y AS DOUBLE)" in s
    assert re2_to_java(r"a.b$") == r"a[^\n]b\z"
    assert re2_to_java(r"[\s&[]") == "[\\t\\n\\f\\r \\&\\[]"
    exp = to_spark_sql("SELECT m.* EXCLUDE (k) FROM m", {"m": ["k", "a", "b"]})
    assert "`a`" in exp and "`k`" not in exp


def test_unknown_row_engine_one_line():
    pytest.importorskip("pyspark")
    from distilltrace.traffic.spark_engine import SparkEngine

    with pytest.raises(InputError, match="row engine"):
        SparkEngine(object(), row_engine="java")


def test_missing_java_one_line(monkeypatch):
    pytest.importorskip("pyspark")
    from distilltrace.traffic.spark_engine import SparkUnavailableError

    monkeypatch.setenv("JAVA_HOME", "/nonexistent/jdk")
    with pytest.raises(SparkUnavailableError, match="Java 17") as e:
        make_engine("spark")
    assert "\n" not in str(e.value)


def test_missing_pyspark_one_line(monkeypatch):
    import sys

    from distilltrace.traffic.spark_engine import SparkUnavailableError

    monkeypatch.setitem(sys.modules, "pyspark", None)
    with pytest.raises(SparkUnavailableError, match="pip install"):
        make_engine("spark")


@needs_spark
@pytest.mark.slow
def test_cli_engine_spark(spark, tmp_path, sim_path):
    """`distilltrace traffic scan LOGS --engine spark --out DIR` (reuses the running session)."""
    from typer.testing import CliRunner

    from distilltrace.cli import app

    small = tmp_path / "small.parquet"
    tbl = pq.read_table(sim_path)
    pq.write_table(tbl.slice(0, 1000), small)
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        [
            "traffic",
            "scan",
            str(small),
            "--engine",
            "spark",
            "--spark-master",
            "local[2]",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert (out / "accounts.parquet").exists() and (out / "requests.parquet").exists()
    assert pq.read_table(out / "requests.parquet").num_rows == 1000
    ref = scan(str(small), engine="duckdb")
    assert_frames_equal(
        ref.accounts, pd.read_parquet(out / "accounts.parquet")[list(ref.accounts.columns)]
    )
    assert spark.range(1).count() == 1  # the test session survived the CLI run


@needs_spark
@pytest.mark.parametrize(
    "order", ["a", "a DESC", "a NULLS FIRST", "a DESC NULLS LAST, b", "b DESC, a", "a + 0"]
)
def test_write_parquet_keeps_duckdbs_order(spark, tmp_path, order):
    """A written file holds the rows in the statement's order, NULLs where DuckDB puts
    them, whether it is sorted in one partition (plain columns) or globally."""
    import duckdb

    eng = _engine(spark)
    frame = pd.DataFrame(
        {"a": [3.0, None, 1.0, 2.0, 5.0, 4.0], "b": ["x", "y", "z", None, "w", "v"]}
    )
    eng.register("t", frame)
    sql = f"SELECT * FROM t ORDER BY {order}"
    eng.write_parquet(sql, str(tmp_path / "t.parquet"))
    got = pq.read_table(tmp_path / "t.parquet").to_pandas()
    want = duckdb.sql(sql.replace("FROM t", "FROM frame")).df()
    assert got.astype(str).values.tolist() == want.astype(str).values.tolist()
    eng.drop("t")


@needs_spark
def test_csv_input_on_spark_is_a_clear_error(spark, tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("request_id,timestamp,account_id,prompt\nr,2026-01-01T00:00:00Z,a,hi\n")
    with pytest.raises(InputError, match="Parquet"):
        scan(str(p), engine=_engine(spark))


@needs_spark
def test_prompt_cut_and_many_groups_like_duckdb(spark):
    """The prompt cut counts characters, not UTF-8 bytes (Spark's `octet_length` guards
    DuckDB's `strlen`), and a statement run with ``many_groups`` (no partial aggregation)
    gives the same table, with the session's setting restored after it."""
    from distilltrace.traffic.engine import DuckDBEngine

    prompts = ["é" * 3000, "é" * 4001, "x" * 4000, "x" * 4001, "日" * 1400] * 3
    frame = pd.DataFrame(
        {
            "request_id": [str(i % 13) for i in range(len(prompts))],  # two duplicates
            "timestamp": pd.date_range("2026-01-01", periods=len(prompts), freq="s", tz="UTC"),
            "account_id": [f"a{i % 4}" for i in range(len(prompts))],
            "prompt": prompts,
        }
    )
    key = "spark.sql.execution.bypassPartialAggregation"
    spark.conf.set(key, "false")
    duck, eng = DuckDBEngine(threads=1), _engine(spark)
    try:
        reps = [e.load_events(frame) for e in (duck, eng)]
        assert spark.conf.get(key) == "false"  # restored after the loader's aggregates
        assert reps[0].prompts_truncated == reps[1].prompts_truncated == 6  # before de-duplication
        assert reps[0].duplicate_rows_dropped == reps[1].duplicate_rows_dropped == 2
        sql = "SELECT account_id, length(prompt) AS n, count(*) AS k FROM events GROUP BY 1, 2"
        for e in (duck, eng):
            e.execute("g", sql, many_groups=True)
        assert spark.conf.get(key) == "false"
        order = "SELECT * FROM g ORDER BY account_id, n"
        assert_frames_equal(duck.fetch(order), eng.fetch(order))
        evs = [
            e.fetch("SELECT request_id, prompt FROM events ORDER BY request_id")
            for e in (duck, eng)
        ]
        assert_frames_equal(*evs)
    finally:
        duck.close()
        eng.close()


def test_split_order_takes_only_plain_trailing_orders():
    """A fetch is sorted on the driver only for ``ORDER BY`` plain output columns, NULLs
    last, without LIMIT; anything else stays Spark's sort."""
    from distilltrace.traffic.spark_engine import _split_order

    assert _split_order("SELECT * FROM t ORDER BY a, b DESC") == (
        "SELECT * FROM t",
        [("a", False), ("b", True)],
    )
    assert _split_order("SELECT a FROM t ORDER BY a DESC NULLS LAST") == (
        "SELECT a FROM t",
        [("a", True)],
    )
    for sql in (
        "SELECT * FROM t",
        "SELECT * FROM t ORDER BY a NULLS FIRST",
        "SELECT * FROM t ORDER BY a LIMIT 3",
        "SELECT * FROM t ORDER BY t.a",
        "SELECT * FROM t ORDER BY a + 1",
        "SELECT * FROM t ORDER BY 1",
        "SELECT a FROM t UNION ALL SELECT a FROM u ORDER BY a",
    ):
        assert _split_order(sql) is None, sql


@needs_spark
def test_fetch_sorted_on_the_driver_like_duckdb(spark):
    """Fetches sorted on the driver give DuckDB's order: byte order of non-ASCII text,
    NULLs last in both directions, descending keys; a float key holding NULL or NaN
    (which pandas cannot tell apart) is sorted by Spark, NaN above every number."""
    from distilltrace.traffic.engine import DuckDBEngine

    frame = pd.DataFrame(
        {
            "s": ["b", "é", "a", None, "Z", "日", "a", "ab", None, "é"],
            "i": pd.array([3, None, 1, 2, None, 5, 1, 0, 4, -1], dtype="Int64"),
            "f": [0.5, np.nan, -1.0, 2.0, 0.5, np.inf, -np.inf, 1.0, 3.0, 0.0],
            "g": [0.5, 0.25, -1.0, 2.0, 0.5, 7.0, -3.0, 1.0, 3.0, 0.0],
            "k": range(10),
        }
    )
    duck, eng = DuckDBEngine(threads=1), _engine(spark)
    try:
        for e in (duck, eng):
            e.register("t", frame)
        for order in (
            "s, k",
            "s DESC, k",
            "i, k",
            "i DESC, s, k",
            "g DESC, k",
            "f, k",
            "f DESC, k",
        ):
            sql = f"SELECT s, i, f, g, k FROM t ORDER BY {order}"
            got = [e.fetch(sql) for e in (duck, eng)]
            assert got[0]["k"].tolist() == got[1]["k"].tolist(), order
    finally:
        duck.close()
        eng.close()


@needs_spark
def test_account_key_collision_mended_in_spark(spark, sim_path, monkeypatch):
    """Spark re-keys its cached events after a forced account-key collision (a key of the
    id's length) and gives DuckDB's scan."""
    from distilltrace.traffic import readers

    duck = scan(str(sim_path), engine="duckdb", content=False)
    monkeypatch.setattr(readers, "ACCOUNT_KEY", "hash(length(account_id))")
    spk = scan(str(sim_path), engine=_engine(spark), content=False)
    assert_frames_equal(duck.accounts, spk.accounts)
    assert_close([c.to_dict() for c in duck.campaigns], [c.to_dict() for c in spk.campaigns])
    assert_frames_equal(duck.requests, spk.requests)


def test_read_slices_balance_few_row_groups():
    """A file of few row groups is read in k scans (every k-th row each) when that gives
    the busiest core at least a fifth less work; many groups, one core: one scan."""
    from distilltrace.traffic.spark_engine import MAX_READ_SLICES, read_slices

    assert read_slices(3, 2) == 2  # partitions of 2 and 1 groups -> four of 1, .5, 1, .5
    assert read_slices(1, 2) == 2
    assert read_slices(2, 2) == 1 and read_slices(4, 2) == 1 and read_slices(40, 8) == 1
    assert read_slices(3, 1) == 1 and read_slices(0, 2) == 1
    assert read_slices(1, 16) == MAX_READ_SLICES


@needs_spark
def test_sliced_read_keeps_every_row_and_its_position(spark, tmp_path):
    """Three row groups on two cores are read in two scans: every row once, its position
    (the quarantine's row number) unchanged, the events as DuckDB loads them."""
    from distilltrace.traffic.engine import DuckDBEngine

    n = 3000
    frame = pa.table(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "timestamp": pa.array(
                pd.date_range("2026-01-01", periods=n, freq="s", tz="UTC"),
                pa.timestamp("us", "UTC"),
            ),
            "account_id": [f"a{i % 7}" if i != 1234 else " " for i in range(n)],
            "prompt": [f"question {i}" for i in range(n)],
        }
    )
    path = tmp_path / "three_groups.parquet"
    pq.write_table(frame, path, row_group_size=1000)
    assert pq.read_metadata(path).num_row_groups == 3
    duck, eng = DuckDBEngine(threads=1), _engine(spark)
    try:
        reps = [e.load_events(str(path)) for e in (duck, eng)]
        assert reps[1].rows_valid == n - 1 and reps[1].rows_quarantined == 1
        sql = "SELECT row_number, reason FROM quarantine"
        assert duck.fetch(sql).values.tolist() == eng.fetch(sql).values.tolist()
        order = "SELECT request_id, account_id, t FROM events ORDER BY request_id"
        assert_frames_equal(duck.fetch(order), eng.fetch(order))
    finally:
        duck.close()
        eng.close()
