"""Read traffic logs (Parquet, JSON Lines, CSV) into a validated ``events`` table.

Every record of the source either becomes an event or is quarantined with a reason
(missing required value, unparseable or out-of-range timestamp, wrong type, malformed
CSV record or JSON line); nothing is dropped silently. The number of records is counted
from the source independently of the parser (Parquet footer metadata, non-blank JSONL
lines, CSV records by a strict streaming pass of Python's csv module), and
``rows_valid + rows_quarantined == rows_read`` is checked per file: a disagreement is an
error, never a silent loss.

Quarantine ``row_number``: for CSV and JSON Lines the 1-based line number of the line
on which the record starts (the CSV header is line 1); for Parquet and in-memory
tables the 1-based row position.

Duplicate ``request_id``s are counted and the first (earliest timestamp, then file
order) is kept. ``campaign_id`` (ground truth) is never loaded, nor are the large text
columns the detectors do not use (``response``, ``system_prompt``).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import itertools
import json
import os
import shutil
import tempfile
import zlib
from array import array
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from distilltrace.errors import InputError
from distilltrace.traffic import schema
from distilltrace.traffic.engine import DuckDBEngine

#: Prompts are stored up to this many characters (longer text is truncated, counted).
MAX_PROMPT_CHARS = 4000
#: A CSV record (or JSON line) longer than this many characters is malformed (an
#: unclosed quote would otherwise swallow the rest of the file).
MAX_RECORD_CHARS = 8 * 2**20
#: Up to this many sources, their valid rows are counted beside the ids' distinct count
#: (one column each); beyond it, by a group-by of their own.
MAX_SOURCE_COLUMNS = 64

#: The events' 64-bit account key (``_aid``): the per-account statements group and sort
#: by it instead of the account id text (a quarter to a third less time per aggregate in
#: Spark at 3M). Unique per account unless two ids collide in 64 bits, which the scan
#: checks (`scanner._run_statements`) and then mends with a salt (`rekey_events`).
ACCOUNT_KEY = "hash(account_id)"


def account_key_sql(salt: int = 0) -> str:
    """SQL of the account key; ``salt`` > 0 gives another hash of the same ids."""
    return ACCOUNT_KEY if salt == 0 else f"hash(account_id || '|{int(salt)}')"


def rekey_events(eng: Any, salt: int) -> None:
    """Recompute the events' account key with ``salt`` (after a 64-bit collision)."""
    eng.execute("events", f"SELECT * EXCLUDE (_aid), {account_key_sql(salt)} AS _aid FROM events")


_SQL_TYPES = {"string": "VARCHAR", "int": "BIGINT", "float": "DOUBLE", "timestamp": "TIMESTAMPTZ"}
_CHUNK_ROWS = 100_000
_BLOCK_BYTES = 1 << 26


@dataclass
class LoadReport:
    """What ingestion saw: files, rows, quarantine and duplicates.

    ``rows_read`` is the sources' own record count (``source_records`` per file) and
    always equals ``rows_valid + rows_quarantined``; ``rows_valid`` counts duplicates
    (``duplicate_rows_dropped`` of them are not kept).
    """

    files: list[str]
    rows_read: int = 0
    rows_valid: int = 0
    rows_quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    duplicate_request_ids: int = 0
    duplicate_rows_dropped: int = 0
    duplicate_examples: list[str] = field(default_factory=list)
    columns_present: list[str] = field(default_factory=list)
    unknown_columns: list[str] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    utf8_repaired_files: list[str] = field(default_factory=list)
    prompts_truncated: int = 0
    source_records: dict[str, int] = field(default_factory=dict)
    csv_strict_parse_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _not_a_log(path: Path, why: str) -> InputError:
    return InputError(f"cannot read {path}: not a Parquet, JSON Lines or CSV file ({why})")


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == b"\x1f\x8b"


def _open_bytes(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when it is gzip."""
    return gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")  # noqa: SIM115


def detect_format(path: Path) -> str:
    """'parquet', 'jsonl' or 'csv' from the extension, else from the first bytes."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    if ext in (".parquet", ".pq"):
        return "parquet"
    if ext in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if ext in (".csv",):
        return "csv"
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if head[:4] == b"PAR1":
        return "parquet"
    if head.lstrip()[:1] == b"{":
        return "jsonl"
    return "csv"


def check_readable(path: Path) -> None:
    """Raise InputError (one line) unless ``path`` is an existing, readable file."""
    if not path.exists():
        raise InputError(f"log file not found: {path}")
    if path.is_dir():
        raise InputError(f"log path is a directory, not a file: {path}")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as e:
        raise InputError(f"cannot read log file {path}: {e.strerror or e}") from None


def check_text_start(path: Path, *, jsonl: bool = False) -> None:
    """A CSV file starts with a header line of text, a JSON Lines file with a JSON value
    or at least a line of text: random bytes, a binary or compressed file of another
    kind fail here, with a clear error instead of a confusing "missing column"."""
    try:
        with _open_bytes(path) as fh:
            head = fh.read(1 << 16)
    except (OSError, EOFError) as e:
        raise InputError(
            f"cannot read {path}: {str(e).splitlines()[0] if str(e) else e!r}"
        ) from None
    lines = [ln for ln in head.split(b"\n") if ln.strip(b" \t\r")]
    if not lines:
        return
    lines[0] = lines[0].removeprefix(b"\xef\xbb\xbf")
    if jsonl and any(_is_json(ln) for ln in lines[:100]):
        return
    first = lines[0]
    if len(lines) == 1 and len(head) == 1 << 16:
        first = first[:-4]  # the line goes on: do not judge a cut multi-byte character
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError:
        raise _not_a_log(path, "the first line is not UTF-8 text") from None
    if any(ord(ch) < 32 and ch not in "\t\r" for ch in text):
        raise _not_a_log(path, "the first line holds binary data")


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
        return True
    except ValueError:
        return False


def _utf8_clean(path: Path, tmpdir: str) -> tuple[Path, bool]:
    """A UTF-8-clean, uncompressed version of a text file (invalid bytes -> U+FFFD):
    the file itself when it is clean and uncompressed, else a copy in ``tmpdir``; and
    whether bytes were replaced. Streams in blocks."""
    if not _is_gzip(path) and not _bad_utf8_file(path):
        return path, False
    out = Path(tmpdir) / (path.name + ".utf8")
    strict = codecs.getincrementaldecoder("utf-8")("strict")
    replace = codecs.getincrementaldecoder("utf-8")("replace")
    bad = False
    with _open_bytes(path) as src, open(out, "wb") as dst:
        for block in itertools.chain(iter(lambda: src.read(_BLOCK_BYTES), b""), [b""]):
            final = not block
            dst.write(replace.decode(block, final=final).encode("utf-8"))
            if not bad:
                try:
                    strict.decode(block, final=final)
                except UnicodeDecodeError:
                    bad = True
    return out, bad


def _bad_utf8_file(path: Path) -> bool:
    dec = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        with _open_bytes(path) as fh:
            while block := fh.read(_BLOCK_BYTES):
                dec.decode(block)
        dec.decode(b"", final=True)
        return False
    except UnicodeDecodeError:
        return True


# ---------------------------------------------------------------- CSV, strict pass


class _RecordTooLongError(Exception):
    pass


class _Lines:
    """Physical lines of a text file (ended by ``\\n``, ``\\r\\n`` or ``\\r``, numbered
    from 1) fed to csv.reader, with push-back so that the lines after a malformed
    record's first line are read again."""

    __slots__ = ("fh", "back", "n", "cur", "size")

    def __init__(self, fh: IO[str]) -> None:
        self.fh = fh
        self.back: list[tuple[int, str]] = []
        self.n = 0
        self.cur: list[tuple[int, str]] = []
        self.size = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.back:
            item = self.back.pop()
        else:
            line = self.fh.readline(MAX_RECORD_CHARS + 1)
            if not line:
                raise StopIteration
            if len(line) > MAX_RECORD_CHARS and not line.endswith(("\n", "\r")):
                while (more := self.fh.readline(MAX_RECORD_CHARS)) and not more.endswith(
                    ("\n", "\r")
                ):
                    pass  # the rest of an over-long line is part of the same record
            self.n += 1
            item = (self.n, line)
        self.cur.append(item)
        self.size += len(item[1])
        if self.size > MAX_RECORD_CHARS:
            raise _RecordTooLongError
        return item[1]


def _csv_reason(e: Exception) -> str:
    msg = str(e)
    if isinstance(e, _RecordTooLongError):
        why = f"longer than {MAX_RECORD_CHARS // 2**20} MiB (unclosed quote?)"
    elif "unexpected end of data" in msg:
        why = "unclosed quote"
    elif "expected after" in msg:
        why = "text after a closing quote"
    elif "new-line character" in msg:
        why = "carriage return in an unquoted field"
    else:
        why = msg.splitlines()[0] if msg else type(e).__name__
    return "malformed CSV record: " + why


def _csv_records(fh: IO[str]) -> Iterator[tuple[int, list[str] | None, str, str]]:
    """The records of a CSV text: the header first, then for each record
    ``(first line number, fields, '', its text)``, or ``(first line number, None,
    reason, raw first line)`` for a malformed one (a quote error, a wrong number of
    fields, an over-long record). Blank lines are no records. A malformed record is its
    first line only: the lines after it are read again, so a stray quote costs one
    record."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_CHARS + 1))
    lines = _Lines(fh)
    reader = csv.reader(lines, strict=True)
    ncols = None
    while True:
        lines.cur, lines.size = [], 0
        try:
            rec = next(reader)
            if ncols is not None and rec and len(rec) != ncols:
                reason = "malformed CSV record: wrong number of fields"
            else:
                reason = ""
        except StopIteration:
            return
        except (csv.Error, _RecordTooLongError) as e:
            rec, reason = None, _csv_reason(e)
        if not reason:
            if rec:  # [] is a blank line
                if ncols is None:
                    ncols = len(rec)
                text = lines.cur[0][1] if len(lines.cur) == 1 else "".join(t for _, t in lines.cur)
                yield lines.cur[0][0], rec, "", text
            continue
        first = lines.cur[0] if lines.cur else (lines.n, "")
        lines.back.extend(reversed(lines.cur[1:]))
        yield first[0], None, reason, first[1].rstrip("\r\n")[:2000]


def _open_text(path: Path) -> IO[str]:
    # universal newlines, kept as they are: a line ends at \n, \r\n or \r (as csv wants)
    return open(path, encoding="utf-8-sig", errors="replace", newline="")  # noqa: SIM115


@dataclass
class _CsvCount:
    """The strict pass's account of a CSV file."""

    records: int = 0
    malformed: int = 0
    starts: array = field(default_factory=lambda: array("q"))
    chars: int = 0


class _NotCleanError(Exception):
    pass


def _csv_recover(path: Path, clean: Path) -> tuple[_CsvCount, pa.Table]:
    """The strict reader's pass over a CSV file that is not clean: its well-formed
    records (the header first) copied verbatim to ``clean`` (for DuckDB to parse), the
    count of all records with the start lines and characters of the well-formed ones,
    and the malformed ones as a table (__row, __malformed, __line)."""
    out = _CsvCount()
    add = out.starts.append
    bad: dict[str, list] = {"__row": [], "__malformed": [], "__line": []}
    with _open_text(path) as fh, open(clean, "w", encoding="utf-8", newline="") as dst:
        it = _csv_records(fh)
        for k, (line, rec, reason, text) in enumerate(it):
            if k:
                out.records += 1
            if rec is None:
                out.malformed += 1
                for key, v in zip(bad, (line, reason, text), strict=True):
                    bad[key].append(v)
                continue
            if k:
                add(line)
                out.chars += sum(map(len, rec))
            dst.write(text.rstrip("\r\n") + "\n")  # one kind of line end for DuckDB
    table = pa.table(
        {
            "__row": pa.array(bad["__row"], type=pa.int64()),
            "__malformed": pa.array(bad["__malformed"], type=pa.string()),
            "__line": pa.array(bad["__line"], type=pa.string()),
        }
    )
    return out, table


def _csv_count_clean(path: Path) -> _CsvCount | None:
    """Count a well-formed CSV file's records with the strict parser, in csv's C loop
    (header excluded): the start line of each and the total characters of all fields;
    None at the first quote error, wrong number of fields or over-long record."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_CHARS + 1))
    out = _CsvCount()
    add = out.starts.append
    chars = 0
    with _open_text(path) as fh:
        reader = csv.reader(fh, strict=True)
        ncols, prev = 0, 0
        try:
            for rec in reader:
                if rec:
                    if not ncols:
                        ncols = len(rec)
                    else:
                        n = sum(map(len, rec))
                        if len(rec) != ncols or n > MAX_RECORD_CHARS:
                            raise _NotCleanError
                        add(prev + 1)
                        chars += n
                prev = reader.line_num
        except csv.Error:
            raise _NotCleanError from None
    out.records, out.chars = len(out.starts), chars
    return out


def _csv_count(path: Path) -> _CsvCount | None:
    try:
        return _csv_count_clean(path)
    except _NotCleanError:
        return None


def _csv_header(path: Path, display: Path) -> tuple[list[str], int]:
    """The header's column names (stripped; empty ones named columnN) and its line."""
    with _open_text(path) as fh:
        first = next(_csv_records(fh), None)
    if first is None:
        return [], 0
    line, rec, reason, _ = first
    if rec is None:
        raise InputError(f"cannot read {display} as CSV: header: {reason}")
    names = [h.strip() or f"column{j + 1}" for j, h in enumerate(rec)]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(f"{display}: duplicate column {dup[0]!r} in the CSV header")
    if any(n.startswith("__") for n in names):
        raise InputError(f"{display}: column names starting with '__' are reserved")
    return names, line


def _csv_chunks(path: Path, header: list[str]) -> Iterator[pa.Table]:
    """The CSV file's records as Arrow tables (all text; empty fields null), parsed by
    the strict reader, malformed records with their reason and raw first line."""
    n = len(header)
    with _open_text(path) as fh:
        it = _csv_records(fh)
        next(it, None)
        while True:
            rows, lines, reasons, raws = [], [], [], []
            for line, rec, reason, raw in it:
                rows.append(rec if rec is not None else [None] * n)
                lines.append(line)
                reasons.append(reason or None)
                raws.append(raw if rec is None else None)
                if len(rows) >= _CHUNK_ROWS:
                    break
            cols = list(zip(*rows, strict=True)) if rows else [()] * n
            data = {}
            for name, col in zip(header, cols, strict=True):
                arr = pa.array(col, type=pa.string())
                data[name] = pc.if_else(pc.equal(arr, ""), pa.scalar(None, pa.string()), arr)
            data["__row"] = pa.array(lines, type=pa.int64())
            data["__malformed"] = pa.array(reasons, type=pa.string())
            data["__line"] = pa.array(raws, type=pa.string())
            yield pa.table(data)
            if len(rows) < _CHUNK_ROWS:
                return


# ---------------------------------------------------------------- JSON Lines


def _jsonl_count(path: Path) -> int:
    """Non-blank lines (split at \\n only; blank: spaces, tabs and CR)."""
    n = 0
    with _open_bytes(path) as fh:
        for i, line in enumerate(fh):
            if i == 0:
                line = line.removeprefix(b"\xef\xbb\xbf")
            if line.strip(b" \t\r\n"):
                n += 1
    return n


def _jsonl_table(lines: list[bytes], first: int) -> pa.Table:
    text = pa.array(lines, type=pa.binary()).cast(pa.string())
    nums = pa.array(np.arange(first, first + len(lines), dtype=np.int64))
    keep = pc.greater(pc.utf8_length(pc.utf8_trim(text, " \t\r")), 0)
    return pa.table({"line": text, "__row": nums}).filter(keep)


def _jsonl_chunks(path: Path) -> Iterator[tuple[pa.Table, bool]]:
    """Non-blank lines with their 1-based line numbers, in blocks (a line is split at
    \\n only, so a block never cuts a UTF-8 character); the flag says when invalid UTF-8
    was replaced by U+FFFD in the block."""
    lineno, rest, first = 1, b"", True
    with _open_bytes(path) as fh:
        while True:
            block = fh.read(_BLOCK_BYTES)
            data = rest + block
            if first:
                data, first = data.removeprefix(b"\xef\xbb\xbf"), False
            if block:
                cut = data.rfind(b"\n")
                if cut < 0:
                    rest = data
                    continue
                rest, data = data[cut + 1 :], data[:cut]
            elif not data:
                return
            bad = _bad_utf8(data)
            if bad:
                data = data.decode("utf-8", "replace").encode("utf-8")
            parts = data.split(b"\n")
            yield _jsonl_table(parts, lineno), bad
            lineno += len(parts)
            if not block:
                return


def _bad_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


# ---------------------------------------------------------------- validation SQL

#: Text timestamps: RFC 3339 (date, 'T' or a space, time with seconds, optional
#: fraction, 'Z', ' UTC' or a numeric offset) or a plain date; no zone means UTC.
_TS_SHAPE = (
    r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}([T ]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    r"(\.[0-9]+)?\s*(Z|UTC|[+-][0-9]{2}(:?[0-9]{2})?)?)?\s*$"
)
#: ... with a numeric UTC offset beyond +-18:00 (java.time's limit, so Spark agrees; real
#: zones are -12:00..+14:00) or with minutes over 59.
_TS_BAD_OFFSET = (
    r":[0-9]{2}(\.[0-9]+)?\s*[+-]((19|[2-9][0-9])(:?[0-9]{2})?|18:?(0[1-9]|[1-5][0-9])"
    r"|[0-9]{2}:?[6-9][0-9])\s*$"
)
#: Accepted timestamps: from 1970-01-01T00:00:00Z up to, not including, 2200-01-01.
TS_MIN_EPOCH = 0
TS_MAX_EPOCH = 7_258_118_400
TS_RANGE_REASON = "out of range (before 1970 or from 2200 on)"
_INT_TEXT = r"^\s*([+-]?[0-9]+)(\.0*)?\s*$"
_FLOAT_TEXT = r"^\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*$"
#: A required id made of nothing but white space, control or invisible characters.
_BLANK = (
    r"^[\s\x00-\x1F\x7F\x{85}\x{A0}\x{1680}\x{2000}-\x{200B}\x{2028}\x{2029}"
    r"\x{202F}\x{205F}\x{3000}\x{FEFF}]*$"
)
_NUMERIC = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT")
_UNSIGNED = ("UINTEGER", "UBIGINT", "UHUGEINT")


def _is_nested(raw_t: str) -> bool:
    return raw_t.endswith("]") or raw_t.startswith(("STRUCT", "MAP", "UNION", "ARRAY", "LIST"))


def _in_range(ts: str) -> str:
    return f"(epoch({ts}) >= {TS_MIN_EPOCH} AND epoch({ts}) < {TS_MAX_EPOCH})"


#: What `_column_sql` returns: helper columns computed once in an inner query
#: ("expr AS name"), the typed value and the quarantine reasons (over raw and helpers).
_ColumnSql = tuple[list[str], str, list[str]]


def _timestamp_sql(c: str, col: str, raw_t: str, h: str) -> _ColumnSql:
    ts = f"{h}ts"
    if raw_t == "VARCHAR":
        helpers = [
            f"TRY_CAST({col} AS TIMESTAMPTZ) AS {ts}",
            f"regexp_matches({col}, {_lit(_TS_SHAPE)}) AS {h}shape",
            f"NOT regexp_matches({col}, {_lit(_TS_BAD_OFFSET)}) AS {h}zone",
        ]
        value = f"CASE WHEN {h}shape AND {h}zone AND {_in_range(ts)} THEN {ts} END"
        reason = (
            f"CASE WHEN {col} IS NULL THEN NULL "
            f"WHEN NOT {h}shape THEN '{c}: unparseable timestamp' "
            f"WHEN NOT {h}zone THEN '{c}: UTC offset out of range (beyond 18:00)' "
            f"WHEN {ts} IS NULL THEN '{c}: unparseable timestamp' "
            f"WHEN NOT {_in_range(ts)} THEN '{c}: {TS_RANGE_REASON}' END"
        )
        return helpers, value, [reason]
    if raw_t.startswith("TIMESTAMP"):
        value = f"CASE WHEN {_in_range(ts)} THEN {ts} END"
        reason = (
            f"CASE WHEN {ts} IS NOT NULL AND NOT {_in_range(ts)} THEN '{c}: {TS_RANGE_REASON}' END"
        )
        return [f"CAST({col} AS TIMESTAMPTZ) AS {ts}"], value, [reason]
    return (
        [],
        "NULL::TIMESTAMPTZ",
        [f"CASE WHEN {col} IS NOT NULL THEN '{c}: wrong type {raw_t}' END"],
    )


def _number_sql(c: str, col: str, raw_t: str, lt: str, h: str) -> _ColumnSql:
    base = raw_t.split("(")[0]
    if raw_t == "VARCHAR":
        if lt == "int":
            expr = f"TRY_CAST(NULLIF(regexp_extract({col}, {_lit(_INT_TEXT)}, 1), '') AS BIGINT)"
        else:
            expr = f"CASE WHEN regexp_matches({col}, {_lit(_FLOAT_TEXT)}) THEN TRY_CAST({col} AS DOUBLE) END"
    elif base in _NUMERIC or base in _UNSIGNED:
        expr = f"TRY_CAST({col} AS {_SQL_TYPES[lt]})"
    elif base in ("DOUBLE", "FLOAT", "REAL", "DECIMAL"):
        expr = (
            f"CASE WHEN {col} = round({col}) AND abs({col}) < 9.2e18 THEN TRY_CAST({col} AS BIGINT) END"
            if lt == "int"
            else f"CAST({col} AS DOUBLE)"
        )
    else:
        expr = f"NULL::{_SQL_TYPES[lt]}"
    value = f"{h}v"
    reason = f"CASE WHEN {col} IS NOT NULL AND {value} IS NULL THEN '{c}: wrong type' END"
    return [f"{expr} AS {value}"], value, [reason]


def _column_sql(c: str, raw_t: str, h: str) -> _ColumnSql:
    """Column ``c`` (raw type ``raw_t``): helper columns (named with prefix ``h``), its
    typed value and its quarantine reasons."""
    lt = schema.ALL[c]
    col = _q(c)
    if lt == "timestamp":
        helpers, value, reasons = _timestamp_sql(c, col, raw_t, h)
    elif lt in ("int", "float"):
        helpers, value, reasons = _number_sql(c, col, raw_t, lt, h)
    elif _is_nested(raw_t):
        helpers, value = [], "NULL::VARCHAR"
        reasons = [f"CASE WHEN {col} IS NOT NULL THEN '{c}: wrong type' END"]
    else:
        helpers, value = [], f"CAST({col} AS VARCHAR)"
        reasons = [f"CASE WHEN {value} = chr(0) || '__wrongtype__' THEN '{c}: wrong type' END"]
    if c in schema.REQUIRED:
        blank = (
            f" OR regexp_matches({value}, {_lit(_BLANK)})"
            if lt == "string" and c != "prompt"
            else ""
        )
        reasons.append(f"CASE WHEN {col} IS NULL{blank} THEN 'missing required value {c}' END")
    return helpers, value, reasons


# ---------------------------------------------------------------- loader


class Loader:
    """Validates sources into an engine's ``events`` and ``quarantine`` tables.

    The public part, for engines with their own reader (Spark): `expect` (a source's
    own record count), `add_typed` (a source as a view of typed columns), `add_empty`
    (an empty file), `finish` (events, quarantine, reconciliation, de-duplication) and
    `report`. ``eng`` needs ``run(sql)`` and ``con.execute(sql)`` (DuckDB's API)."""

    def __init__(self, eng: DuckDBEngine, tmpdir: str) -> None:
        self.eng = eng
        self.tmpdir = tmpdir
        self.parts: list[tuple[str, set[str]]] = []  # (view name, known columns present)
        self.report = LoadReport(files=[])
        self.quarantine_parts: dict[int, str] = {}  # source index -> its quarantine query
        self.expected: list[tuple[int, str, int]] = []  # (index, file, records in the source)

    def expect(self, idx: int, path: Path | str, records: int) -> None:
        """The source's own record count for file ``idx`` (counted apart from the parser)."""
        self.expected.append((idx, str(path), int(records)))

    # -- per format: a raw view with text/typed columns, a row number and a 'malformed' reason
    def add_parquet(self, idx: int, path: Path) -> None:
        try:
            cols = self.eng.con.execute(
                f"DESCRIBE SELECT * FROM read_parquet({_lit(str(path))})"
            ).fetchall()
        except Exception as e:
            raise InputError(f"cannot read {path} as Parquet: {str(e).splitlines()[0]}") from None
        self.expect(idx, path, self._parquet_rows(path))
        types = {c[0]: c[1] for c in cols}
        src = f"read_parquet({_lit(str(path))}, file_row_number=true)"
        self.add_typed(idx, path, src, types, row_expr="file_row_number + 1")

    def _parquet_rows(self, path: Path) -> int:
        """Rows in the Parquet footer (row-group metadata), read by pyarrow."""
        import pyarrow.parquet as pq

        try:
            return int(pq.read_metadata(path).num_rows)
        except Exception:  # noqa: BLE001 - a footer pyarrow rejects: ask DuckDB's footer reader
            return int(
                self.eng.con.execute(
                    f"SELECT sum(num_rows) FROM parquet_file_metadata({_lit(str(path))})"
                ).fetchall()[0][0]
            )

    def add_relation(self, idx: int, name: str, view: str, rows: int) -> None:
        self.expect(idx, name, rows)
        types = {c[0]: c[1] for c in self.eng.con.execute(f"DESCRIBE {view}").fetchall()}
        src = f"(SELECT *, row_number() OVER () AS __row FROM {view})"
        self.add_typed(idx, Path(name), src, types, row_expr="__row")

    def add_csv(self, idx: int, path: Path) -> None:
        orig = path
        check_text_start(path)
        path = self._maybe_repair(path)
        header, header_line = _csv_header(path, orig)
        if not header:
            self.add_empty(idx, orig)
            return
        missing = [c for c in schema.REQUIRED if c not in header]
        if missing:
            raise InputError(f"{orig}: missing required column {missing[0]!r}")
        # the strict count runs beside DuckDB's parse (csv holds the GIL, DuckDB does not)
        with ThreadPoolExecutor(1) as pool:
            counting = pool.submit(_csv_count, path)
            fast = header_line == 1 and self._csv_duckdb(idx, path, header)
            count = counting.result()
        types = dict.fromkeys(header, "VARCHAR")
        raw = f"left(CAST({_q('prompt')} AS VARCHAR), 2000)"
        src = self._csv_agrees(idx, header, count) if fast and count is not None else None
        if src is None:  # malformed records, or DuckDB read the file differently
            count, src = self._csv_recovered(idx, path, header)
            self.report.csv_strict_parse_files.append(str(orig))
            raw = f"coalesce(__line, {raw})"
            types["__malformed"] = "VARCHAR"
        self.expect(idx, orig, count.records)
        self.add_typed(idx, orig, src, types, row_expr="__row", raw_expr=raw)

    def _csv_recovered(self, idx: int, path: Path, header: list[str]) -> tuple[_CsvCount, str]:
        """The strict reader's records: the well-formed ones parsed by DuckDB from a clean
        copy (checked against the strict count), the malformed ones with their reason."""
        clean = Path(self.tmpdir) / f"clean_{idx}.csv"
        count, bad = _csv_recover(path, clean)
        src = self._csv_agrees(idx, header, count) if self._csv_duckdb(idx, clean, header) else None
        clean.unlink()
        if src is None:  # DuckDB still disagrees: the strict reader's fields, as they are
            self._csv_strict(idx, path, header)
            return count, f"raw_{idx}"
        self.eng.con.register("__csv_bad", bad)
        try:
            self.eng.run(f"CREATE OR REPLACE TEMP TABLE csvbad_{idx} AS SELECT * FROM __csv_bad")
        finally:
            self.eng.con.unregister("__csv_bad")
        good = f"SELECT *, NULL::VARCHAR AS __malformed, NULL::VARCHAR AS __line FROM {src}"
        return count, f"({good} UNION ALL BY NAME SELECT * FROM csvbad_{idx}) AS csvall_{idx}"

    def _csv_duckdb(self, idx: int, path: Path, header: list[str]) -> bool:
        """DuckDB's parse of a CSV file into csvraw_{idx}; False when DuckDB rejects it."""
        cols = "{" + ", ".join(f"{_lit(h)}: 'VARCHAR'" for h in header) + "}"
        try:
            self.eng.run(
                f"CREATE OR REPLACE TEMP TABLE csvraw_{idx} AS SELECT *, row_number() OVER () "
                f"AS __rec FROM read_csv({_lit(str(path))}, columns={cols}, header=true, "
                "delim=',', quote='\"', escape='\"', auto_detect=false, strict_mode=true, "
                f"parallel=false, null_padding=false, max_line_size={MAX_RECORD_CHARS})"
            )
            return True
        except Exception:  # noqa: BLE001 - any DuckDB parse error: the strict reader decides
            return False

    def _csv_agrees(self, idx: int, header: list[str], count: _CsvCount) -> str | None:
        """The rows of DuckDB's parse with their line numbers (a query), when DuckDB read
        exactly the records and characters the strict pass counted; else None."""
        total = " + ".join(f"coalesce(length({_q(h)}), 0)" for h in header)
        n, chars = self.eng.con.execute(
            f"SELECT count(*), coalesce(sum({total}), 0) FROM csvraw_{idx}"
        ).fetchall()[0]
        if n != len(count.starts) or chars != count.chars:
            self.eng.run(f"DROP TABLE csvraw_{idx}")
            return None
        starts = np.frombuffer(count.starts, dtype=np.int64)
        if n == 0 or starts[-1] == n + 1:  # one line per record, no blank lines
            return f"(SELECT *, __rec + 1 AS __row FROM csvraw_{idx}) AS csv_{idx}"
        lines = pa.table({"__rec": np.arange(1, n + 1, dtype=np.int64), "__row": starts})
        self.eng.con.register("__csv_starts", lines)
        try:
            self.eng.run(
                f"CREATE OR REPLACE TEMP TABLE csvlines_{idx} AS SELECT * FROM __csv_starts"
            )
        finally:
            self.eng.con.unregister("__csv_starts")
        return f"(SELECT c.*, s.__row FROM csvraw_{idx} c JOIN csvlines_{idx} s USING (__rec)) AS csv_{idx}"

    def _csv_strict(self, idx: int, path: Path, header: list[str]) -> None:
        """Parse with the strict reader into raw_{idx}, malformed records included."""
        for k, chunk in enumerate(_csv_chunks(path, header)):
            self.eng.con.register("__csv_chunk", chunk)
            try:
                if k == 0:
                    self.eng.run(
                        f"CREATE OR REPLACE TEMP TABLE raw_{idx} AS SELECT * FROM __csv_chunk"
                    )
                else:
                    self.eng.run(f"INSERT INTO raw_{idx} SELECT * FROM __csv_chunk")
            finally:
                self.eng.con.unregister("__csv_chunk")

    def add_jsonl(self, idx: int, path: Path) -> None:
        orig = path
        check_text_start(path, jsonl=True)
        self.expect(idx, orig, _jsonl_count(path))
        repaired = False
        self.eng.run(f"CREATE OR REPLACE TEMP TABLE lines_{idx} (line VARCHAR, __row BIGINT)")
        for chunk, bad in _jsonl_chunks(path):
            repaired |= bad
            self.eng.con.register("__jsonl_chunk", chunk)
            try:
                self.eng.run(f"INSERT INTO lines_{idx} SELECT * FROM __jsonl_chunk")
            finally:
                self.eng.con.unregister("__jsonl_chunk")
        if repaired:
            self.report.utf8_repaired_files.append(str(orig))
        keys = [
            r[0]
            for r in self.eng.con.execute(
                f"SELECT DISTINCT unnest(json_keys(line)) AS k FROM lines_{idx} "
                "WHERE json_valid(line) AND json_type(line) = 'OBJECT' ORDER BY k"
            ).fetchall()
        ]
        known = self._jsonl_columns(idx, keys)
        if not keys:
            n = self.eng.con.execute(f"SELECT count(*) FROM raw_{idx}").fetchall()[0][0]
            if n == 0:
                self.report.files.append(str(orig))
                return
        types = dict.fromkeys(known, "VARCHAR")
        types["__malformed"] = "VARCHAR"
        self.add_typed(
            idx,
            orig,
            f"raw_{idx}",
            types,
            row_expr="__row",
            fixed_required=bool(keys),
            raw_expr="__line",
        )

    def _jsonl_columns(self, idx: int, keys: list[str]) -> list[str]:
        """raw_{idx}: the known keys of each JSON line as text (arrays and objects marked
        as a wrong type), the line number and why a line is malformed."""
        known = [k for k in keys if k in schema.ALL]
        sel = []
        for k in known:
            path_expr = _lit("$." + '"' + k.replace('"', '\\"') + '"')
            sel.append(
                f"CASE WHEN json_type(j, {path_expr}) IN ('ARRAY', 'OBJECT') THEN chr(0) || '__wrongtype__' "
                f"ELSE json_extract_string(j, {path_expr}) END AS {_q(k)}"
            )
        unknown = sorted(set(keys) - set(schema.ALL) - set(schema.EVALUATION_ONLY))
        self.report.unknown_columns.extend(
            c for c in unknown if c not in self.report.unknown_columns
        )
        sel_sql = (", ".join(sel) + ", ") if sel else ""
        self.eng.run(
            f"CREATE OR REPLACE TEMP TABLE raw_{idx} AS SELECT {sel_sql}__row, left(line, 2000) AS __line, "
            "CASE WHEN NOT json_valid(line) THEN 'malformed JSON line' "
            "WHEN json_type(j) <> 'OBJECT' THEN 'JSON line is not an object' END AS __malformed "
            f"FROM (SELECT line, __row, CASE WHEN json_valid(line) THEN line ELSE '{{}}' END AS j "
            f"FROM lines_{idx})"
        )
        self.eng.run(f"DROP TABLE lines_{idx}")
        return known

    # -- shared steps
    def _maybe_repair(self, path: Path) -> Path:
        fixed, repaired = _utf8_clean(path, self.tmpdir)
        if repaired:
            self.report.utf8_repaired_files.append(str(path))
        return fixed

    def add_empty(self, idx: int, path: Path) -> None:
        """Source ``idx`` is an empty file: no records, no rows."""
        self.report.files.append(str(path))
        self.expect(idx, path, 0)

    def add_typed(
        self,
        idx: int,
        path: Path,
        src: str,
        types: dict[str, str],
        *,
        row_expr: str,
        fixed_required: bool = True,
        raw_expr: str | None = None,
    ) -> None:
        """Source ``idx`` read from ``src`` (a table, view or subquery whose columns have
        the DuckDB ``types``; ``row_expr`` its 1-based row position): a view of typed,
        validated values and a table of its quarantined rows."""
        present = [c for c in types if c in schema.ALL]
        missing = [c for c in schema.REQUIRED if c not in types]
        if missing and fixed_required:
            raise InputError(f"{path}: missing required column {missing[0]!r}")
        for c in sorted(types):
            if (
                c not in schema.ALL
                and c not in schema.EVALUATION_ONLY
                and not c.startswith("__")
                and c != "file_row_number"
                and c not in self.report.unknown_columns
            ):
                self.report.unknown_columns.append(c)
        helpers, sel, reasons = [], [], []
        for k, c in enumerate(present):
            hs, value, why = _column_sql(c, types[c].upper(), f"__h{k}_")
            helpers.extend(hs)
            sel.append(f"{value} AS {_q(c)}")
            reasons.extend(why)
        if helpers:  # computed once per row, used by the value and the reasons
            src = f"(SELECT *, {', '.join(helpers)} FROM {src}) AS __checked"
        reason_sql = "concat_ws('; ', " + ", ".join(reasons) + ")" if reasons else "''"
        if "__malformed" in types:
            reason_sql = f"coalesce(__malformed, {reason_sql})"
        raw_cols = [c for c in ("request_id", "account_id", "timestamp") if c in types]
        raw_sel = "".join(f"CAST({_q(c)} AS VARCHAR) AS __raw_{c}, " for c in raw_cols)
        if raw_expr is None:
            raw_expr = "left(CAST(prompt AS VARCHAR), 2000)" if "prompt" in types else "NULL"
        self.eng.run(
            f"CREATE OR REPLACE TEMP VIEW chk_{idx} AS SELECT {', '.join(sel)}, "
            f"{raw_sel}{raw_expr} AS __raw_prompt, "
            f"CAST({row_expr} AS BIGINT) AS _row, {idx} AS _src, {reason_sql} AS _reason FROM {src}"
        )
        self.parts.append((f"chk_{idx}", set(present)))
        self.report.files.append(str(path))
        # built in `finish`, and only for a source whose valid rows fall short of its
        # record count (a source with every record valid has nothing to quarantine)
        self.quarantine_parts[idx] = (
            f"SELECT {_lit(str(path))} AS source, _row AS row_number, _reason AS reason, "
            + ", ".join(
                f"{'__raw_' + c if c in raw_cols else 'NULL::VARCHAR'} AS {c}"
                for c in ("request_id", "account_id", "timestamp")
            )
            + f", __raw_prompt AS raw FROM chk_{idx} WHERE _reason <> ''"
        )

    # -- after every file
    def finish(self) -> None:
        rep = self.report
        present = set().union(*(p for _, p in self.parts)) if self.parts else set()
        ordered = [c for c in schema.ALL if c in present - set(schema.NOT_READ)]
        for c in schema.REQUIRED:
            if c not in ordered:
                ordered.append(c)
        rep.columns_present = [c for c in ordered if c in present]
        rep.ignored_columns = sorted(present & set(schema.NOT_READ))
        self._events(ordered, "account_created_at" in present)
        valid, n_hashes = self._counts()
        self._quarantine(valid)
        self._reconcile(valid)
        self._dedup(ordered, "account_created_at" in present, n_hashes)
        if isinstance(self.eng, DuckDBEngine):  # events are materialised: free the inputs
            self.eng.run("DROP VIEW IF EXISTS _valid")
            for idx, _, _ in self.expected:
                self.eng.run(f"DROP VIEW IF EXISTS chk_{idx}")
                for t in ("qchk", "raw", "csvraw", "csvlines", "csvbad", "lines"):
                    self.eng.run(f"DROP TABLE IF EXISTS {t}_{idx}")

    def _events(self, ordered: list[str], created: bool) -> None:
        """One materialisation of the valid rows (no sort: every later step is an
        aggregate or an explicitly ordered window)."""
        selects = []
        for view, cols in self.parts:
            items = [
                _q(c) if c in cols else f"NULL::{_SQL_TYPES[schema.ALL[c]]} AS {_q(c)}"
                for c in ordered
            ]
            selects.append(f"SELECT {', '.join(items)}, _src, _row FROM {view} WHERE _reason = ''")
        if not selects:
            cols_sql = ", ".join(f"NULL::{_SQL_TYPES[schema.ALL[c]]} AS {_q(c)}" for c in ordered)
            selects.append(f"SELECT {cols_sql}, 0 AS _src, 0::BIGINT AS _row WHERE false")
        e = self.eng
        e.run(f"CREATE OR REPLACE TEMP VIEW _valid AS {' UNION ALL '.join(selects)}")
        # the prompt cut only when it is longer (no copy of every prompt). A string has
        # no more characters than UTF-8 bytes, so the characters are counted only in
        # prompts with more bytes than the limit (counting every prompt's characters,
        # twice, was a seventh of Spark's work here at 3M)
        long = f"(strlen(prompt) > {MAX_PROMPT_CHARS} AND length(prompt) > {MAX_PROMPT_CHARS})"
        cut = f"CASE WHEN {long} THEN left(prompt, {MAX_PROMPT_CHARS}) ELSE prompt END AS prompt"
        cols_sql = ", ".join(cut if c == "prompt" else _q(c) for c in ordered)
        extra_sql = ", epoch(account_created_at) AS created_t" if created else ""
        e.run(
            f"CREATE OR REPLACE TEMP TABLE events AS SELECT {cols_sql}, epoch(timestamp) AS t"
            f"{extra_sql}, {account_key_sql()} AS _aid, _src, _row, {long} AS _trunc FROM _valid"
        )

    def _quarantine(self, valid: dict[int, int]) -> None:
        """The quarantined rows of every source whose valid rows (``valid``: per source
        index) fall short of its record count; the reconciliation then checks that
        valid plus quarantined rows equal each source's own count."""
        e = self.eng
        short = [
            idx
            for idx, _, n in self.expected
            if idx in self.quarantine_parts and valid.get(idx, 0) != n
        ]
        for idx in short:
            e.run(f"CREATE OR REPLACE TEMP TABLE qchk_{idx} AS {self.quarantine_parts[idx]}")
        if short:
            e.run(
                "CREATE OR REPLACE TEMP TABLE quarantine AS "
                + " UNION ALL ".join(f"SELECT * FROM qchk_{idx}" for idx in short)
            )
        else:
            e.run(
                "CREATE OR REPLACE TEMP TABLE quarantine AS SELECT NULL::VARCHAR AS source, "
                "NULL::BIGINT AS row_number, NULL::VARCHAR AS reason, NULL::VARCHAR AS request_id, "
                "NULL::VARCHAR AS account_id, NULL::VARCHAR AS timestamp, NULL::VARCHAR AS raw WHERE false"
            )
        qr = e.con.execute(
            "SELECT reason, count(*) FROM quarantine GROUP BY reason ORDER BY reason"
        ).fetchall()
        self.report.quarantine_reasons = {r: int(n) for r, n in qr}
        self.report.rows_quarantined = int(sum(n for _, n in qr))

    def _reconcile(self, valid: dict[int, int]) -> None:
        """rows_valid (``valid``: per source index) + rows_quarantined must equal each
        source's own record count."""
        rep, e = self.report, self.eng
        quarantined = {
            str(s): int(n)
            for s, n in e.con.execute(
                "SELECT source, count(*) FROM quarantine GROUP BY source"
            ).fetchall()
        }
        want: dict[str, int] = {}
        got: dict[str, int] = {}
        for idx, name, n in self.expected:
            want[name] = want.get(name, 0) + n
            got[name] = got.get(name, 0) + valid.get(idx, 0)
        for name, n in want.items():
            v, q = got[name], quarantined.get(name, 0)
            if v + q != n:
                raise InputError(
                    f"{name}: the file holds {n} records but {v} were read as valid and {q} "
                    "quarantined; refusing to report on a partial read"
                )
        rep.source_records = want
        rep.rows_valid = sum(valid.values())
        rep.rows_read = sum(want.values())
        if rep.rows_valid + rep.rows_quarantined != rep.rows_read:
            raise InputError(
                f"read {rep.rows_valid} valid and {rep.rows_quarantined} quarantined rows "
                f"from sources holding {rep.rows_read} records"
            )

    def _counts(self) -> tuple[dict[int, int], int]:
        """The valid rows of each source (by index), and the distinct 64-bit hashes of
        the request ids, in one pass over the events (Spark took two 3M-row passes for
        a grouped count and a distinct count); records the prompts cut."""
        e = self.eng
        idxs = sorted({idx for idx, _, _ in self.expected})
        grouped = len(idxs) > MAX_SOURCE_COLUMNS
        inner = "" if grouped else "".join(f", count_if(_src = {i}) AS _n{i}" for i in idxs)
        outer = "" if grouped else "".join(f", coalesce(sum(_n{i}), 0)" for i in idxs)
        # as many distinct 64-bit hashes of the ids as rows proves the ids distinct
        # (distinct hashes <= distinct ids <= rows), and hashes count faster than text.
        # The hashes are grouped, not counted DISTINCT: an engine may then skip the
        # pre-aggregation that nearly unique keys make useless (Spark: `_many_groups`)
        row = e.con.execute(
            "SELECT count(*), coalesce(sum(_tr), 0)"
            f"{outer} FROM (SELECT hash(request_id) AS _h, "
            f"sum(CAST(_trunc AS INTEGER)) AS _tr{inner} FROM events GROUP BY 1)"
        ).fetchall()[0]
        self.report.prompts_truncated = int(row[1])
        if grouped:  # one column per source would make a very wide aggregate
            q = "SELECT _src, count(*) FROM events GROUP BY _src"
            valid = {int(s): int(n) for s, n in e.con.execute(q).fetchall()}
        else:
            valid = {i: int(n) for i, n in zip(idxs, row[2:], strict=True)}
        return valid, int(row[0])

    def _dedup(self, ordered: list[str], created: bool, n_hashes: int) -> None:
        """Keep the first row (by time, source, row) of each request id, when the ids
        are not all distinct (``n_hashes``: distinct hashes of the ids)."""
        rep, e = self.report, self.eng
        if n_hashes >= rep.rows_valid:
            return
        keep = ", ".join(_q(c) for c in ordered) + ", t" + (", created_t" if created else "")
        keep += ", _aid"
        dup = e.con.execute(
            "SELECT request_id, count(*) AS n FROM events GROUP BY request_id "
            "HAVING count(*) > 1 ORDER BY request_id"
        ).df()
        rep.duplicate_request_ids = len(dup)
        rep.duplicate_rows_dropped = int(dup["n"].sum() - len(dup))
        rep.duplicate_examples = [str(x) for x in dup["request_id"].head(10)]
        e.run(
            f"CREATE OR REPLACE TEMP TABLE _dedup AS SELECT {keep} FROM (SELECT *, row_number() "
            "OVER (PARTITION BY request_id ORDER BY t, _src, _row) AS __k FROM events) "
            "WHERE __k = 1"
        )
        e.run("DROP TABLE events")
        e.run("ALTER TABLE _dedup RENAME TO events")


def load_events(
    eng: DuckDBEngine,
    source: Any,
) -> LoadReport:
    """Load logs (paths, a pandas DataFrame, a pyarrow Table or a DuckDB relation) into
    the engine's ``events`` table and ``quarantine`` table."""
    tmpdir = tempfile.mkdtemp(prefix="distilltrace-read-")
    try:
        loader = Loader(eng, tmpdir)
        if isinstance(source, str | os.PathLike):
            source = [source]
        if isinstance(source, pd.DataFrame) or is_arrow(source) or _is_duckdb_rel(source):
            obj = source.arrow() if _is_duckdb_rel(source) else source
            if hasattr(obj, "read_all"):  # a RecordBatchReader
                obj = obj.read_all()
            eng.con.register("__input_rel", obj)
            eng.run("CREATE OR REPLACE TEMP VIEW __input AS SELECT * FROM __input_rel")
            rows = len(obj) if isinstance(obj, pd.DataFrame) else getattr(obj, "num_rows", None)
            if rows is None:
                rows = eng.con.execute("SELECT count(*) FROM __input_rel").fetchall()[0][0]
            loader.add_relation(0, "<relation>", "__input", rows)
        else:
            _load_paths(loader, [Path(p) for p in source])
        loader.finish()
        return loader.report
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


#: The former private name (tests patch methods through it).
_Loader = Loader


def _load_paths(loader: Loader, paths: list[Path]) -> None:
    if not paths:
        raise InputError("no log files given")
    for i, p in enumerate(paths):
        check_readable(p)
        if p.stat().st_size == 0:
            loader.add_empty(i, p)
            continue
        fmt = detect_format(p)
        try:
            if fmt == "parquet":
                loader.add_parquet(i, p)
            elif fmt == "jsonl":
                loader.add_jsonl(i, p)
            else:
                loader.add_csv(i, p)
        except (OSError, EOFError, zlib.error) as e:  # e.g. a truncated .gz, a read error
            raise InputError(
                f"cannot read {p}: {str(e).splitlines()[0] if str(e) else e!r}"
            ) from None


def is_arrow(obj: Any) -> bool:
    """True for a pyarrow object (a Table, RecordBatch or RecordBatchReader)."""
    return type(obj).__module__.startswith("pyarrow")


def _is_duckdb_rel(obj: Any) -> bool:
    return type(obj).__name__ == "DuckDBPyRelation"
