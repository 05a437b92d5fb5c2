"""Harvested (prompt, response, metadata) datasets: JSONL (appendable) or Parquet files."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distilltrace.errors import InputError


@dataclass(frozen=True)
class Record:
    """One harvested pair and how it was made (teacher, sampling parameters, token count)."""

    prompt: str
    response: str
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "response": self.response, "meta": dict(self.meta)}


def is_parquet(path: str | Path) -> bool:
    return Path(path).suffix.lower() in (".parquet", ".pq")


def _record_from(obj: Any, where: str) -> Record:
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    for key in ("prompt", "response"):
        if key not in obj:
            raise InputError(f"{where}: missing field {key!r}")
        if not isinstance(obj[key], str):
            raise InputError(f"{where}: field {key!r} must be a string")
    if not obj["prompt"].strip():
        raise InputError(f"{where}: field 'prompt' is empty")
    meta = obj.get("meta") or {}
    if isinstance(meta, str):  # Parquet stores meta as a JSON string
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError:
            raise InputError(f"{where}: field 'meta' is not valid JSON") from None
    if not isinstance(meta, dict):
        raise InputError(f"{where}: field 'meta' must be an object")
    return Record(obj["prompt"], obj["response"], meta)


def read_records(path: str | Path, *, allow_partial_tail: bool = False) -> list[Record]:
    """All records of a dataset file; errors name the file and line (row) number.

    With ``allow_partial_tail`` a JSONL file whose last line was cut off mid-write (no
    trailing newline, not valid JSON) yields the records before it instead of an error.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"dataset {p} does not exist")
    if is_parquet(p):
        return _read_parquet(p)
    data = p.read_bytes()
    if not data.strip():
        raise InputError(f"{p}: the dataset is empty (line 1)")
    lines = data.split(b"\n")
    out: list[Record] = []
    for i, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        last = i == len(lines)  # no newline after it
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            if last and allow_partial_tail:
                break
            msg = e.msg if isinstance(e, json.JSONDecodeError) else "not UTF-8"
            raise InputError(f"{p}: line {i}: malformed JSON ({msg})") from None
        out.append(_record_from(obj, f"{p}: line {i}"))
    return out


def _read_parquet(p: Path) -> list[Record]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for bad files
        raise InputError(f"{p}: not a readable Parquet file ({type(e).__name__})") from None
    rows = table.to_pylist()
    if not rows:
        raise InputError(f"{p}: the dataset is empty (row 1)")
    return [_record_from(r, f"{p}: row {i}") for i, r in enumerate(rows, start=1)]


def repair_partial_tail(path: str | Path) -> int:
    """Cut a JSONL file back to its last complete line; returns the bytes removed."""
    p = Path(path)
    if not p.exists() or is_parquet(p):
        return 0
    data = p.read_bytes()
    if not data or data.endswith(b"\n"):
        return 0
    keep = data.rfind(b"\n") + 1
    with open(p, "r+b") as f:
        f.truncate(keep)
    return len(data) - keep


def append_records(path: str | Path, records: Iterable[Record]) -> None:
    """Append records durably (JSONL: append + fsync; Parquet: rewrite atomically)."""
    p = Path(path)
    recs = list(records)
    if not recs:
        return
    p.parent.mkdir(parents=True, exist_ok=True)
    if is_parquet(p):
        existing = _read_parquet(p) if p.exists() else []
        write_parquet(p, existing + recs)
        return
    with open(p, "a", encoding="utf-8") as f:
        for r in recs:
            f.write(json.dumps(r.to_dict(), ensure_ascii=False, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def write_parquet(path: Path, records: Sequence[Record]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "prompt": [r.prompt for r in records],
            "response": [r.response for r in records],
            "meta": [json.dumps(r.meta, sort_keys=True) for r in records],
        }
    )
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_records(path: str | Path, records: Sequence[Record]) -> None:
    """Write a fresh dataset file (replacing any existing one)."""
    p = Path(path)
    if p.exists():
        p.unlink()
    append_records(p, records)


def sharegpt_records(
    n: int,
    seed: int,
    limit: int,
    clip: Callable[[str, int], str] | None = None,
    source: str | Path | None = None,
) -> list[Record]:
    """`n` ShareGPT exchanges as records (a human prompt, ChatGPT's answer): unmarked chat
    data from neither bundled model (`distilltrace.data.sharegpt.chat_pairs`). An answer
    longer than `limit` characters is cut by `clip(answer, limit)` (default: the first
    `limit` characters) and recorded with finish reason "length", like a teacher's
    answer that hit its token cap. `source`: another ShareGPT file (tests)."""
    from distilltrace.data.sharegpt import chat_pairs

    cut = clip or (lambda text, k: text[:k])
    return [
        Record(p, cut(a, limit), {"finish_reason": "stop" if len(a) <= limit else "length"})
        for p, a in chat_pairs(n, seed=seed, source=source)
    ]
