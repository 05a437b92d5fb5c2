""" "Human" text that ships with every Python installation: standard-library docstrings.

Docstrings are read from the standard library's source files with `ast` (nothing is
imported, so no module runs), plus the docstrings of a fixed list of built-in (C) modules
via `inspect`. They are cleaned (doctest examples, reST markup and signature lines
dropped, whitespace normalised), filtered to prose paragraphs, de-duplicated and packed
into chunks. The result depends only on the Python installation and the arguments.

Reading the standard library takes about 3 s on 2 cores, once per process before session
38; the paragraphs are now cached as JSON under `$DISTILLTRACE_CACHE` (else
`$DISTILLTRACE_HOME`, else `~/.cache/distilltrace`) in `human-text/`, keyed by the Python
version, the standard library's path and this file's own source (a change to the cleaning
rules is a new key), so a later process loads them in milliseconds.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import inspect
import json
import os
import random
import re
import sys
import sysconfig
from pathlib import Path

# Directories under the standard library that are tests, vendored or GUI demo code.
_SKIP_DIRS = {
    "test",
    "tests",
    "idle_test",
    "site-packages",
    "dist-packages",
    "__pycache__",
    "turtledemo",
    "lib2to3",
    "ensurepip",
    "config-3.11-x86_64-linux-gnu",
    "pydoc_data",
}
# Built-in (C) modules whose documentation lives only at run time; importing them has no side effects.
_BUILTIN_MODULES = (
    "builtins",
    "math",
    "cmath",
    "itertools",
    "sys",
    "time",
    "gc",
    "array",
    "binascii",
    "select",
    "zlib",
    "_io",
    "_collections",
    "_functools",
    "_operator",
    "_heapq",
    "_bisect",
    "_random",
    "_struct",
    "_json",
    "_csv",
    "_datetime",
    "_socket",
    "_sha256",
    "unicodedata",
)

_ROLE = re.compile(r":[a-zA-Z:]+:`~?([^`<]*?)(?:\s*<[^>]*>)?`")  # :func:`foo` -> foo
_LITERAL = re.compile(r"``([^`]*)``")
_SIG = re.compile(r"^[\w.]+\(.*\)(\s*->.*)?$")  # "name(arg, ...) -> type" signature lines
_WS = re.compile(r"\s+")


def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        files.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".py"))
    return files


def _raw_docstrings() -> list[str]:
    docs: list[str] = []
    for path in _stdlib_files():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                d = ast.get_docstring(node)
                if d:
                    docs.append(d)
    for name in _BUILTIN_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        for obj in [mod, *(v for _, v in sorted(vars(mod).items()) if callable(v))]:
            d = inspect.getdoc(obj) if getattr(obj, "__doc__", None) else None
            if d and (obj is mod or getattr(obj, "__module__", name) in (name, None)):
                docs.append(d)
    return docs


def _prose_paragraphs(doc: str) -> list[str]:
    """Split a docstring into cleaned prose paragraphs, dropping code and markup."""
    out: list[str] = []
    for para in re.split(r"\n\s*\n", doc):
        lines = [ln for ln in para.splitlines() if ln.strip()]
        if not lines:
            continue
        first = lines[0].strip()
        if first.startswith((">>>", "...", "$ ", "%", "..", "::", "|", "+-", "==")):
            continue
        if any(ln.startswith(("    ", "\t")) for ln in lines):  # indented code/arg blocks
            continue
        if _SIG.match(first) and len(lines) == 1:
            continue
        text = " ".join(ln.strip() for ln in lines)
        text = _ROLE.sub(r"\1", text)
        text = _LITERAL.sub(r"\1", text)
        text = text.replace("`", "").replace("*", "")
        text = _WS.sub(" ", text).strip()
        words = text.split()
        if len(text) < 60 or len(words) < 10:
            continue
        letters = sum(c.isalpha() or c == " " for c in text)
        if letters / len(text) < 0.85 or not text[0].isupper() or text[-1] not in ".!?:":
            continue
        out.append(text)
    return out


def cache_path() -> Path:
    """Where this installation's paragraphs are cached (see the module docstring)."""
    from distilltrace.paths import cache_dir

    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(sys.version.encode())
    h.update(sysconfig.get_paths()["stdlib"].encode())
    return cache_dir() / "human-text" / f"paragraphs-{h.hexdigest()[:20]}.json"


@functools.lru_cache(maxsize=4)
def _paragraphs() -> tuple[str, ...]:
    """The de-duplicated prose paragraphs, from the cache file when it holds them."""
    path = cache_path()
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(cached, list) and cached and all(isinstance(p, str) for p in cached):
            return tuple(cached)
    except (OSError, ValueError):
        pass  # missing or damaged: rebuilt below
    paras = _extract_paragraphs()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(list(paras), ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache folder only costs the extraction next time
    return paras


def _extract_paragraphs() -> tuple[str, ...]:
    seen: set[str] = set()
    paras: list[str] = []
    for doc in _raw_docstrings():
        for p in _prose_paragraphs(doc):
            key = hashlib.sha1(p.lower().encode()).hexdigest()
            if key not in seen:
                seen.add(key)
                paras.append(p)
    return tuple(paras)


def human_corpus(max_chars: int | None = None, seed: int = 0, chunk_chars: int = 600) -> list[str]:
    """Chunks (about `chunk_chars` characters, whole paragraphs) of cleaned standard-library
    docstring prose, shuffled by `seed`, up to `max_chars` characters in total."""
    paras = list(_paragraphs())
    chunks: list[str] = []
    cur: list[str] = []
    size = 0
    for p in paras:
        if cur and size + len(p) > chunk_chars:
            chunks.append(" ".join(cur))
            cur, size = [], 0
        cur.append(p)
        size += len(p) + 1
    if cur:
        chunks.append(" ".join(cur))
    random.Random(f"distilltrace-human:{seed}").shuffle(chunks)
    if max_chars is None:
        return chunks
    out: list[str] = []
    total = 0
    for c in chunks:
        if total + len(c) > max_chars:
            break
        out.append(c)
        total += len(c)
    return out
