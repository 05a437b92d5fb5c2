"""Read traffic logs (Parquet, JSON Lines, CSV) into a validated ``events`` table.

Every row either becomes an event or is quarantined with a reason (missing required
value, unparseable timestamp, wrong type, malformed line); nothing is dropped
silently. Duplicate ``request_id``s are counted and the first (earliest timestamp,
then file order) is kept. ``campaign_id`` (ground truth) is never loaded, nor are the
large text columns the detectors do not use (``response``, ``system_prompt``).
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from distilltrace.errors import InputError
from distilltrace.traffic import schema
from distilltrace.traffic.engine import DuckDBEngine

#: Prompts are stored up to this many characters (longer text is truncated, counted).
MAX_PROMPT_CHARS = 4000
_SQL_TYPES = {"string": "VARCHAR", "int": "BIGINT", "float": "DOUBLE", "timestamp": "TIMESTAMPTZ"}


@dataclass
class LoadReport:
    """What ingestion saw: files, rows, quarantine and duplicates."""

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

    def to_dict(self) -> dict:
        return asdict(self)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


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


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise InputError(f"log file not found: {path}")
    if path.is_dir():
        raise InputError(f"log path is a directory, not a file: {path}")
    try:
        with open(path, "rb") as fh:
            fh.read(1)
    except OSError as e:
        raise InputError(f"cannot read log file {path}: {e.strerror or e}") from None


def _repair_utf8(path: Path, tmpdir: str) -> Path | None:
    """A UTF-8-clean copy of a text file (invalid bytes -> U+FFFD), or None if already clean."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
        return None
    except UnicodeDecodeError:
        pass
    fixed = data.decode("utf-8", errors="replace").encode("utf-8")
    out = Path(tmpdir) / (path.name + ".utf8")
    out.write_bytes(fixed)
    return out


def _csv_header(path: Path) -> list[str]:
    with open(path, encoding="utf-8", errors="replace", newline="") as fh:
        first = fh.readline()
    if not first.strip():
        return []
    return [h.strip() for h in next(csv.reader(io.StringIO(first)))]


class _Loader:
    def __init__(self, eng: DuckDBEngine, tmpdir: str) -> None:
        self.eng = eng
        self.tmpdir = tmpdir
        self.parts: list[tuple[str, set[str]]] = []  # (view name, known columns present)
        self.report = LoadReport(files=[])
        self.quarantine_parts: list[str] = []

    # -- per format: a raw view with text/typed columns, a row number and a 'malformed' reason
    def add_parquet(self, idx: int, path: Path) -> None:
        try:
            cols = self.eng.con.execute(
                f"DESCRIBE SELECT * FROM read_parquet({_lit(str(path))})"
            ).fetchall()
        except Exception as e:
            raise InputError(f"cannot read {path} as Parquet: {str(e).splitlines()[0]}") from None
        types = {c[0]: c[1] for c in cols}
        src = f"read_parquet({_lit(str(path))}, file_row_number=true)"
        self._typed(idx, path, src, types, row_expr="file_row_number")

    def add_relation(self, idx: int, name: str, view: str) -> None:
        types = {c[0]: c[1] for c in self.eng.con.execute(f"DESCRIBE {view}").fetchall()}
        src = f"(SELECT *, row_number() OVER () - 1 AS __row FROM {view})"
        self._typed(idx, Path(name), src, types, row_expr="__row")

    def add_csv(self, idx: int, path: Path) -> None:
        orig = path
        path = self._maybe_repair(path)
        header = _csv_header(path)
        if not header:
            self._empty(idx, path)
            return
        cols = "{" + ", ".join(f"{_lit(h)}: 'VARCHAR'" for h in header) + "}"
        rej = f"rej_{idx}"
        try:
            self.eng.run(
                f"CREATE OR REPLACE TEMP TABLE raw_{idx} AS SELECT *, row_number() OVER () AS __row "
                f"FROM read_csv({_lit(str(path))}, columns={cols}, header=true, delim=',', "
                f"quote='\"', escape='\"', auto_detect=false, store_rejects=true, "
                f"rejects_table='{rej}', rejects_scan='{rej}_scan', strict_mode=false, "
                "parallel=false, null_padding=false)"
            )
        except Exception as e:
            raise InputError(f"cannot read {path} as CSV: {str(e).splitlines()[0]}") from None
        types = dict.fromkeys(header, "VARCHAR")
        self._typed(idx, path, f"raw_{idx}", types, row_expr="__row", display=orig)
        self._rejects(idx, orig, rej, "malformed CSV record")

    def add_jsonl(self, idx: int, path: Path) -> None:
        orig = path
        path = self._maybe_repair(path)
        rej = f"rej_{idx}"
        try:
            self.eng.run(
                f"CREATE OR REPLACE TEMP TABLE lines_{idx} AS SELECT line, row_number() OVER () AS __row "
                f"FROM read_csv({_lit(str(path))}, columns={{'line': 'VARCHAR'}}, header=false, "
                f"delim=chr(31), quote='', escape='', auto_detect=false, store_rejects=true, "
                f"rejects_table='{rej}', rejects_scan='{rej}_scan', strict_mode=false, parallel=false)"
            )
        except Exception as e:
            raise InputError(
                f"cannot read {path} as JSON Lines: {str(e).splitlines()[0]}"
            ) from None
        keys = [
            r[0]
            for r in self.eng.con.execute(
                f"SELECT DISTINCT unnest(json_keys(line)) AS k FROM lines_{idx} "
                "WHERE json_valid(line) AND json_type(line) = 'OBJECT' ORDER BY k"
            ).fetchall()
        ]
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
            f"FROM lines_{idx} WHERE line IS NOT NULL AND trim(line) <> '')"
        )
        if not keys:
            n = self.eng.con.execute(f"SELECT count(*) FROM raw_{idx}").fetchone()[0]
            if n == 0:
                self._empty(idx, path)
                return
        types = dict.fromkeys(known, "VARCHAR")
        types["__malformed"] = "VARCHAR"
        self._typed(
            idx,
            path,
            f"raw_{idx}",
            types,
            row_expr="__row",
            fixed_required=bool(keys),
            raw_expr="__line",
            display=orig,
        )
        self._rejects(idx, orig, rej, "malformed JSON line")

    # -- shared steps
    def _maybe_repair(self, path: Path) -> Path:
        fixed = _repair_utf8(path, self.tmpdir)
        if fixed is None:
            return path
        self.report.utf8_repaired_files.append(str(path))
        return fixed

    def _empty(self, idx: int, path: Path) -> None:
        self.report.files.append(str(path))

    def _rejects(self, idx: int, path: Path, rej: str, reason: str) -> None:
        try:
            n = self.eng.con.execute(f"SELECT count(*) FROM {rej}").fetchone()[0]
        except Exception:
            return
        if n:
            view = f"qrej_{idx}"
            self.eng.run(
                f"CREATE OR REPLACE TEMP TABLE {view} AS SELECT {_lit(str(path))} AS source, "
                f"CAST(line AS BIGINT) AS row_number, {_lit(reason)} || ': ' || coalesce(error_type, '') AS reason, "
                "NULL::VARCHAR AS request_id, NULL::VARCHAR AS account_id, NULL::VARCHAR AS timestamp, "
                f"left(csv_line, 2000) AS raw FROM {rej}"
            )
            self.quarantine_parts.append(view)

    def _typed(
        self,
        idx: int,
        path: Path,
        src: str,
        types: dict[str, str],
        *,
        row_expr: str,
        fixed_required: bool = True,
        raw_expr: str | None = None,
        display: Path | None = None,
    ) -> None:
        path = display or path
        present = [c for c in types if c in schema.ALL]
        missing = [c for c in schema.REQUIRED if c not in types]
        if missing and fixed_required:
            raise InputError(f"{path}: missing required column {missing[0]!r}")
        unknown = sorted(
            c
            for c in types
            if c not in schema.ALL
            and c not in schema.EVALUATION_ONLY
            and not c.startswith("__")
            and c != "file_row_number"
        )
        for c in unknown:
            if c not in self.report.unknown_columns:
                self.report.unknown_columns.append(c)
        sel = []
        reasons = []
        for c in present:
            lt = schema.ALL[c]
            st = _SQL_TYPES[lt]
            raw_t = types[c].upper()
            col = _q(c)
            if lt == "timestamp" and not (raw_t.startswith("TIMESTAMP") or raw_t == "VARCHAR"):
                expr = "NULL::TIMESTAMPTZ"
                bad = f"{col} IS NOT NULL"
                reasons.append(f"CASE WHEN {bad} THEN '{c}: wrong type {raw_t}' END")
            elif lt == "string":
                expr = f"CAST({col} AS VARCHAR)"
                reasons.append(
                    f"CASE WHEN CAST({col} AS VARCHAR) = chr(0) || '__wrongtype__' THEN '{c}: wrong type' END"
                )
            else:
                expr = f"TRY_CAST({col} AS {st})"
                what = "unparseable timestamp" if lt == "timestamp" else "wrong type"
                reasons.append(
                    f"CASE WHEN {col} IS NOT NULL AND TRY_CAST({col} AS {st}) IS NULL "
                    f"THEN '{c}: {what}' END"
                )
            if c in schema.REQUIRED:
                if lt == "string" and c != "prompt":
                    reasons.append(
                        f"CASE WHEN {col} IS NULL OR trim(CAST({col} AS VARCHAR)) = '' "
                        f"THEN 'missing required value {c}' END"
                    )
                else:
                    reasons.append(f"CASE WHEN {col} IS NULL THEN 'missing required value {c}' END")
            sel.append(f"{expr} AS {_q(c)}")
        reason_sql = "concat_ws('; ', " + ", ".join(reasons) + ")" if reasons else "''"
        if "__malformed" in types:
            reason_sql = f"coalesce(__malformed, {reason_sql})"
        raw_cols = [c for c in ("request_id", "account_id", "timestamp") if c in types]
        raw_sel = ", ".join(f"CAST({_q(c)} AS VARCHAR) AS __raw_{c}" for c in raw_cols)
        raw_prompt = "left(CAST(prompt AS VARCHAR), 2000)" if "prompt" in types else "NULL"
        if raw_expr is not None:
            raw_prompt = raw_expr
        self.eng.run(
            f"CREATE OR REPLACE TEMP VIEW chk_{idx} AS SELECT {', '.join(sel)}, "
            f"{raw_sel + ', ' if raw_sel else ''}{raw_prompt} AS __raw_prompt, "
            f"CAST({row_expr} AS BIGINT) AS _row, {idx} AS _src, {reason_sql} AS _reason FROM {src}"
        )
        self.parts.append((f"chk_{idx}", set(present)))
        self.report.files.append(str(path))
        qv = f"qchk_{idx}"
        self.eng.run(
            f"CREATE OR REPLACE TEMP TABLE {qv} AS SELECT {_lit(str(path))} AS source, _row AS row_number, "
            "_reason AS reason, "
            + ", ".join(
                f"{'__raw_' + c if c in raw_cols else 'NULL::VARCHAR'} AS {c}"
                for c in ("request_id", "account_id", "timestamp")
            )
            + f", __raw_prompt AS raw FROM chk_{idx} WHERE _reason <> ''"
        )
        self.quarantine_parts.append(qv)

    def finish(self) -> None:
        rep = self.report
        present = set().union(*(p for _, p in self.parts)) if self.parts else set()
        present -= set(schema.NOT_READ)
        ordered = [c for c in schema.ALL if c in present]
        for c in schema.REQUIRED:
            if c not in ordered:
                ordered.append(c)
        rep.columns_present = [c for c in ordered if c in present]
        rep.ignored_columns = sorted(
            set().union(*(p for _, p in self.parts)) & set(schema.NOT_READ) if self.parts else set()
        )
        selects = []
        for view, cols in self.parts:
            items = []
            for c in ordered:
                st = _SQL_TYPES[schema.ALL[c]]
                items.append(f"{_q(c)}" if c in cols else f"NULL::{st} AS {_q(c)}")
            selects.append(f"SELECT {', '.join(items)}, _src, _row FROM {view} WHERE _reason = ''")
        if not selects:
            cols_sql = ", ".join(f"NULL::{_SQL_TYPES[schema.ALL[c]]} AS {_q(c)}" for c in ordered)
            selects.append(f"SELECT {cols_sql}, 0 AS _src, 0::BIGINT AS _row WHERE false")
        union = " UNION ALL ".join(selects)
        e = self.eng
        e.run(f"CREATE OR REPLACE TEMP VIEW _valid AS {union}")
        extra = []
        if "account_created_at" in present:
            extra.append("epoch(account_created_at) AS created_t")
        cols_sql = ", ".join(
            f"left(prompt, {MAX_PROMPT_CHARS}) AS prompt" if c == "prompt" else _q(c)
            for c in ordered
        )
        extra_sql = (", " + ", ".join(extra)) if extra else ""
        # one materialisation of the valid rows (no sort: every later step is an
        # aggregate or an explicitly ordered window)
        e.run(
            f"CREATE OR REPLACE TEMP TABLE events AS SELECT {cols_sql}, epoch(timestamp) AS t"
            f"{extra_sql}, _src, _row, length(prompt) > {MAX_PROMPT_CHARS} AS _trunc FROM _valid"
        )
        rep.rows_valid, n_ids, rep.prompts_truncated = e.con.execute(
            "SELECT count(*), count(DISTINCT request_id), coalesce(sum(CAST(_trunc AS INTEGER)), 0) "
            "FROM events"
        ).fetchone()
        keep = ", ".join(_q(c) for c in ordered) + ", t" + (", created_t" if extra else "")
        if n_ids < rep.rows_valid:
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
        if self.quarantine_parts:
            e.run(
                "CREATE OR REPLACE TEMP TABLE quarantine AS "
                + " UNION ALL ".join(f"SELECT * FROM {v}" for v in self.quarantine_parts)
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
        rep.quarantine_reasons = {r: int(n) for r, n in qr}
        rep.rows_quarantined = int(sum(n for _, n in qr))
        rep.rows_read = rep.rows_valid + rep.rows_quarantined


def load_events(
    eng: DuckDBEngine,
    source: Any,
) -> LoadReport:
    """Load logs (paths, a pandas DataFrame, a pyarrow Table or a DuckDB relation) into
    the engine's ``events`` table and ``quarantine`` table."""
    tmpdir = tempfile.mkdtemp(prefix="distilltrace-read-")
    loader = _Loader(eng, tmpdir)
    if isinstance(source, str | os.PathLike):
        source = [source]
    if isinstance(source, pd.DataFrame) or _is_arrow(source) or _is_duckdb_rel(source):
        obj = source
        if _is_duckdb_rel(obj):
            obj = obj.arrow()
        eng.con.register("__input_rel", obj)
        eng.run("CREATE OR REPLACE TEMP VIEW __input AS SELECT * FROM __input_rel")
        loader.add_relation(0, "<relation>", "__input")
    else:
        paths = [Path(p) for p in source]
        if not paths:
            raise InputError("no log files given")
        for i, p in enumerate(paths):
            _check_readable(p)
            if p.stat().st_size == 0:
                loader._empty(i, p)
                continue
            fmt = detect_format(p)
            if fmt == "parquet":
                loader.add_parquet(i, p)
            elif fmt == "jsonl":
                loader.add_jsonl(i, p)
            else:
                loader.add_csv(i, p)
    loader.finish()
    return loader.report


def _is_arrow(obj: Any) -> bool:
    return type(obj).__module__.startswith("pyarrow")


def _is_duckdb_rel(obj: Any) -> bool:
    return type(obj).__name__ == "DuckDBPyRelation"
