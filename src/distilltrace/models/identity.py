"""Stable content hashes that identify a model (the cache key and the "same model?" check)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file(path: str | Path, *, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (memoised per path, size and modification time)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if key in _MEMO:
        return _MEMO[key]
    h = hashlib.sha256()
    with p.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    _MEMO[key] = h.hexdigest()
    return _MEMO[key]


def hash_files(paths: Iterable[str | Path]) -> str:
    """One SHA-256 over several files' names and contents (order-independent)."""
    h = hashlib.sha256()
    for p in sorted(Path(x) for x in paths):
        h.update(p.name.encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def hash_objects(hf_model: Any, tokenizer: Any) -> str:
    """SHA-256 over an in-memory model's parameters, its config and its tokenizer's vocabulary."""
    h = hashlib.sha256()
    h.update(hf_model.config.to_json_string(use_diff=False).encode())
    for name, t in sorted(hf_model.state_dict().items()):
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(dtype=_byte_dtype()).numpy().tobytes())
    vocab = tokenizer.get_vocab()
    for tok, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        h.update(f"{i}\t{tok}\n".encode())
    h.update(str(getattr(tokenizer, "chat_template", None)).encode())
    return h.hexdigest()


def _byte_dtype() -> Any:
    import torch

    return torch.uint8
