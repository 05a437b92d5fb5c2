"""Read texts to test: a plain text file (one text), or a JSONL file (one text per row)."""

from __future__ import annotations

import json
from pathlib import Path

from distilltrace.errors import InputError

TEXT_COLUMNS = ("response", "completion", "text", "output")


def _is_jsonl(path: Path) -> bool:
    return path.suffix.lower() in (".jsonl", ".ndjson")


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a JSONL file; a bad line is an error naming the line."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p} not found")
    rows = []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                raise InputError(f"{p}:{n}: not valid JSON") from None
            if not isinstance(obj, dict):
                raise InputError(f"{p}:{n}: each line must be a JSON object")
            rows.append(obj)
    return rows


def pick_column(rows: list[dict], column: str | None, path: Path, options=TEXT_COLUMNS) -> str:
    """The column to read: the one given, else the first of `options` present."""
    if not rows:
        raise InputError(f"{path}: no rows")
    if column:
        if column not in rows[0]:
            raise InputError(f"{path}: no column {column!r} (columns: {sorted(rows[0])})")
        return column
    for c in options:
        if c in rows[0]:
            return c
    raise InputError(f"{path}: none of the columns {list(options)}; choose one with --column")


def column_values(rows: list[dict], column: str, path: Path) -> list[str]:
    """String values of one column; a missing or non-string value is an error."""
    out = []
    for i, r in enumerate(rows, 1):
        v = r.get(column)
        if not isinstance(v, str):
            raise InputError(f"{path}: row {i}: column {column!r} is missing or not a string")
        out.append(v)
    return out


def read_texts(
    path: str | Path, column: str | None = None, prompt_column: str | None = None
) -> tuple[list[str], list[str] | None]:
    """Texts (and their prompts, if a prompt column is named) from a text or JSONL file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p} not found")
    if not _is_jsonl(p):
        if column or prompt_column:
            raise InputError(f"{p}: --column needs a .jsonl file")
        try:
            return [p.read_text(encoding="utf-8")], None
        except UnicodeDecodeError:
            raise InputError(f"{p}: not UTF-8 text") from None
    rows = read_jsonl(p)
    col = pick_column(rows, column, p)
    texts = column_values(rows, col, p)
    prompts = column_values(rows, pick_column(rows, prompt_column, p), p) if prompt_column else None
    return texts, prompts


def read_prompts(path: str | Path, column: str | None = None) -> list[str]:
    """Prompts: one per line of a text file, or a column of a JSONL file (default 'prompt')."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p} not found")
    if _is_jsonl(p):
        rows = read_jsonl(p)
        return column_values(rows, pick_column(rows, column or "prompt", p), p)
    lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
    out = [ln for ln in lines if ln]
    if not out:
        raise InputError(f"{p}: no prompts")
    return out
