"""The Spark engine's reader validates and accounts exactly like DuckDB's on the
reliability cases (Parquet and DataFrames: Spark reads no CSV/JSONL)."""

from __future__ import annotations

import os
import sys

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distilltrace.traffic.engine import DuckDBEngine
from distilltrace.traffic.readers import load_events

pytestmark = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


# Spark's Python workers run this interpreter, whose DuckDB evaluates the row-wise
# regex statements (the engine's default row engine); set before the session starts.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

QCOLS = ["source", "row_number", "reason", "request_id", "account_id", "timestamp"]


def _duck(src):
    eng = DuckDBEngine(threads=1)
    try:
        rep = load_events(eng, src)
        q = eng.fetch("SELECT * FROM quarantine ORDER BY source, row_number")
        ev = eng.fetch("SELECT request_id, t FROM events ORDER BY request_id")
    finally:
        eng.close()
    return rep, q, ev


def _spark(spark, src, row_engine: str = "auto"):
    from distilltrace.traffic.spark_engine import SparkEngine

    eng = SparkEngine(spark, row_engine=row_engine)
    try:
        rep = eng.load_events(src)
        q = eng.fetch("SELECT * FROM quarantine ORDER BY source, row_number")
        ev = eng.fetch("SELECT request_id, t FROM events ORDER BY request_id")
    finally:
        eng.close()
    return rep, q, ev


def _same(a, b) -> None:
    ra, qa, ea = a
    rb, qb, eb = b
    for k in ("rows_read", "rows_valid", "rows_quarantined", "quarantine_reasons"):
        assert getattr(ra, k) == getattr(rb, k), k
    assert ra.rows_valid + ra.rows_quarantined == ra.rows_read
    assert qa[QCOLS[:4]].astype(str).values.tolist() == qb[QCOLS[:4]].astype(str).values.tolist()
    assert ea["request_id"].tolist() == eb["request_id"].tolist()
    assert ea["t"].tolist() == eb["t"].tolist()


def _text_cases() -> pd.DataFrame:
    ts = [
        "2026-01-01T00:00:00Z",
        "2026-01-01 00:00:00",
        "2026-01-01T05:30:00+0530",
        "2026-01-01T00:00:00 UTC",
        "2026-01-01",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "10000-01-01T00:00:00Z",
        "2026-01-01T00:00:00+25:00",
        "2026-01-01T00:00:00+19:00",
        "2026-01-01T10:20Z",
        "2026-01-01T24:00:00Z",
        "2026-02-30T00:00:00Z",
        "infinity",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00Z",
    ]
    n = len(ts)
    acct = ["a"] * n
    acct[14], acct[15] = "\t", "\u200b"
    asn = ["7"] * n
    asn[16], asn[17], asn[18] = "1.5", "12.0", "0x10"
    return pd.DataFrame(
        {
            "request_id": [f"r{i:02d}" for i in range(n)],
            "timestamp": ts,
            "account_id": acct,
            "prompt": ["p"] * n,
            "asn": asn,
        }
    )


@pytest.mark.parametrize("row_engine", ["duckdb", "spark"])
def test_text_values_parquet_same_in_spark(spark, tmp_path, row_engine):
    """Validation in DuckDB per batch and in Spark SQL both equal DuckDB's reader."""
    p = tmp_path / "text.parquet"
    _text_cases().to_parquet(p)
    duck = _duck([str(p)])
    assert duck[0].rows_read == 19 and duck[0].rows_quarantined == 13
    _same(duck, _spark(spark, [str(p)], row_engine))


def _nanos_frame() -> pd.DataFrame:
    """Nanosecond timestamps (pandas' default unit) with sub-microsecond parts that round
    up, down and half away from zero, one before 1970 (quarantined) and a created-at."""
    base = 1_772_000_000_000_000_000
    ns = [base + 499, base + 500, base + 1_500, base - 500, base + 123_456_789, -1_500]
    n = len(ns)
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "timestamp": pd.to_datetime(ns, unit="ns", utc=True),
            "account_id": ["a", "a", "b", "b", "c", "c"],
            "prompt": ["hello"] * n,
            "account_created_at": pd.to_datetime([base - 10**15] * n, unit="ns"),  # naive
        }
    )


@pytest.mark.parametrize("as_folder", [False, True])
def test_nanosecond_parquet_same_in_spark(spark, tmp_path, as_folder):
    """pandas writes nanosecond timestamps, which Spark cannot read as timestamps: the
    engine reads them as longs and rounds them to microseconds as DuckDB does (a file:
    columns from its footer; a folder: the schema's timestamp columns)."""
    df = _nanos_frame()
    folder = tmp_path / "logs"
    folder.mkdir()
    p = folder / "part-0.parquet"
    df.to_parquet(p, index=False)
    assert pq.read_schema(p).field("timestamp").type.unit == "ns"
    duck = _duck([str(p)])  # DuckDB reads files, not folders
    assert duck[0].rows_valid == 5 and duck[0].rows_quarantined == 1
    spk = _spark(spark, [str(folder if as_folder else p)])
    if as_folder:  # the same rows; the quarantine names the folder as the source
        duck[1]["source"] = spk[1]["source"] = "x"
    _same(duck, spk)
    assert [round(t * 10**6) % 10**6 for t in spk[2]["t"][:3]] == [0, 1, 2]


def test_typed_values_parquet_same_in_spark(spark, tmp_path):
    secs = [1_767_225_600, -62_135_596_800, 253_402_214_400, 0, -1]
    t = pa.table(
        {
            "request_id": [f"r{i}" for i in range(5)],
            "timestamp": pa.array([s * 10**6 for s in secs], type=pa.timestamp("us", tz="UTC")),
            "account_id": ["a", "b", " ", "d", "e"],
            "prompt": pa.array([["x"], None, ["y"], ["z"], ["w"]], type=pa.list_(pa.string())),
            "asn": [1.0, 1.5, float("nan"), None, 2.0**70],
        }
    )
    p = tmp_path / "typed.parquet"
    pq.write_table(t, p)
    duck = _duck([str(p)])
    assert duck[0].rows_read == 5 and duck[0].rows_valid == 0
    _same(duck, _spark(spark, [str(p)]))


def test_dataframe_input_same_in_spark(spark):
    df = _text_cases()
    duck = _duck(df)
    spk = _spark(spark, spark.createDataFrame(df))
    _same(duck, spk)
    assert duck[1]["row_number"].min() == 6  # 1-based positions


def test_random_bytes_on_spark_name_the_file(spark, tmp_path):
    import numpy as np

    from distilltrace.errors import InputError
    from distilltrace.traffic.spark_engine import SparkEngine

    p = tmp_path / "noise.bin"
    p.write_bytes(np.random.default_rng(3).bytes(4000))
    eng = SparkEngine(spark)
    try:
        with pytest.raises(InputError, match="not a Parquet, JSON Lines or CSV file") as e:
            eng.load_events([str(p)])
    finally:
        eng.close()
    assert str(p) in str(e.value)
