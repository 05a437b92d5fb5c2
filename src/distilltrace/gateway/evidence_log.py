"""The evidence log: every exchange, append-only, durable before it is acknowledged.

Layout of a log folder::

    segments/seg-<host>-<pid>-<start ns>-<n>.seg   one per writer process (JSON lines + CRC)
    parquet/seg-....parquet                        rolled segments, in the traffic schema
    quarantine/seg-....jsonl                       records that could not be recovered

A segment line is ``<crc32 of the JSON, 8 hex digits> <JSON>\\n``. Each process appends
to its own segment and holds an exclusive ``flock`` on it while it is open, so several
gateway processes can share one folder and a roller can tell a live segment (locked) from
a finished or crashed one (unlocked). Writers hand records to one thread that writes every
pending record and then ``fdatasync``s once (group commit); a record's future resolves only
after that, and the gateway answers the client only then. A ``kill -9`` can therefore lose
only records that were never acknowledged; a torn or corrupt line found when a segment is
rolled goes to the quarantine file with its line number and reason, never dropped silently.

Rolling (``roll``) turns every unlocked segment into one Parquet file (written to a temp
name, fsync'd, renamed), writes its quarantine file, then deletes the segment; a crash at
any point leaves either the segment or both outputs, and a repeated roll rewrites the same
files. ``traffic scan LOG/parquet/*.parquet`` reads the result directly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import contextlib
import fcntl
import json
import os
import queue
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from distilltrace.errors import InputError
from distilltrace.traffic import schema

SEGMENTS, PARQUET, QUARANTINE = "segments", "parquet", "quarantine"
SEG_SUFFIX = ".seg"

#: Columns the gateway adds to the traffic schema (the scan keeps and ignores them).
GATEWAY_COLUMNS: dict[str, str] = {
    "watermark_key_id": "string",
    "policy_action": "string",
    "policy_reason": "string",
    "policy_rule": "string",
    "endpoint": "string",
    "stream": "bool",
    "http_status": "int",
    "latency_ms": "float",
    "gateway_id": "string",
    # chat turns the row cannot hold (beyond one leading system turn and the last user
    # turn): custody's membership claim cannot redraw an answer given after them
    "context_messages": "int",
    "extra_json": "string",
}
COLUMNS: dict[str, str] = {**schema.ALL, **GATEWAY_COLUMNS}
_CLOSE = object()


def encode_record(record: dict[str, Any]) -> bytes:
    """One segment line: CRC32 (8 hex digits), a space, the JSON, a newline."""
    body = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    raw = body.encode("utf-8", "surrogatepass")
    return b"%08x " % zlib.crc32(raw) + raw + b"\n"


def decode_line(line: bytes) -> dict[str, Any]:
    """Parse one segment line (without its newline); ValueError(reason) if it is damaged."""
    if len(line) < 10 or line[8:9] != b" ":
        raise ValueError("malformed record (no checksum prefix)")
    try:
        crc = int(line[:8], 16)
    except ValueError:
        raise ValueError("malformed record (bad checksum prefix)") from None
    body = line[9:]
    if zlib.crc32(body) != crc:
        raise ValueError("checksum mismatch")
    try:
        rec = json.loads(body.decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError("not valid JSON") from None
    if not isinstance(rec, dict):
        raise ValueError("not a JSON object")
    return rec


def _json_default(v: Any) -> Any:
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    raise TypeError(f"cannot log a value of type {type(v).__name__}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def writer_id() -> str:
    """host-pid, as segment names and the ``gateway_id`` column carry it."""
    host = "".join(c if c.isalnum() or c in "-." else "_" for c in socket.gethostname())
    return f"{host[:40]}-{os.getpid()}"


class EvidenceLog:
    """This process's writer: ``await log.write(rec)`` returns once ``rec`` is on disk."""

    def __init__(
        self,
        log_dir: str | Path,
        *,
        max_segment_bytes: int = 64 * 2**20,
        max_segment_age_s: float | None = 300.0,
        fsync: bool = True,
    ):
        self.dir = Path(log_dir)
        self.max_segment_bytes = int(max_segment_bytes)
        self.max_segment_age_s = max_segment_age_s
        self._opened_at = 0.0
        self.fsync = bool(fsync)
        self.id = writer_id()
        self._q: queue.Queue = queue.Queue()
        self._fd: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._n = 0
        self._start_ns = time.time_ns()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.records_written = 0
        self.commits = 0

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> EvidenceLog:
        for sub in (SEGMENTS, PARQUET, QUARANTINE):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self._open_segment()
        self._thread = threading.Thread(target=self._run, name="evidence-log", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Write what is pending, fsync, unlock the segment (it can then be rolled)."""
        if self._thread is None:
            return
        self._q.put(_CLOSE)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> EvidenceLog:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def segment_path(self) -> Path | None:
        """The segment this process is appending to now."""
        return self._path

    def _open_segment(self) -> None:
        seg_dir = self.dir / SEGMENTS
        self._n += 1
        name = f"seg-{self.id}-{self._start_ns}-{self._n:06d}"
        tmp = seg_dir / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # locked before the roller can see it
        final = seg_dir / f"{name}{SEG_SUFFIX}"
        os.rename(tmp, final)
        _fsync_dir(seg_dir)
        self._fd, self._path, self._size = fd, final, 0
        self._opened_at = time.monotonic()

    def _close_segment(self) -> None:
        if self._fd is None:
            return
        os.fsync(self._fd)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    # ------------------------------------------------------------------ writing
    def submit(self, record: dict[str, Any]) -> cf.Future:
        """Queue one record; the future resolves once it is durable (or fails)."""
        if self._thread is None:
            raise InputError("the evidence log is not open")
        fut: cf.Future = cf.Future()
        self._q.put((encode_record(record), fut))
        return fut

    async def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` and return once it is durable."""
        await asyncio.wrap_future(self.submit(record))

    def write_sync(self, record: dict[str, Any], timeout: float | None = 60.0) -> None:
        self.submit(record).result(timeout)

    def _run(self) -> None:
        closing = False
        while not closing:
            batch = [self._q.get()]
            while True:
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            closing = any(item is _CLOSE for item in batch)
            items = [item for item in batch if item is not _CLOSE]
            if items:
                self._commit(items)
        with contextlib.suppress(OSError):
            self._close_segment()

    def _commit(self, items: list[tuple[bytes, cf.Future]]) -> None:
        data = b"".join(b for b, _ in items)
        try:
            _write_all(self._fd, data)
            if self.fsync:
                os.fdatasync(self._fd)
            self._size += len(data)
            old = self.max_segment_age_s is not None and (
                time.monotonic() - self._opened_at >= self.max_segment_age_s
            )
            if self._size >= self.max_segment_bytes or old:  # then rollable
                self._close_segment()
                self._open_segment()
        except OSError as e:
            for _, fut in items:
                fut.set_exception(e)
            with contextlib.suppress(OSError):  # a partial write must not merge into the next
                self._close_segment()
                self._open_segment()
            return
        self.records_written += len(items)
        self.commits += 1
        for _, fut in items:
            fut.set_result(None)


# ---------------------------------------------------------------------- recovery and roll
@dataclass
class RollResult:
    """What one roll did: segments rolled, skipped (live), records kept and quarantined."""

    segments_rolled: int = 0
    segments_live: int = 0
    records: int = 0
    quarantined: int = 0
    parquet_files: list[Path] = field(default_factory=list)
    quarantine_files: list[Path] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)


def read_segment(data: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Records and quarantine entries of a segment's bytes (a torn tail is quarantined)."""
    good: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    lines = data.split(b"\n")
    tail = lines.pop()  # after the last newline: empty unless the final record is torn
    for i, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            good.append(coerce_record(decode_line(line)))
        except ValueError as e:
            bad.append(_bad(i, str(e), line))
    if tail:
        bad.append(_bad(len(lines) + 1, "torn final record (no newline)", tail))
    return good, bad


def _bad(line_no: int, reason: str, raw: bytes) -> dict[str, Any]:
    return {
        "line_number": line_no,
        "reason": reason,
        "bytes": len(raw),
        "raw": raw[:65536].decode("utf-8", "backslashreplace"),
    }


def coerce_record(rec: dict[str, Any]) -> dict[str, Any]:
    """A record with every known column in its schema type; ValueError names a bad one."""
    out: dict[str, Any] = {}
    extra = {k: v for k, v in rec.items() if k not in COLUMNS}
    for col, kind in COLUMNS.items():
        v = rec.get(col)
        if col == "extra_json" and extra:
            v = json.dumps({**json.loads(v or "{}"), **extra}, ensure_ascii=False)
        out[col] = None if v is None else _coerce(col, kind, v)
    for col in schema.REQUIRED:
        if out[col] is None:
            raise ValueError(f"missing required value {col}")
    return out


def _coerce(col: str, kind: str, v: Any) -> Any:
    ok = {
        "string": isinstance(v, str),
        "int": isinstance(v, int) and not isinstance(v, bool),
        "float": isinstance(v, int | float) and not isinstance(v, bool),
        "bool": isinstance(v, bool),
        "timestamp": isinstance(v, str),
    }[kind]
    if not ok:
        raise ValueError(f"column {col}: expected {kind}, got {type(v).__name__}")
    if kind == "timestamp":
        try:
            t = datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"column {col}: unparseable timestamp") from None
        return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    if kind == "string":
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates (legal in JSON): kept, escaped as \udXXX
            v = v.encode("utf-8", "backslashreplace").decode("utf-8")
    return float(v) if kind == "float" else v


def arrow_schema() -> Any:
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int": pa.int64(),
        "float": pa.float64(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    return pa.schema([(c, types[k]) for c, k in COLUMNS.items()])


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def roll(log_dir: str | Path, *, progress: Any = None) -> RollResult:
    """Roll every unlocked segment of ``log_dir`` into Parquet (+ quarantine); see module doc.

    Safe while gateways run: their live segments are locked and skipped.
    """
    d = Path(log_dir)
    if not (d / SEGMENTS).is_dir():
        raise InputError(f"{d} is not a gateway evidence log (no {SEGMENTS}/ folder)")
    for sub in (PARQUET, QUARANTINE):
        (d / sub).mkdir(exist_ok=True)
    res = RollResult()
    for seg in sorted((d / SEGMENTS).glob(f"*{SEG_SUFFIX}")):
        _roll_one(d, seg, res)
        if progress is not None:
            progress(seg)
    return res


def _roll_one(d: Path, seg: Path, res: RollResult) -> None:
    try:
        fd = os.open(seg, os.O_RDONLY)
    except FileNotFoundError:
        return  # another roller took it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            res.segments_live += 1
            return
        try:
            if os.fstat(fd).st_ino != os.stat(seg).st_ino:
                return
        except FileNotFoundError:
            return  # rolled by another roller meanwhile
        with os.fdopen(os.dup(fd), "rb") as f:
            good, bad = read_segment(f.read())
        _write_outputs(d, seg, good, bad, res)
        seg.unlink()
        _fsync_dir(seg.parent)
        res.segments_rolled += 1
    finally:
        os.close(fd)


def _write_outputs(d: Path, seg: Path, good: list, bad: list, res: RollResult) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    stem = seg.name[: -len(SEG_SUFFIX)]
    if good:
        table = pa.Table.from_pylist(good, schema=arrow_schema())
        out = d / PARQUET / f"{stem}.parquet"
        _atomic_write(out, lambda p: pq.write_table(table, p))
        res.parquet_files.append(out)
        res.records += len(good)
    if bad:
        qf = d / QUARANTINE / f"{stem}.jsonl"
        lines = "".join(
            json.dumps({"segment": seg.name, **b}, ensure_ascii=False) + "\n" for b in bad
        )
        _atomic_write(qf, lambda p: p.write_text(lines, encoding="utf-8"))
        res.quarantine_files.append(qf)
        res.quarantined += len(bad)
        for b in bad:
            res.reasons[b["reason"]] = res.reasons.get(b["reason"], 0) + 1


def parquet_files(log_dir: str | Path) -> list[Path]:
    """The rolled Parquet files of a log folder (what ``traffic scan`` reads)."""
    return sorted((Path(log_dir) / PARQUET).glob("*.parquet"))
