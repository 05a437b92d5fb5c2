"""Reliability of reading logs: every source record is counted from the source itself
and ends valid or quarantined exactly once; bad values and bad files are named."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distilltrace.errors import InputError
from distilltrace.traffic.engine import DuckDBEngine
from distilltrace.traffic.readers import load_events

HEADER = "request_id,timestamp,account_id,prompt"


def _load(src):
    eng = DuckDBEngine(threads=1)
    try:
        rep = load_events(eng, src)
        ev = eng.fetch("SELECT * FROM events ORDER BY request_id")
        q = eng.fetch("SELECT * FROM quarantine ORDER BY source, row_number")
    finally:
        eng.close()
    return rep, ev, q


def _good(i: int, prompt: str = "hello there") -> str:
    return f"r{i},2026-01-01T00:{(i // 60) % 60:02d}:{i % 60:02d}Z,acct{i % 7},{prompt}"


def _csv(path, lines: list[str]) -> None:
    path.write_text(HEADER + "\n" + "\n".join(lines) + "\n", encoding="utf-8")


# ------------------------------------------------------------------ 1. CSV accounting


@pytest.mark.parametrize("n", [5_001, 50_001])
def test_csv_stray_quote_loses_nothing(tmp_path, n):
    """One unclosed quote in the first record: that record is quarantined, the rest read."""
    p = tmp_path / "stray.csv"
    _csv(p, [_good(0, '"hello')] + [_good(i) for i in range(1, n)])
    rep, ev, q = _load([p])
    assert rep.rows_read == n
    assert rep.rows_valid == n - 1 and rep.rows_quarantined == 1
    assert len(ev) == n - 1
    assert q["row_number"].tolist() == [2]  # line 2: the line after the header
    assert q["reason"].tolist() == ["malformed CSV record: unclosed quote"]
    assert q["raw"].iloc[0].startswith("r0,")


def test_csv_stray_quote_closed_later_by_a_real_quoted_field(tmp_path):
    """The stray quote pairs with a real quoted field further down: still one record lost."""
    lines = [_good(0, '"oops')] + [_good(i) for i in range(1, 50)]
    lines += [_good(50, '"a, quoted, prompt"')] + [_good(i) for i in range(51, 100)]
    p = tmp_path / "stray2.csv"
    _csv(p, lines)
    rep, ev, q = _load([p])
    assert (rep.rows_read, rep.rows_valid, rep.rows_quarantined) == (100, 99, 1)
    assert ev.set_index("request_id").loc["r50", "prompt"] == "a, quoted, prompt"


def test_csv_wrong_arity_quarantined_once(tmp_path):
    """Too many fields: quarantined (not kept with the extra field dropped); a record
    missing two fields is quarantined once, not twice."""
    p = tmp_path / "arity.csv"
    _csv(
        p,
        [
            _good(1),
            _good(2) + ",EXTRA",
            "r3,2026-01-01T00:00:03Z",  # two fields missing
            _good(4),
            _good(5),
        ],
    )
    rep, ev, q = _load([p])
    assert (rep.rows_read, rep.rows_valid, rep.rows_quarantined) == (5, 3, 2)
    assert sorted(ev["request_id"]) == ["r1", "r4", "r5"]
    assert q["row_number"].tolist() == [3, 4]
    assert set(q["reason"]) == {"malformed CSV record: wrong number of fields"}
    assert q["raw"].tolist() == [_good(2) + ",EXTRA", "r3,2026-01-01T00:00:03Z"]


def test_quarantine_row_number_is_the_line_a_record_starts_on(tmp_path):
    """CSV and JSONL: 1-based line number of the record's first line (multi-line quoted
    fields and blank lines counted); Parquet and tables: 1-based row position."""
    p = tmp_path / "lines.csv"
    _csv(p, [_good(1, '"two\nlines"'), "", _good(2), "r3,not-a-time,a,x", _good(4)])
    rep, ev, q = _load([p])
    assert q["row_number"].tolist() == [6]  # header 1, r1 on 2-3, blank 4, r2 5, r3 6
    assert rep.csv_strict_parse_files == []  # clean: DuckDB's parse, checked by the count
    j = tmp_path / "lines.jsonl"
    ok = {"request_id": "a", "timestamp": "2026-01-01T00:00:00Z", "account_id": "x", "prompt": "p"}
    j.write_text("\n".join([json.dumps(ok), "", "  ", "{broken", json.dumps(ok)]) + "\n")
    rep, ev, q = _load([j])
    assert q["row_number"].tolist() == [4] and rep.rows_read == 3
    df = pd.DataFrame([ok, dict(ok, timestamp="x"), ok])
    pq_path = tmp_path / "rows.parquet"
    df.to_parquet(pq_path)
    for src in ([pq_path], df):
        rep, ev, q = _load(src)
        assert q["row_number"].tolist() == [2] and rep.rows_read == 3


def test_rows_read_is_the_source_count_not_valid_plus_quarantined(tmp_path):
    p = tmp_path / "a.csv"
    _csv(p, [_good(i) for i in range(10)])
    rep, _, _ = _load([p])
    assert rep.source_records == {str(p): 10}
    assert rep.rows_read == rep.rows_valid + rep.rows_quarantined == 10


def test_csv_fast_parse_disagreeing_with_the_count_falls_back(tmp_path, monkeypatch):
    """DuckDB's parse is used only when it read the very records and characters the
    strict count saw: a parse that silently loses a record is replaced by the strict one."""
    from distilltrace.traffic import readers

    real = readers._Loader._csv_duckdb

    def lossy(self, idx, path, header):
        ok = real(self, idx, path, header)
        self.eng.run(f"DELETE FROM csvraw_{idx} WHERE __rec = 2")
        return ok

    monkeypatch.setattr(readers._Loader, "_csv_duckdb", lossy)
    p = tmp_path / "a.csv"
    _csv(p, [_good(i) for i in range(5)])
    rep, ev, q = _load([p])
    assert (rep.rows_read, rep.rows_valid) == (5, 5)
    assert rep.csv_strict_parse_files == [str(p)]


def test_csv_line_ends_cr_crlf_lf(tmp_path):
    """Universal newlines, as Python's csv reads them: \\n, \\r\\n and a bare \\r (old Mac
    "CSV (Macintosh)" exports) end a line; quoted fields keep theirs."""
    p = tmp_path / "cr.csv"
    body = HEADER + "\r" + _good(1) + "\r" + _good(2, '"a\rb"') + "\r\n" + _good(3) + "\n"
    p.write_bytes((body + "r4,bad-time,a,x\r").encode())
    rep, ev, q = _load([p])
    assert (rep.rows_read, rep.rows_valid, rep.rows_quarantined) == (4, 3, 1)
    assert ev.set_index("request_id").loc["r2", "prompt"] == "a\rb"
    assert q["row_number"].tolist() == [6]  # the \r inside the quoted field ends line 3


def test_csv_record_longer_than_the_cap_is_quarantined(tmp_path, monkeypatch):
    from distilltrace.traffic import readers

    monkeypatch.setattr(readers, "MAX_RECORD_CHARS", 2000)
    p = tmp_path / "long.csv"
    _csv(p, [_good(0, '"never closed ' + "x" * 100)] + [_good(i) for i in range(1, 100)])
    rep, ev, q = _load([p])
    assert (rep.rows_read, rep.rows_valid, rep.rows_quarantined) == (100, 99, 1)


def test_scan_summary_counts_the_stray_quote(tmp_path):
    from distilltrace.traffic import scan

    p = tmp_path / "stray.csv"
    _csv(p, [_good(0, '"hello')] + [_good(i) for i in range(1, 400)])
    res = scan([p])
    s = res.summary
    assert (s["rows_read"], s["rows_valid"], s["rows_quarantined"]) == (400, 399, 1)
    assert s["n_requests"] == 399


# ------------------------------------------------------------------ 2. bad values


def _rows_with(**over):
    base = {
        "request_id": ["ok", "bad"],
        "timestamp": ["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z"],
        "account_id": ["a", "b"],
        "prompt": ["p", "q"],
    }
    for k, v in over.items():
        base[k] = [base[k][0], v] if k in base else [None, v]
    return base


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0001-01-01T00:00:00Z", "timestamp: out of range (before 1970 or from 2200 on)"),
        ("9999-12-31T23:59:59Z", "timestamp: out of range (before 1970 or from 2200 on)"),
        ("1969-12-31T23:59:59Z", "timestamp: out of range (before 1970 or from 2200 on)"),
        ("2200-01-01T00:00:00Z", "timestamp: out of range (before 1970 or from 2200 on)"),
        ("10000-01-01T00:00:00Z", "timestamp: unparseable timestamp"),
        ("2026-01-01T00:00:00+25:00", "timestamp: UTC offset out of range (beyond 18:00)"),
        ("2026-01-01T00:00:00-99", "timestamp: UTC offset out of range (beyond 18:00)"),
        ("2026-01-01 00:00:00 Europe/Paris", "timestamp: unparseable timestamp"),
        ("infinity", "timestamp: unparseable timestamp"),
    ],
)
def test_text_timestamps_out_of_range_or_offset_quarantined(tmp_path, fmt, value, reason):
    df = pd.DataFrame(_rows_with(timestamp=value))
    p = tmp_path / f"t.{fmt}"
    if fmt == "csv":
        df.to_csv(p, index=False)
    elif fmt == "jsonl":
        df.to_json(p, orient="records", lines=True)
    else:
        df.to_parquet(p)
    rep, ev, q = _load([p])
    assert ev["request_id"].tolist() == ["ok"]
    assert q["reason"].tolist() == [reason]


def test_accepted_timestamp_forms(tmp_path):
    forms = [
        "2026-01-01T00:00:00Z",
        "2026-01-01 00:00:00",
        "2026-01-01T00:00:00.123Z",
        "2026-01-01 00:00:00+00:00",
        "2026-01-01T05:30:00+0530",
        "2026-01-01T18:00:00+18:00",
        "2026-01-01T00:00:00 UTC",
        "2026-01-01",
    ]
    df = pd.DataFrame(
        {
            "request_id": [str(i) for i in range(len(forms))],
            "timestamp": forms,
            "account_id": "a",
            "prompt": "p",
        }
    )
    rep, ev, q = _load(df)
    assert rep.rows_quarantined == 0, q["reason"].tolist()
    assert (ev["t"] == 1767225600.0).sum() == 7  # all the same instant but the fraction


def test_typed_parquet_timestamps_out_of_range(tmp_path):
    secs = [1_767_225_600, -62_135_596_800, 253_402_214_400, 506_804_601_600]
    t = pa.table(
        {
            "request_id": ["ok", "y1", "y9999", "y18029"],
            "timestamp": pa.array(secs, type=pa.timestamp("s", tz="UTC")),
            "account_id": ["a", "b", "c", "d"],
            "prompt": ["p"] * 4,
        }
    )
    p = tmp_path / "ts.parquet"
    pq.write_table(t, p)
    rep, ev, q = _load([p])
    assert ev["request_id"].tolist() == ["ok"]
    assert set(q["reason"]) == {"timestamp: out of range (before 1970 or from 2200 on)"}


@pytest.mark.parametrize("value", ["\t", " ", "\u00a0", "\u200b", "\x00", "\n\r", "\u3000"])
def test_blank_required_ids_quarantined(value):
    df = pd.DataFrame(_rows_with(account_id=value))
    rep, ev, q = _load(df)
    assert ev["request_id"].tolist() == ["ok"]
    assert q["reason"].tolist() == ["missing required value account_id"]
    df = pd.DataFrame(_rows_with(request_id=value))
    rep, ev, q = _load(df)
    assert len(ev) == 1 and q["reason"].tolist() == ["missing required value request_id"]


def test_list_prompt_quarantined_parquet_and_json(tmp_path):
    t = pa.table(
        {
            "request_id": ["ok", "bad"],
            "timestamp": ["2026-01-01T00:00:00Z"] * 2,
            "account_id": ["a", "b"],
            "prompt": pa.array([["p"], ["x", "y"]], type=pa.list_(pa.string())),
        }
    )
    p = tmp_path / "list.parquet"
    pq.write_table(t, p)
    rep, ev, q = _load([p])
    assert rep.rows_quarantined == 2 and set(q["reason"]) == {"prompt: wrong type"}
    j = tmp_path / "list.jsonl"
    rows = [
        {"request_id": "ok", "timestamp": "2026-01-01T00:00:00Z", "account_id": "a", "prompt": "p"},
        {
            "request_id": "x",
            "timestamp": "2026-01-01T00:00:00Z",
            "account_id": "a",
            "prompt": ["p"],
        },
        {"request_id": "y", "timestamp": "2026-01-01T00:00:00Z", "account_id": "a", "prompt": {}},
    ]
    j.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    rep, ev, q = _load([j])
    assert ev["request_id"].tolist() == ["ok"] and rep.rows_quarantined == 2


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_non_integer_asn_quarantined(tmp_path, fmt):
    df = pd.DataFrame(
        {
            "request_id": ["a", "b", "c", "d", "e"],
            "timestamp": ["2026-01-01T00:00:00Z"] * 5,
            "account_id": ["x"] * 5,
            "prompt": ["p"] * 5,
            "asn": [1.5, 12.0, 7.0, float("nan"), 2.0**70],
        }
    )
    p = tmp_path / f"asn.{fmt}"
    if fmt == "csv":
        df.to_csv(p, index=False)
    elif fmt == "jsonl":
        df.to_json(p, orient="records", lines=True)
    else:
        df.to_parquet(p)  # a DOUBLE column
    rep, ev, q = _load([p])
    assert sorted(ev["request_id"]) == ["b", "c", "d"]  # d: NaN/null asn is a missing value
    assert ev.set_index("request_id").loc["b", "asn"] == 12
    assert set(q["request_id"]) == {"a", "e"} and set(q["reason"]) == {"asn: wrong type"}


def test_text_asn_forms():
    df = pd.DataFrame(
        {
            "request_id": list("abcdefg"),
            "timestamp": "2026-01-01T00:00:00Z",
            "account_id": "x",
            "prompt": "p",
            "asn": ["1.5", "12", " 7 ", "+3", "0x10", "1e3", "1_000"],
        }
    )
    rep, ev, q = _load(df)
    assert sorted(ev["request_id"]) == ["b", "c", "d"]
    assert sorted(q["request_id"]) == ["a", "e", "f", "g"]


# ------------------------------------------------------------------ 4. not a log at all


@pytest.mark.parametrize("name", ["noise.csv", "noise.jsonl", "noise", "noise.log"])
def test_random_bytes_are_a_clear_error_naming_the_file(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(np.random.default_rng(1).bytes(5000))
    with pytest.raises(InputError) as e:
        _load([p])
    msg = str(e.value)
    assert str(p) in msg and "not a Parquet, JSON Lines or CSV file" in msg
    assert "missing" not in msg and "\n" not in msg


def test_random_bytes_named_parquet_is_a_clear_error(tmp_path):
    p = tmp_path / "noise.parquet"
    p.write_bytes(os.urandom(5000))
    with pytest.raises(InputError, match="noise.parquet") as e:
        _load([p])
    assert "Parquet" in str(e.value) and "\n" not in str(e.value)


def test_random_bytes_cli_one_line(tmp_path):
    import subprocess
    import sys

    p = tmp_path / "noise.bin"
    p.write_bytes(np.random.default_rng(2).bytes(3000))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "distilltrace.cli",
            "traffic",
            "scan",
            str(p),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(p) in lines[0] and "not a Parquet, JSON Lines or CSV" in lines[0]
    assert not (tmp_path / "o").exists()


def test_gzip_csv_and_truncated_gzip(tmp_path):
    import gzip

    body = (HEADER + "\n" + "\n".join(_good(i) for i in range(300)) + "\n").encode()
    p = tmp_path / "a.csv.gz"
    p.write_bytes(gzip.compress(body))
    rep, ev, q = _load([p])
    assert (rep.rows_read, rep.rows_valid) == (300, 300)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    with pytest.raises(InputError, match="cut.csv.gz") as e:
        _load([cut])
    assert "\n" not in str(e.value)


def test_nan_in_a_float_asn_column_is_a_wrong_type_not_a_crash(tmp_path):
    """NaN (not null) in a DOUBLE asn column: DuckDB hoists a plain CAST out of the CASE
    guarding it and fails the whole read ("can't be cast ... out of range")."""
    t = pa.table(
        {
            "request_id": ["r0", "r1", "r2"],
            "timestamp": ["2026-01-01T00:00:00Z"] * 3,
            "account_id": ["a"] * 3,
            "prompt": [""] * 3,
            "asn": [None, -0.0, float("nan")],
        }
    )
    p = tmp_path / "nan.parquet"
    pq.write_table(t, p)
    rep, ev, q = _load([p])
    assert (rep.rows_read, rep.rows_valid, rep.rows_quarantined) == (3, 2, 1)
    assert q["request_id"].tolist() == ["r2"] and q["reason"].tolist() == ["asn: wrong type"]
