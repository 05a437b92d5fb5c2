"""The campaign's log rows and the exchanges it harvested (pure functions of the rows)."""

from __future__ import annotations

import csv
import datetime as _dt
import gzip
import io
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from distilltrace.custody.bundle import CustodyError

#: The optional log column naming the watermark key a response was served under.
KEY_COLUMN = "watermark_key_id"


def _plain(v: Any) -> Any:
    if isinstance(v, _dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=_dt.UTC)
        return v.astimezone(_dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if hasattr(v, "item") and not isinstance(v, str | bytes):
        return _plain(v.item())
    return v


def _open_text(p: Path) -> io.TextIOBase:
    if p.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding="utf-8", errors="replace")
    return open(p, encoding="utf-8", errors="replace", newline="")


def member_lines(path: Path, members: set[str]) -> list[str]:
    """The members' rows of one log file, each as one JSON text: JSON Lines rows verbatim
    (so they can be compared with the provider's copy), Parquet and CSV rows as canonical
    JSON."""
    name = path.name.lower().removesuffix(".gz")
    out: list[str] = []
    if name.endswith((".jsonl", ".json", ".ndjson")):
        with _open_text(path) as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # quarantined by the scan too: not a request of anyone
                if isinstance(row, dict) and str(row.get("account_id")) in members:
                    out.append(line.rstrip("\r\n"))
        return out
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        rows: Iterable[Mapping[str, Any]] = pq.read_table(path).to_pylist()
    elif name.endswith((".csv", ".tsv")):
        with _open_text(path) as f:
            rows = list(csv.DictReader(f, delimiter="\t" if name.endswith(".tsv") else ","))
    else:
        raise CustodyError(f"{path}: not a JSON Lines, Parquet or CSV log")
    for row in rows:
        if str(row.get("account_id")) in members:
            d = {k: _plain(v) for k, v in row.items() if v is not None and v != ""}
            out.append(json.dumps(d, sort_keys=True, ensure_ascii=False))
    return out


def parse_segment(lines: Sequence[str], where: str) -> list[dict[str, Any]]:
    rows = []
    for i, line in enumerate(lines, 1):
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            raise CustodyError(f"{where} line {i}: not valid JSON") from None
        if not isinstance(r, dict):
            raise CustodyError(f"{where} line {i}: not a JSON object")
        rows.append(r)
    return rows


def harvested_of(rows: Iterable[Mapping[str, Any]], key_id: str) -> tuple[list[dict], dict]:
    """The exchanges harvested under key `key_id`: rows with a response, status ok (or none)
    and the key (rows without a key column count as served under it). Sorted by time, id.
    Returns them and counts of the rows left out, by reason."""
    out, skipped = [], {"no_response": 0, "not_ok": 0, "other_key": 0}
    seen: set[str] = set()
    for r in rows:
        rid = str(r.get("request_id"))
        if rid in seen:
            continue  # a duplicate request id: the first is kept, as in the scan
        seen.add(rid)
        resp = r.get("response")
        if not isinstance(resp, str) or not resp:
            skipped["no_response"] += 1
            continue
        if r.get("status") not in (None, "", "ok"):
            skipped["not_ok"] += 1
            continue
        kid = r.get(KEY_COLUMN) or key_id
        if kid != key_id:
            skipped["other_key"] += 1
            continue
        out.append(
            {
                "request_id": rid,
                "account_id": str(r.get("account_id")),
                "timestamp": str(r.get("timestamp")),
                "prompt": str(r.get("prompt") or ""),
                "response": resp,
                "key_id": kid,
            }
        )
    out.sort(key=lambda h: (h["timestamp"], h["request_id"]))
    return out, skipped


#: The log columns of the serving settings a fresh answer must repeat (schema: temperature,
#: max_tokens; top_p where the provider logs it).
SETTING_COLUMNS = ("temperature", "max_tokens", "top_p")


def _setting(v: Any, kind: type) -> Any:
    try:
        x = kind(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def serving_settings(
    rows: Iterable[Mapping[str, Any]],
    harvested: Sequence[Mapping[str, Any]],
    defaults: Mapping[str, Any],
) -> list[dict[str, Any] | None]:
    """The settings each harvested exchange was served with: its log row's temperature,
    max_tokens and top_p (the first row of its request id, as `harvested_of` keeps), else
    `defaults` ("served_temperature", "served_max_tokens", "served_top_p"); None where the
    temperature or the length cap is known from neither. "system_prompt" says whether the
    row was served after a system prompt (its text: `exchange_contexts`)."""
    first = _first_rows(rows)
    fallback = {
        "temperature": defaults.get("served_temperature"),
        "max_tokens": defaults.get("served_max_tokens"),
        "top_p": defaults.get("served_top_p", 1.0),
    }
    out: list[dict[str, Any] | None] = []
    for h in harvested:
        r = first.get(str(h["request_id"]), {})
        got = {}
        for col, kind in zip(SETTING_COLUMNS, (float, int, float), strict=True):
            v = r.get(col)
            v = fallback[col] if v in (None, "") else v
            got[col] = None if v is None else _setting(v, kind)
        ok = got["temperature"] is not None and got["max_tokens"] is not None
        system = bool(_system_text(r))
        out.append({**got, "top_p": got["top_p"] or 1.0, "system_prompt": system} if ok else None)
    return out


def _first_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The first log row of each request id (a retried request keeps its first row)."""
    first: dict[str, Mapping[str, Any]] = {}
    for r in rows:
        first.setdefault(str(r.get("request_id")), r)
    return first


def exchange_contexts(
    rows: Iterable[Mapping[str, Any]], harvested: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """What each harvested exchange was asked after, from the first log row of its request
    id (as `serving_settings` reads its settings): "system", the system prompt ("" for
    none); "earlier", the request's turns its row cannot hold (the gateway's
    `context_messages` column: 0 where it is missing or empty, 1 where it is unreadable,
    so that an unknown context is not redrawn); and "input_tokens", the prompt tokens
    billed (the schema's column: None where it is missing or empty, -1 where it is not a
    count), which `claims.with_our_counts` sets against our encoding of what the row
    shows."""
    first = _first_rows(rows)
    out = []
    for h in harvested:
        r = first.get(str(h["request_id"]), {})
        n = r.get("context_messages")
        x = None if isinstance(n, bool) else _setting(n, float)
        earlier = 0 if n is None or n == "" else (1 if x is None else max(0, int(x)))
        out.append({"system": _system_text(r), "earlier": earlier,
                    "input_tokens": _count(r.get("input_tokens"))})  # fmt: skip
    return out


def _count(v: Any) -> int | None:
    """A logged token count: None when missing or empty, -1 when it is not a whole number
    >= 0 (an unknown count is never taken to match)."""
    if v is None or v == "":
        return None
    x = None if isinstance(v, bool) else _setting(v, float)
    return int(x) if x is not None and x >= 0 and x == int(x) else -1


_DIGEST = re.compile(r"(?:sha256|sha1|md5|sha512)?[:=-]?[0-9a-f]{32,128}", re.IGNORECASE)


def redrawable_system(text: str) -> bool:
    """Whether a logged system prompt can be sent again: the schema allows "system prompt
    text (or a hash of it)", and a digest (32-128 hex digits, optionally prefixed by its
    algorithm) is not the text the answer was drawn after."""
    return not _DIGEST.fullmatch(text.strip())


def _system_text(row: Mapping[str, Any]) -> str:
    """A log row's system prompt, "" when it has none (missing, null or blank)."""
    text = str(row.get("system_prompt") or "")
    return text if text.strip() else ""


def customer_units(rows: Iterable[Mapping[str, Any]], members: Sequence[str]) -> list[str]:
    """One label per member naming its declared customer (same org_id and payment
    fingerprint: one unit; neither: its own unit), as the scan's cluster test counts them.
    Each account's first non-empty value (by timestamp) is used."""
    first: dict[str, dict[str, str]] = {}
    for r in sorted(rows, key=lambda r: str(r.get("timestamp"))):
        a = str(r.get("account_id"))
        d = first.setdefault(a, {})
        for c in ("org_id", "payment_fingerprint"):
            v = r.get(c)
            if c not in d and v not in (None, ""):
                d[c] = str(v)
    present = [c for c in ("org_id", "payment_fingerprint") if any(c in d for d in first.values())]
    out = []
    for a in members:
        d = first.get(a, {})
        if not present or not any(c in d for c in present):
            out.append(f"acct:{a}")
        else:
            out.append("cust:" + "|".join(d.get(c, "") for c in present))
    return out
