"""Model queries of one provenance test: memoised (per process and through the model cache)
and counted, so that every suspect query is charged to the budget exactly once."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distilltrace.models.base import SCORE, Model
from distilltrace.provenance.config import ProvenanceConfig
from distilltrace.provenance.textmatch import comparable


@dataclass
class QueryCounter:
    """Distinct queries per model label: {"generate": n, "score": n}."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, label: str, kind: str, n: int) -> None:
        c = self.counts.setdefault(label, {"generate": 0, "score": 0})
        c[kind] += n

    def total(self, label: str) -> int:
        """Distinct queries of one model, of both kinds."""
        return sum(self.counts.get(label, {}).values())


@dataclass
class QueryStore:
    """Query results shared across tests in one process, keyed by model identity (the
    on-disk model cache persists them across processes; this saves re-reading it)."""

    greedy: dict[tuple, Any] = field(default_factory=dict)
    sampled: dict[tuple, str] = field(default_factory=dict)
    scores: dict[tuple, float] = field(default_factory=dict)


def can_score(m: Model) -> bool:
    """Whether the model gives log-probabilities (`score`)."""
    return SCORE in getattr(m.info, "supports", frozenset())


def label_models(
    suspect: Model,
    refs: Sequence[Model],
    ctrls: Sequence[Model],
    name_of: Callable[[Model], str] | None = None,
) -> dict[str, Model]:
    """A unique label for each model (its name; name#2, name#3 for repeats of a name)."""
    out: dict[str, Model] = {}
    for m in [suspect, *refs, *ctrls]:
        if any(m is x for x in out.values()):
            continue
        base = (name_of(m) if name_of else None) or getattr(m.info, "name", None) or "model"
        name = base
        i = 2
        while name in out:
            name = f"{base}#{i}"
            i += 1
        out[name] = m
    return out


class Session:
    """Queries with memoisation and counting of the distinct queries this test makes.
    Models are named by label; every method takes labels, not model objects."""

    def __init__(
        self,
        models: Mapping[str, Model],
        cfg: ProvenanceConfig,
        counter: QueryCounter,
        store: QueryStore,
    ):
        self.models = models
        self.cfg = cfg
        self.counter = counter
        self.store = store
        self._seen: set[tuple] = set()
        # progress: (what, done, total) before each piece of a generation or scoring call
        self.note: Callable[[str, int, int], None] | None = None

    def can_score(self, label: str) -> bool:
        return can_score(self.models[label])

    def _count(self, label: str, kind: str, keys: Sequence[tuple]) -> None:
        new = [k for k in dict.fromkeys(keys) if k not in self._seen]
        self._seen.update(new)
        if new:
            self.counter.add(label, kind, len(new))

    def _gen_key(self, label: str, p: str, mode: str) -> tuple:
        if mode == "greedy":
            mode = f"greedy:{self.cfg.agreement_unit}"
        return (self.models[label].info.identity, mode, self.cfg.max_new_tokens, self.cfg.seed, p)

    def greedy(self, label: str, prompts: Sequence[str]) -> list[list[str]]:
        """Greedy continuations, normalised for comparison (`textmatch.comparable`)."""
        keys = [self._gen_key(label, p, "greedy") for p in prompts]
        self._count(label, "generate", keys)
        todo = [
            p
            for p, k in dict.fromkeys(zip(prompts, keys, strict=True))
            if k not in self.store.greedy
        ]
        if todo:
            gens = self.models[label].generate(
                todo, max_new_tokens=self.cfg.max_new_tokens, temperature=0.0, chat=True
            )
            for p, g in zip(todo, gens, strict=True):
                w = comparable(
                    g.text, truncated=g.finish_reason == "length", unit=self.cfg.agreement_unit
                )
                self.store.greedy[self._gen_key(label, p, "greedy")] = (w, g.text)
        return [self.store.greedy[k][0] for k in keys]

    def greedy_text(self, label: str, prompt: str) -> str:
        """The raw text of a greedy continuation already queried ("" if none)."""
        v = self.store.greedy.get(self._gen_key(label, prompt, "greedy"))
        return v[1] if v else ""

    def sampled(
        self, label: str, prompts: Sequence[str], what: str = "sampled outputs"
    ) -> list[str]:
        """Sampled continuations (the config's temperature and seed); a progress note
        names the model when it has any to generate."""
        mode = f"sample:{self.cfg.sample_temperature}"
        keys = [self._gen_key(label, p, mode) for p in prompts]
        self._count(label, "generate", keys)
        todo = [
            p
            for p, k in dict.fromkeys(zip(prompts, keys, strict=True))
            if k not in self.store.sampled
        ]
        model = self.models[label]
        for chunk in self._chunks(label, todo, what):
            gens = model.generate(
                chunk,
                max_new_tokens=self.cfg.max_new_tokens,
                temperature=self.cfg.sample_temperature,
                seed=self.cfg.seed,
                chat=True,
            )
            for p, g in zip(chunk, gens, strict=True):
                self.store.sampled[self._gen_key(label, p, mode)] = g.text
        return [self.store.sampled[k] for k in keys]

    def _chunks(self, label: str, todo: list, what: str) -> Iterator[list]:
        """`todo` in the pieces the model's query cache computes at a time (on a fresh
        cache the model's batches are those of one call), with a progress note before each
        piece and at the end: generating or scoring a few hundred texts takes minutes on
        a CPU. A model without a cache gets one call (its batches span the whole list)."""
        if not todo:
            return
        size = getattr(self.models[label], "chunk_size", None)
        size = size if isinstance(size, int) and size > 0 else len(todo)
        name = f"{what} ({label})"
        for i in range(0, len(todo), size):
            if self.note is not None:
                self.note(name, i, len(todo))
            yield todo[i : i + size]
        if self.note is not None and size < len(todo):
            self.note(name, len(todo), len(todo))

    def scores(
        self, scorer: str, prompts: Sequence[str], texts: Sequence[str], *, chat: bool = True
    ) -> np.ndarray:
        """Per-character log-probability of each text under scorer (`chat=False`: the
        prompt is raw text, as for the neutral texts of the capability check)."""
        ident = self.models[scorer].info.identity + ("" if chat else "|raw")
        keys = [(ident, p, t) for p, t in zip(prompts, texts, strict=True)]
        self._count(scorer, "score", [("score", *k) for k in keys])
        todo = list(dict.fromkeys(k for k in keys if k not in self.store.scores))
        for chunk in self._chunks(scorer, todo, "scoring"):
            res = self.models[scorer].score([k[1] for k in chunk], [k[2] for k in chunk], chat=chat)
            for k, r in zip(chunk, res, strict=True):
                self.store.scores[k] = r.total_logprob / max(1, len(k[2]))
        return np.array([self.store.scores[k] for k in keys], dtype=float)


class Outputs(Mapping[str, list[str]]):
    """Sampled outputs of the named models on fixed prompts, generated when a test first
    reads a model's (so a test that is never run costs no query): label -> outputs."""

    def __init__(self, sess: Session, prompts: Sequence[str], labels: Sequence[str], what: str):
        self.sess, self.prompts, self.labels = sess, list(prompts), list(dict.fromkeys(labels))
        self.what = what  # names the outputs in progress notes
        self.charged: dict[str, int] = {}  # label -> queries these outputs made (planned)

    def __getitem__(self, label: str) -> list[str]:
        if label not in self.labels or not self.prompts:
            raise KeyError(label)
        before = self.sess.counter.total(label)
        out = self.sess.sampled(label, self.prompts, self.what)
        self.charged[label] = self.charged.get(label, 0) + self.sess.counter.total(label) - before
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self.labels if self.prompts else [])

    def __len__(self) -> int:
        return len(self.labels) if self.prompts else 0
