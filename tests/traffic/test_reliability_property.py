"""Property: over randomly corrupted CSV / JSON Lines / Parquet files, every source
record ends valid or quarantined exactly once, counted independently of the reader."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distilltrace.errors import InputError
from distilltrace.traffic.engine import DuckDBEngine
from distilltrace.traffic.readers import load_events

COLS = ["request_id", "timestamp", "account_id", "prompt", "asn"]
EXTREME_TS = [
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "99999-01-01T00:00:00Z",
    "2026-01-01T00:00:00+25:00",
    "1969-12-31T23:59:59Z",
    "not a time",
]
EXTREME_ASN = ["1.5", "99999999999999999999999", "-0", "nan", "1e308", "7"]

_prompt = st.text(
    alphabet=st.sampled_from(list('abc ,"\n\r\t\x00é€😀<>') + ["\u200b"]), max_size=30
)
_row = st.fixed_dictionaries(
    {
        "timestamp": st.one_of(
            st.sampled_from(["2026-01-01T00:00:00Z", "2026-02-03 04:05:06"]),
            st.sampled_from(EXTREME_TS),
        ),
        "account_id": st.sampled_from(["a", "b", "\t", "", "c,d", 'e"f']),
        "prompt": _prompt,
        "asn": st.one_of(st.none(), st.sampled_from(EXTREME_ASN)),
    }
)
_corruption = st.tuples(
    st.sampled_from(["truncate", "stray_quote", "extra_field", "drop_field", "bad_utf8", "none"]),
    st.integers(0, 10**6),
)


def _rows(raw: list[dict]) -> list[dict]:
    return [{"request_id": f"r{i}", **r} for i, r in enumerate(raw)]


def _csv_field(v) -> str:
    if v is None:
        return ""
    s = str(v)
    return '"' + s.replace('"', '""') + '"' if any(c in s for c in ',"\r\n') else s


def _csv_bytes(rows: list[dict]) -> bytes:
    lines = [",".join(COLS)] + [",".join(_csv_field(r[c]) for c in COLS) for r in rows]
    return ("\n".join(lines) + "\n").encode("utf-8")


def _jsonl_bytes(rows: list[dict]) -> bytes:
    return ("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n").encode("utf-8")


def _line_starts(data: bytes, after: int) -> list[int]:
    return [m.end() for m in re.finditer(rb"\n", data) if after <= m.end() < len(data)]


def _corrupt(data: bytes, kind: str, k: int, sep: bytes) -> bytes:
    """Corrupt the data after the first line (a CSV header must stay readable)."""
    head = data.index(b"\n") + 1
    starts = _line_starts(data, head) or [len(data)]
    at = starts[k % len(starts)]
    if kind == "truncate":
        return data[: head + k % max(1, len(data) - head)]
    if kind == "stray_quote":  # at the start of a field
        ends = [m.end() for m in re.finditer(re.escape(sep), data[at:])][:3]
        pos = at + ([0, *ends])[k % (len(ends) + 1)]
        return data[:pos] + b'"' + data[pos:]
    if kind == "extra_field":
        end = data.find(b"\n", at)
        end = len(data) if end < 0 else end
        return data[:end] + b",EXTRA" + data[end:]
    if kind == "drop_field":
        end = data.find(b"\n", at)
        end = len(data) if end < 0 else end
        cut = data.rfind(b",", at, end)
        return data if cut < 0 else data[:cut] + data[end:]
    if kind == "bad_utf8":
        end = data.find(b"\n", at)
        end = len(data) if end < 0 else end
        return data[:end] + b"\xff\xfe\xc3" + data[end:]
    return data


# ---------------------------------------------------------------- independent counters


def _physical_lines(text: str) -> list[str]:
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)


def _parse_record(lines: list[str], i: int) -> tuple[list[str] | None, int]:
    """RFC 4180 with Python csv's strict rules, written apart from the reader: a record
    from line i (lines end at \\n, \\r\\n or \\r), or None on a quote error / end of
    data inside quotes; next line."""
    fields: list[str] = []
    field: list[str] = []
    state = "start"
    j = i
    while j < len(lines):
        body = lines[j].rstrip("\r\n")
        for ch in body:
            if state == "start":
                if ch == '"':
                    state = "quoted"
                elif ch == ",":
                    fields.append("")
                else:
                    field, state = [ch], "plain"
            elif state == "plain":
                if ch == ",":
                    fields.append("".join(field))
                    field, state = [], "start"
                else:
                    field.append(ch)
            elif state == "quoted":
                if ch == '"':
                    state = "quote_in_quoted"
                else:
                    field.append(ch)
            elif ch == '"':  # quote_in_quoted: a doubled quote
                field.append('"')
                state = "quoted"
            elif ch == ",":
                fields.append("".join(field))
                field, state = [], "start"
            else:
                return None, j + 1
        if state == "quoted":
            field.append(lines[j][len(body) :])
            j += 1
            continue
        if state != "start" or fields:
            fields.append("".join(field))
        return fields, j + 1
    return (None, j) if state == "quoted" else ([], j)


def _count_csv(data: bytes) -> int:
    lines = _physical_lines(data.decode("utf-8", "replace").removeprefix("\ufeff"))
    i, header = 0, []
    while i < len(lines) and not header:
        header, i = _parse_record(lines, i)
        header = header or []
    n = 0
    while i < len(lines):
        rec, nxt = _parse_record(lines, i)
        if rec == []:
            i = nxt
            continue
        n += 1
        i = nxt if rec is not None and len(rec) == len(header) else i + 1
    return n


def _count_jsonl(data: bytes) -> int:
    return sum(1 for ln in data.split(b"\n") if ln.strip(b" \t\r"))


# ---------------------------------------------------------------- the property


def _check(path, expected: int | None, written: set[str]) -> None:
    eng = DuckDBEngine(threads=1)
    try:
        rep = load_events(eng, [path])
        ev = eng.fetch("SELECT request_id, _row FROM events")
        q = eng.fetch("SELECT row_number, reason FROM quarantine")
    finally:
        eng.close()
    if expected is not None:
        assert rep.rows_read == expected
    assert rep.rows_valid + rep.rows_quarantined == rep.rows_read
    assert rep.duplicate_rows_dropped == 0  # ids are unique: events still hold _row
    assert len(ev) == rep.rows_valid and len(q) == rep.rows_quarantined
    positions = list(ev["_row"]) + list(q["row_number"])
    assert len(set(positions)) == len(positions)  # each record once
    assert set(ev["request_id"]) <= written
    assert (q["reason"].str.len() > 0).all()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.lists(_row, min_size=1, max_size=8), corruption=_corruption)
def test_corrupted_csv_every_record_valid_or_quarantined_once(tmp_path, raw, corruption):
    rows = _rows(raw)
    data = _corrupt(_csv_bytes(rows), *corruption, sep=b",")
    p = tmp_path / "x.csv"
    p.write_bytes(data)
    _check(p, _count_csv(data), {r["request_id"] for r in rows})


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.lists(_row, min_size=1, max_size=8), corruption=_corruption)
def test_corrupted_jsonl_every_record_valid_or_quarantined_once(tmp_path, raw, corruption):
    rows = _rows(raw)
    data = _jsonl_bytes(rows)
    data = (
        b'{"request_id": "r_head", "timestamp": "2026-01-01T00:00:00Z", "account_id": "h", "prompt": "p"}\n'
        + data
    )
    data = _corrupt(data, *corruption, sep=b", ")
    p = tmp_path / "x.jsonl"
    p.write_bytes(data)
    _check(p, _count_jsonl(data), {r["request_id"] for r in rows} | {"r_head"})


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw=st.lists(_row, min_size=1, max_size=8),
    truncate=st.one_of(st.none(), st.integers(1, 10**6)),
    asn_float=st.booleans(),
)
def test_corrupted_parquet_every_record_valid_or_quarantined_once(
    tmp_path, raw, truncate, asn_float
):
    rows = _rows(raw)
    cols = {c: [r[c] for r in rows] for c in COLS}
    if asn_float:
        cols["asn"] = [None if v is None else float(v) for v in cols["asn"]]
    p = tmp_path / "x.parquet"
    pq.write_table(pa.table(cols), p)
    if truncate is not None:
        data = p.read_bytes()
        p.write_bytes(data[: truncate % len(data)])
        with pytest.raises(InputError, match="x.parquet"):  # a loud, one-line error
            _check(p, None, set())
        return
    _check(p, len(rows), {r["request_id"] for r in rows})
