"""The Spark engine's reader validates and accounts exactly like DuckDB's on the
reliability cases (Parquet and DataFrames: Spark reads no CSV/JSONL)."""

from __future__ import annotations

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


def _spark(spark, src):
    from distilltrace.traffic.spark_engine import SparkEngine

    eng = SparkEngine(spark)
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


def test_text_values_parquet_same_in_spark(spark, tmp_path):
    p = tmp_path / "text.parquet"
    _text_cases().to_parquet(p)
    duck = _duck([str(p)])
    assert duck[0].rows_read == 19 and duck[0].rows_quarantined == 13
    _same(duck, _spark(spark, [str(p)]))


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
