"""An on-disk cache of model query results (SQLite), and a Model wrapper that uses it.

Each result is stored per prompt under a key made of the model identity, the operation,
the prompt and the parameters, so a repeated audit costs nothing and an interrupted one
resumes: results are committed chunk by chunk as they are computed.

Generation with logits processors is cached only when every processor has a string
attribute ``cache_key`` that identifies it (e.g. a watermark's key id and parameters);
otherwise those calls go straight to the model.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distilltrace.errors import InputError
from distilltrace.models.base import (
    Generation,
    Model,
    ModelInfo,
    NextTokenLogprobs,
    ScoredContinuation,
    TokenLogprob,
)
from distilltrace.models.precision import cache_identity

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    op TEXT NOT NULL,
    prompt TEXT NOT NULL,
    params TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS results_model ON results(model);
"""


def cache_key(identity: str, op: str, prompt: str, params: dict[str, Any]) -> str:
    """The SHA-256 key of one query: model identity, operation, prompt and parameters."""
    blob = json.dumps([identity, op, prompt, params], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class CacheStats:
    """Hits and misses counted by one CachedModel."""

    hits: int = 0
    misses: int = 0
    uncacheable: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "uncacheable": self.uncacheable}


class QueryCache:
    """A SQLite file of query results, safe to share between threads and processes."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            self.path = self.path / "queries.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._con = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise InputError(f"cannot open query cache {self.path}: {e}") from None

    def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        """The stored values of those keys that are present."""
        out: dict[str, Any] = {}
        with self._lock:
            for i in range(0, len(keys), 500):
                part = list(keys[i : i + 500])
                q = f"SELECT key, value FROM results WHERE key IN ({','.join('?' * len(part))})"
                for k, v in self._con.execute(q, part):
                    out[k] = json.loads(v)
        return out

    def put_many(self, rows: Sequence[tuple[str, str, str, str, dict[str, Any], Any]]) -> None:
        """Store (key, model, op, prompt, params, value) rows and commit."""
        now = time.time()
        with self._lock:
            self._con.executemany(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (k, m, op, p, json.dumps(par, sort_keys=True), json.dumps(v), now)
                    for k, m, op, p, par, v in rows
                ],
            )
            self._con.commit()

    def count(self, model: str | None = None) -> int:
        """Number of stored results (for one model identity, or all)."""
        with self._lock:
            if model is None:
                return int(self._con.execute("SELECT COUNT(*) FROM results").fetchone()[0])
            q = "SELECT COUNT(*) FROM results WHERE model = ?"
            return int(self._con.execute(q, (model,)).fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._con.close()


def _gen_from(d: dict[str, Any]) -> Generation:
    return Generation(
        prompt=d["prompt"],
        text=d["text"],
        token_ids=tuple(d["token_ids"]),
        finish_reason=d["finish_reason"],
    )


def _tok_from(d: dict[str, Any]) -> TokenLogprob:
    return TokenLogprob(token=d["token"], logprob=float(d["logprob"]), id=d.get("id"))


def _ntl_from(d: dict[str, Any]) -> NextTokenLogprobs:
    return NextTokenLogprobs(prompt=d["prompt"], top=tuple(_tok_from(t) for t in d["top"]))


def _sc_from(d: dict[str, Any]) -> ScoredContinuation:
    return ScoredContinuation(
        prompt=d["prompt"],
        continuation=d["continuation"],
        tokens=tuple(_tok_from(t) for t in d["tokens"]),
    )


class CachedModel:
    """Any Model behind the on-disk query cache; same protocol, same results.

    Misses are computed ``chunk_size`` prompts at a time and committed after each chunk,
    so an interrupted run keeps what it finished. Other attributes (``hf_model``,
    ``tokenizer``...) pass through to the wrapped model.
    """

    def __init__(
        self, model: Model, cache: str | Path | QueryCache, *, chunk_size: int | None = None
    ):
        self.model = model
        self.cache = cache if isinstance(cache, QueryCache) else QueryCache(cache)
        # misses are computed a model batch at a time (64 for a model without batch_size),
        # so the cache never narrows the model's own batches
        own = getattr(model, "batch_size", None)
        chunk = chunk_size or (own if isinstance(own, int) and own > 0 else 64)
        self.chunk_size = max(1, int(chunk))
        self.stats = CacheStats()
        self.info: ModelInfo = model.info

    def __getattr__(self, name: str) -> Any:
        if name in ("model", "cache", "chunk_size", "stats", "info"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def _run(
        self,
        op: str,
        items: list[tuple[str, dict[str, Any]]],
        compute: Callable[[list[int]], list[Any]],
        decode: Callable[[dict[str, Any]], Any],
    ) -> list[Any]:
        ident = cache_identity(self.info)
        keys = [cache_key(ident, op, p, par) for p, par in items]
        found = self.cache.get_many(keys)
        out: list[Any] = [None] * len(items)
        todo = []
        for i, k in enumerate(keys):
            if k in found:
                out[i] = decode(found[k])
                self.stats.hits += 1
            else:
                todo.append(i)
        # Duplicate prompts inside one call are computed once.
        first: dict[str, int] = {}
        unique = [i for i in todo if first.setdefault(keys[i], i) == i]
        for c in range(0, len(unique), self.chunk_size):
            chunk = unique[c : c + self.chunk_size]
            results = compute(chunk)
            self.cache.put_many(
                [
                    (keys[i], ident, op, items[i][0], items[i][1], r.to_dict())
                    for i, r in zip(chunk, results, strict=True)
                ]
            )
            for i, r in zip(chunk, results, strict=True):
                out[i] = r
            self.stats.misses += len(chunk)
        for i in todo:
            if out[i] is None:
                out[i] = out[first[keys[i]]]
        return out

    @staticmethod
    def _gen_params(
        max_new_tokens: int, temperature: float, top_p: float, seed: int, chat: bool, procs: list
    ) -> dict[str, Any] | None:
        """A generation's cache parameters; None when a processor has no `cache_key`."""
        proc_keys = [getattr(p, "cache_key", None) for p in procs]
        if any(not isinstance(k, str) for k in proc_keys):
            return None
        greedy = float(temperature) == 0.0
        return {
            "max_new_tokens": max_new_tokens,
            "temperature": float(temperature),
            "top_p": 1.0 if greedy else float(top_p),
            "seed": 0 if greedy else int(seed),
            "chat": bool(chat),
            "processors": proc_keys,
        }

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        logits_processors: Sequence[Any] | None = None,
        chat: bool = True,
        **kwargs: Any,
    ) -> list[Generation]:
        """Complete each prompt (cached per prompt and parameters)."""
        prompts = list(prompts)
        procs = list(logits_processors or [])
        params = self._gen_params(max_new_tokens, temperature, top_p, seed, chat, procs)
        if params is None or kwargs:
            self.stats.uncacheable += len(prompts)
            return self.model.generate(
                prompts, max_new_tokens, temperature, top_p, seed, procs or None, chat, **kwargs
            )

        def compute(idx: list[int]) -> list[Generation]:
            return self.model.generate(
                [prompts[i] for i in idx],
                max_new_tokens,
                temperature,
                top_p,
                seed,
                procs or None,
                chat,
            )

        return self._run("generate", [(p, params) for p in prompts], compute, _gen_from)

    def generate_encoded(
        self,
        prompts: Sequence[str],
        encoded: Sequence[Sequence[int]],
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        logits_processors: Sequence[Any] | None = None,
        *,
        seed_chat: bool = True,
        **kwargs: Any,
    ) -> list[tuple[Generation, None]]:
        """Generation from token ids the caller encoded (a conversation with a system
        prompt, as serve encodes it), cached per label (`prompts`, which also seed the
        sampler), SHA-256 of the ids and parameters. Per-token log-probabilities,
        streaming, stopping criteria and progress callbacks (`kwargs`) go straight to the
        model, as do processors without a `cache_key`. Needs a model with
        `generate_encoded` (a local one)."""
        inner = getattr(self.model, "generate_encoded", None)
        if inner is None:
            raise AttributeError(f"{self.info.name} has no generate_encoded (not a local model)")
        prompts, encoded = list(prompts), [list(e) for e in encoded]
        if len(prompts) != len(encoded):
            raise InputError("one encoding per prompt is needed")
        procs = list(logits_processors or [])
        params = self._gen_params(max_new_tokens, temperature, top_p, seed, seed_chat, procs)
        if params is None or any(v is not None for v in kwargs.values()):
            self.stats.uncacheable += len(prompts)
            return inner(prompts, encoded, max_new_tokens, temperature, top_p, seed,
                         procs or None, seed_chat=seed_chat, **kwargs)  # fmt: skip
        items = [
            (p, {**params, "tokens": hashlib.sha256(json.dumps(e).encode()).hexdigest()})
            for p, e in zip(prompts, encoded, strict=True)
        ]

        def compute(idx: list[int]) -> list[Generation]:
            out = inner([prompts[i] for i in idx], [encoded[i] for i in idx], max_new_tokens,
                        temperature, top_p, seed, procs or None, seed_chat=seed_chat)  # fmt: skip
            return [g for g, _ in out]

        return [(g, None) for g in self._run("generate_encoded", items, compute, _gen_from)]

    def next_token_logprobs(
        self, prompts: Sequence[str], top_k: int = 5, chat: bool = True
    ) -> list[NextTokenLogprobs]:
        """Top-k next tokens (cached per prompt, top_k and chat)."""
        prompts = list(prompts)
        params = {"top_k": int(top_k), "chat": bool(chat)}

        def compute(idx: list[int]) -> list[NextTokenLogprobs]:
            return self.model.next_token_logprobs([prompts[i] for i in idx], top_k, chat)

        return self._run("next_token_logprobs", [(p, params) for p in prompts], compute, _ntl_from)

    def score(
        self, prompts: Sequence[str], continuations: Sequence[str], chat: bool = True
    ) -> list[ScoredContinuation]:
        """Per-token log-probabilities (cached per prompt, continuation and chat)."""
        prompts, continuations = list(prompts), list(continuations)
        if len(prompts) != len(continuations):
            raise InputError(
                f"score needs one continuation per prompt ({len(prompts)} prompts, "
                f"{len(continuations)} continuations)"
            )
        items = [
            (p, {"continuation": c, "chat": bool(chat)})
            for p, c in zip(prompts, continuations, strict=True)
        ]

        def compute(idx: list[int]) -> list[ScoredContinuation]:
            return self.model.score(
                [prompts[i] for i in idx], [continuations[i] for i in idx], chat
            )

        return self._run("score", items, compute, _sc_from)

    def __repr__(self) -> str:
        return f"CachedModel({self.model!r}, cache={str(self.cache.path)!r})"
