"""Stable content hashes that identify a model (the cache key and the "same model?" check),
and the one tokenizer fingerprint used everywhere (model info, training runs, top-k files,
watermark keys).

Tokenizer fingerprint: ``vocab{size}-{first 16 hex digits of SHA-256}`` over the vocabulary
as ``"{id}\t{piece}\n"`` lines in id order. Watermark key files written before this was
unified recorded ``{size}:{first 24 hex digits}`` of the same hash; `fingerprint_matches`
accepts both, so those keys keep working.
"""

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
    _update_with_vocab(h, _vocab_of(tokenizer))
    h.update(str(getattr(tokenizer, "chat_template", None)).encode())
    return h.hexdigest()


# ----------------------------------------------------------------------- tokenizers


def _vocab_of(tokenizer: Any) -> dict[str, int]:
    try:
        return tokenizer.get_vocab()
    except Exception as e:  # noqa: BLE001 - any tokenizer without a vocab is unusable here
        from distilltrace.errors import InputError

        raise InputError(f"cannot read the tokenizer's vocabulary ({type(e).__name__})") from None


def _update_with_vocab(h: Any, vocab: dict[str, int]) -> None:
    for tok, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        h.update(f"{i}\t{tok}\n".encode())


def vocab_digest(tokenizer: Any) -> tuple[int, str]:
    """(vocabulary size, SHA-256 hex digest of the vocabulary in id order)."""
    vocab = _vocab_of(tokenizer)
    h = hashlib.sha256()
    _update_with_vocab(h, vocab)
    return len(vocab), h.hexdigest()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """The stable id of a tokenizer's vocabulary: ``vocab{size}-{16 hex digits}``.

    Two tokenizers have the same fingerprint exactly when their vocabularies (pieces and
    ids) are equal. This is ``ModelInfo.tokenizer_id`` of local models, the ``tokenizer``
    of training runs and top-k files, and the fingerprint new watermark keys record."""
    n, digest = vocab_digest(tokenizer)
    return _format(n, digest)


def _format(n: int, digest: str) -> str:
    return f"vocab{n}-{digest[:16]}"


def _format_legacy_key(n: int, digest: str) -> str:
    """The format watermark key files recorded before the fingerprint was unified."""
    return f"{n}:{digest[:24]}"


def fingerprint_matches(tokenizer: Any, recorded: str) -> bool:
    """Whether `recorded` (either format, see the module doc) is this tokenizer's fingerprint."""
    n, digest = vocab_digest(tokenizer)
    return str(recorded) in (_format(n, digest), _format_legacy_key(n, digest))


def _byte_dtype() -> Any:
    import torch

    return torch.uint8
