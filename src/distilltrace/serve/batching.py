"""Continuous batching for serve: one worker thread owns generation; concurrent requests
share the model's forward passes, and a request joins the running batch at the next token.

Requests are queued as rows (one prompt each). When the worker is idle it takes the first
queued row and waits up to ``window_ms`` for more (up to ``max_batch`` rows). It then runs
one decoding loop (:class:`_Decoder`): every step is one forward pass of all running rows
through the model's KV cache. Between two steps, queued rows fill the free slots
(continuous, iteration-level batching): their prompts are run in one prefill pass and
their cache is merged into the running batch's, left-padded to a common length. A row
that finishes (end of sequence, its ``max_tokens``, a stop string seen by its streamer,
its client gone) is answered at once and leaves the batch, so its slot is free for the
next queued row. ``continuous=False`` keeps the earlier dynamic batching: rows queued
while a batch runs wait until it is empty.

Each row keeps its own parameters: ``temperature``, ``top_p``, ``max_tokens``, ``seed``
(its own ``torch.Generator``, seeded exactly as ``model.generate`` seeds that prompt),
log-probability requests, a stop event and a cancel event. The watermark's logits
processors run on all rows at once, each row as on its own tokens (``process_rows``,
rows left-padded with -1); other processors run row by row.

A prompt that starts with the same tokens as a recent one (a shared system prompt, a
conversation's history) reuses that prompt's cached keys and values and prefills only
the rest (:class:`PrefixCache`, ``BatchConfig.prefix_cache`` prompts kept).

Models whose cache is not one plain key/value tensor per layer (a sliding-window layer,
e.g. Gemma 3) cannot have caches merged: their rows still leave at once, but queued rows
join only when the batch is empty, and they reuse no prefix.

Reproducibility: a row's tokens do not depend on the other rows except through float32
rounding: padded-batch logits differ from batch 1 in the last bits (SmolLM2: up to ~5e-5
in a log-probability), so a near-tie can flip a token, as it can in the local model's own
batches (docs/serve.md, "Batching").
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import torch

from distilltrace.errors import InputError
from distilltrace.models.base import Generation, TokenLogprob
from distilltrace.models.local import TokenStep, TransformersModel
from distilltrace.models.sampling import make_generators, pick_tokens, warp

IDLE_EXIT_S = 30.0  # the worker thread ends after this long without work (restarts on demand)


@dataclass(frozen=True)
class BatchConfig:
    """How serve batches concurrent requests.

    ``max_batch``: most rows generated together (1: one request at a time, the
    unbatched behaviour). ``window_ms``: how long the idle worker waits, after the first
    queued row, for more rows before it starts. ``continuous``: queued rows join the
    running batch as slots free up (False: they wait until the batch is empty).
    ``prefix_cache``: how many recent prompts' key/value tensors are kept, so that a
    prompt starting with the same tokens (a shared system prompt, a chat history)
    prefills only the rest (0: off).
    """

    max_batch: int = 8
    window_ms: float = 20.0
    continuous: bool = True
    prefix_cache: int = 16

    def __post_init__(self) -> None:
        if not isinstance(self.max_batch, int) or isinstance(self.max_batch, bool):
            raise InputError(f"max_batch must be an integer >= 1, got {self.max_batch!r}")
        if self.max_batch < 1:
            raise InputError(f"max_batch must be an integer >= 1, got {self.max_batch!r}")
        if not isinstance(self.window_ms, int | float) or not 0 <= self.window_ms <= 10_000:
            raise InputError(f"batch window must be 0..10000 ms, got {self.window_ms!r}")
        if not isinstance(self.continuous, bool):
            raise InputError(f"continuous must be true or false, got {self.continuous!r}")
        n = self.prefix_cache
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= 1024:
            raise InputError(f"prefix_cache must be an integer in 0..1024, got {n!r}")


@dataclass(eq=False)
class Row:
    """One prompt to generate, with its own sampling parameters and hooks.

    ``on_token(id)`` receives each generated token id (streaming), ``on_end()`` is called
    once the row is finished (before its future resolves). ``stop`` ends the row early
    (a stop string seen by the streamer); ``cancel`` ends it too and, when already set
    while queued, skips it (its future resolves to None).
    """

    label: str
    ids: list[int]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    seed_chat: bool = True
    top_logprobs: int | None = None
    on_token: Callable[[int], None] | None = None
    on_end: Callable[[], None] | None = None
    stop: threading.Event | None = None
    cancel: threading.Event | None = None
    future: Future = field(default_factory=Future)

    def cancelled(self) -> bool:
        return self.cancel is not None and self.cancel.is_set()

    def ended(self) -> bool:
        return self.cancelled() or (self.stop is not None and self.stop.is_set())


@dataclass
class BatchStats:
    """What the worker did, for tests and benchmarks: ``batches`` admissions (rows taken
    from the queue together) and their ``sizes``; ``steps`` decoding steps; ``peak`` the
    most rows decoded together; ``prefix_hits`` rows that reused a cached prompt prefix
    and ``prefix_tokens`` the prompt tokens they did not recompute."""

    batches: int = 0
    rows: int = 0
    largest: int = 0
    sizes: collections.Counter = field(default_factory=collections.Counter)
    steps: int = 0
    peak: int = 0
    prefix_hits: int = 0
    prefix_tokens: int = 0

    def add(self, n: int) -> None:
        self.batches += 1
        self.rows += n
        self.largest = max(self.largest, n)
        self.sizes[n] += 1


class Batcher:
    """The queue and the worker thread that generates rows in batches on one model."""

    def __init__(
        self, model: TransformersModel, processors: Sequence[Any], config: BatchConfig
    ) -> None:
        self.model = model
        self.processors = list(processors)
        self.config = config
        self.stats = BatchStats()
        self.prefixes = PrefixCache(config.prefix_cache)
        self._queue: collections.deque[Row] = collections.deque()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, rows: Sequence[Row]) -> list[Future]:
        """Queue rows; each row's future resolves to ``(Generation, steps | None)``."""
        with self._cv:
            if self._closed:
                raise RuntimeError("the batcher is closed")
            self._queue.extend(r for r in rows if not _answered_without_model(r))
            if self._queue and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(
                    target=self._loop, name="distilltrace-batcher", daemon=True
                )
                self._thread.start()
            self._cv.notify_all()
        return [r.future for r in rows]

    def close(self) -> None:
        """Stop taking rows; running rows finish, queued rows fail."""
        with self._cv:
            self._closed = True
            left = list(self._queue)
            self._queue.clear()
            self._cv.notify_all()
        for r in left:
            r.future.set_exception(RuntimeError("the server is shutting down"))

    def _wait_for_work(self) -> bool:
        """Idle: wait for a first row, then up to the window for more (under the lock).
        False when the worker should end (closed, or idle too long)."""
        cfg = self.config
        while not self._queue:
            if self._closed or not self._cv.wait(IDLE_EXIT_S) and not self._queue:
                self._thread = None
                return False
        deadline = time.monotonic() + cfg.window_ms / 1000.0
        while len(self._queue) < cfg.max_batch and not self._closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._cv.wait(left)
        return True

    def _take(self, dec: _Decoder) -> list[Row] | None:
        """Rows to admit before the next step ([] when none may join); None: stop."""
        with self._cv:
            if not dec.slots and not self._wait_for_work():
                return None
            joinable = not dec.slots or (self.config.continuous and dec.mergeable)
            n = min(len(self._queue), self.config.max_batch - len(dec.slots)) if joinable else 0
            taken = [self._queue.popleft() for _ in range(n)]
        return [r for r in taken if not _answered_without_model(r)]

    def _loop(self) -> None:
        dec = _Decoder(self.model, self.processors, self.prefixes, self.stats)
        while True:
            rows = self._take(dec)
            if rows is None:
                return
            try:
                with self.model._lock, torch.inference_mode():
                    if rows:
                        self.stats.add(len(rows))
                        dec.join(rows)
                    if dec.slots:
                        self.stats.peak = max(self.stats.peak, len(dec.slots))
                        self.stats.steps += 1
                        dec.step()
            except BaseException as e:  # noqa: BLE001 - handed to every waiting request
                for r in [*rows, *(s.row for s in dec.slots)]:
                    if not r.future.done():
                        r.future.set_exception(e)
                dec = _Decoder(self.model, self.processors, self.prefixes, self.stats)


def _answered_without_model(r: Row) -> bool:
    """Resolve a row that needs no generation: its client left while it was queued
    (None), or it asks for 0 tokens (an empty generation)."""
    if r.cancelled():
        r.future.set_result(None)
        return True
    if r.max_tokens > 0:
        return False
    gen = Generation(prompt=r.label, text="", token_ids=(), finish_reason="length")
    if r.on_end is not None:
        r.on_end()
    r.future.set_result((gen, [] if r.top_logprobs is not None else None))
    return True


class PrefixCache:
    """Key/value tensors of the last ``size`` prompts, at most ``max_bytes`` in all (least
    recently used out).

    A prompt that starts with the first k >= ``MIN_TOKENS`` tokens of a cached one reuses
    their keys and values and prefills only its other tokens: causal attention makes the
    keys and values of a prefix independent of what follows it. Only for models whose
    cache is one plain tensor per layer; prompts longer than ``MAX_TOKENS`` are not kept.
    """

    MIN_TOKENS = 8
    MAX_TOKENS = 4096

    def __init__(self, size: int, max_bytes: int = 256 * 2**20):
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: collections.OrderedDict[tuple[int, ...], list] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def longest(self, ids: Sequence[int]) -> tuple[int, list | None]:
        """The longest cached prefix of ``ids`` (leaving at least one token to run):
        its length and per-layer (keys, values) of shape [1, heads, length, dim]."""
        best, hit = 0, None
        for key in self._items:
            k = _common_prefix(key, ids, len(ids) - 1)
            if k > best:
                best, hit = k, key
        if hit is None or best < self.MIN_TOKENS:
            return 0, None
        self._items.move_to_end(hit)
        return best, [(k[:, :, :best], v[:, :, :best]) for k, v in self._items[hit]]

    def add(self, ids: Sequence[int], kv: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Keep one prompt's keys and values (the last len(ids) positions of each)."""
        n = len(ids)
        if self.size == 0 or not self.MIN_TOKENS <= n <= self.MAX_TOKENS:
            return
        entry = [(k[:, :, -n:].clone(), v[:, :, -n:].clone()) for k, v in kv]
        size = _nbytes(entry)
        if size > self.max_bytes:
            return
        key = tuple(ids)
        if key in self._items:
            self.bytes -= _nbytes(self._items.pop(key))
        self._items[key] = entry
        self.bytes += size
        while len(self._items) > self.size or self.bytes > self.max_bytes:
            self.bytes -= _nbytes(self._items.popitem(last=False)[1])

    def add_batch(self, prompts: list[list[int]], cache: Any) -> None:
        """Keep each row of a left-padded prefill (plain cache layers only)."""
        if self.size == 0 or not _mergeable(cache):
            return
        for i, ids in enumerate(prompts):
            self.add(ids, [(lay.keys[i : i + 1], lay.values[i : i + 1]) for lay in cache.layers])


def _nbytes(entry: list[tuple[torch.Tensor, torch.Tensor]]) -> int:
    return sum(k.nbytes + v.nbytes for k, v in entry)


def _common_prefix(a: Sequence[int], b: Sequence[int], most: int) -> int:
    n = min(len(a), len(b), most)
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass(eq=False)
class _Slot:
    """A running row: its sequence so far (prompt + generated), sampler and results."""

    row: Row
    gen: torch.Generator | None
    ids: list[int]
    toks: list[int] = field(default_factory=list)
    lps: list[tuple] = field(default_factory=list)
    ending: bool = False
    done: bool = False


class _Decoder:
    """The running rows and their shared KV cache, left-padded to one length ``mask``."""

    def __init__(
        self,
        model: TransformersModel,
        processors: list[Any],
        prefixes: PrefixCache,
        stats: BatchStats,
    ):
        self.model = model
        self.processors = processors
        self.prefixes = prefixes
        self.stats = stats
        self.slots: list[_Slot] = []
        self.cache: Any = None
        self.mask: torch.Tensor | None = None
        self.mergeable = True  # every cache layer one plain [batch, heads, length, dim] tensor

    def join(self, rows: list[Row]) -> None:
        """Prefill the rows' prompts, merge their cache, pick their first token. Rows
        whose prompt starts with a cached prefix prefill only the rest, together; the
        others in one left-padded pass."""
        fresh, hits = [], []
        for r in rows:
            k, kv = self.prefixes.longest(r.ids)
            if kv is None:
                fresh.append(r)
            else:
                hits.append((r, k, kv))
        if hits:
            self._prefill_hits(hits)
        if fresh:
            ids, mask = self.model._left_pad([r.ids for r in fresh])
            out = self._forward(ids, mask, _positions(mask), None)
            self.prefixes.add_batch([r.ids for r in fresh], out.cache)
            self._admit(fresh, out, mask)

    def _prefill_hits(self, hits: list[tuple[Row, int, list]]) -> None:
        """Prefill each row's prompt after its cached first k tokens, in one pass.

        Row i's cached prefix is left-padded to the longest prefix K and its other tokens
        to the longest rest S: a [rows, K + S] mask with padding before each part, explicit
        positions (k_i, k_i + 1, ...) and the prefixes' keys and values as the cache.
        Padding anywhere is masked out, as the running batch's left padding is."""
        from transformers import DynamicCache

        dev = self.model.device
        big_k = max(k for _, k, _ in hits)
        ids, rest_mask = self.model._left_pad([r.ids[k:] for r, k, _ in hits])
        pre_mask = torch.zeros((len(hits), big_k), dtype=torch.long, device=dev)
        for i, (_, k, _) in enumerate(hits):
            pre_mask[i, big_k - k :] = 1
        mask = torch.cat([pre_mask, rest_mask], dim=1)
        pos = (rest_mask.cumsum(-1) - 1).masked_fill(rest_mask == 0, 0)
        pos = pos + torch.tensor([[k] for _, k, _ in hits], device=dev)
        cache = DynamicCache(config=self.model.hf_model.config)
        for layer in range(len(hits[0][2])):
            keys = torch.cat([_pad_left(kv[layer][0], big_k) for _, _, kv in hits])
            values = torch.cat([_pad_left(kv[layer][1], big_k) for _, _, kv in hits])
            cache.update(keys, values, layer)
        out = self._forward(ids, mask, pos, cache)
        for i, (r, k, _) in enumerate(hits):
            self.stats.prefix_hits += 1
            self.stats.prefix_tokens += k
            keep = mask[i].bool()
            layers = out.cache.layers
            self.prefixes.add(
                r.ids, [(x.keys[i : i + 1, :, keep], x.values[i : i + 1, :, keep]) for x in layers]
            )
        self._admit([r for r, _, _ in hits], out, mask)

    def _admit(self, rows: list[Row], out: Any, mask: torch.Tensor) -> None:
        new = [_Slot(r, _generator(r), list(r.ids)) for r in rows]
        self._merge(out.cache, mask, new)
        self._advance(new, out.logits[:, -1, :])
        self._drop_finished()

    def step(self) -> None:
        """One token for every running row."""
        assert self.mask is not None
        last = torch.tensor([[s.ids[-1]] for s in self.slots], device=self.model.device)
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.slots), 1))], dim=1)
        pos = torch.tensor([[len(s.ids) - 1] for s in self.slots], device=self.model.device)
        out = self._forward(last, self.mask, pos, self.cache)
        self._advance(self.slots, out.logits[:, -1, :])
        self._drop_finished()

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, cache: Any):
        kw = {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "use_cache": True}
        if cache is not None:
            kw["cache"] = cache
        try:
            return self.model.hf_model(**kw, logits_to_keep=1)
        except TypeError:  # a model class without logits_to_keep
            return self.model.hf_model(**kw)

    def _merge(self, cache: Any, mask: torch.Tensor, new: list[_Slot]) -> None:
        """Append the new rows' cache to the running one, left-padding the shorter."""
        if self.cache is None:
            self.cache, self.mask, self.slots = cache, mask, new
            self.mergeable = _mergeable(cache)
            return
        assert self.mask is not None
        width = max(self.mask.shape[1], mask.shape[1])
        for old, add in zip(self.cache.layers, cache.layers, strict=True):
            old.keys = torch.cat([_pad_left(old.keys, width), _pad_left(add.keys, width)])
            old.values = torch.cat([_pad_left(old.values, width), _pad_left(add.values, width)])
        self.mask = torch.cat([_pad_left(self.mask, width, -1), _pad_left(mask, width, -1)])
        self.slots = self.slots + new

    def _advance(self, slots: list[_Slot], logits: torch.Tensor) -> None:
        """Each row's warp, watermark and pick on its logits; stream and end rows."""
        eos = self.model.eos_ids
        raws = logits.float()
        warped = [
            warp(raw[None], s.row.temperature, s.row.top_p) if s.row.temperature > 0 else raw[None]
            for s, raw in zip(slots, raws, strict=True)
        ]
        xs = self._process(slots, torch.cat(warped)) if self.processors else torch.cat(warped)
        for s, raw, x in zip(slots, raws, xs, strict=True):
            r = s.row
            tok = int(pick_tokens(x[None], None if s.gen is None else [s.gen])[0])
            if r.top_logprobs is not None:
                s.lps.append(_logprob(raw, tok, r.top_logprobs))
            s.ids.append(tok)
            s.toks.append(tok)
            if r.on_token is not None:
                try:
                    r.on_token(tok)
                except Exception:  # noqa: BLE001 - a broken stream ends its row, not the batch
                    s.ending = True
            if tok in eos or s.ending or len(s.toks) >= r.max_tokens or r.ended():
                self._finish(s)

    def _process(self, slots: list[_Slot], x: torch.Tensor) -> torch.Tensor:
        """The processors on the rows' warped logits: on all rows at once where a
        processor takes rows of different lengths (``process_rows``, as the watermark's
        do), else row by row on each row's own tokens."""
        for p in self.processors:
            rows = getattr(p, "process_rows", None)
            if rows is not None:
                x = rows([s.ids for s in slots], x)
                continue
            x = torch.cat(
                [
                    p(torch.tensor([s.ids], device=x.device), x[i : i + 1])
                    for i, s in enumerate(slots)
                ]
            )
        return x

    def _drop_finished(self) -> None:
        """Remove answered rows from the batch, then padding no running row needs."""
        keep = [i for i, s in enumerate(self.slots) if not s.done]
        if len(keep) == len(self.slots):
            return
        if not keep:
            self.slots, self.cache, self.mask = [], None, None
            return
        assert self.mask is not None
        idx = torch.tensor(keep, device=self.mask.device)
        self.cache.batch_select_indices(idx)
        self.mask = self.mask[idx]
        self.slots = [self.slots[i] for i in keep]
        lead = int((self.mask.sum(0) == 0).long().cumprod(0).sum())
        if lead and self.mergeable:
            for layer in self.cache.layers:
                layer.keys = layer.keys[:, :, lead:]
                layer.values = layer.values[:, :, lead:]
            self.mask = self.mask[:, lead:]

    def _finish(self, s: _Slot) -> None:
        """Answer a row: its tokens up to end of sequence, its log-probabilities."""
        s.done = True
        r, m = s.row, self.model
        toks, finish = [], "length"
        for t in s.toks:
            if t in m.eos_ids:
                finish = "stop"
                break
            toks.append(t)
        text = m.tokenizer.decode(toks, skip_special_tokens=True)
        steps = None
        if r.top_logprobs is not None:
            steps = [
                TokenStep(TokenLogprob(m._piece(t), lp, int(t)), _alternatives(m, top))
                for t, (lp, top) in zip(toks, s.lps, strict=False)
            ]
        gen = Generation(prompt=r.label, text=text, token_ids=tuple(toks), finish_reason=finish)
        try:
            if r.on_end is not None:
                r.on_end()
        finally:
            r.future.set_result((gen, steps))


def _generator(r: Row) -> torch.Generator | None:
    return make_generators(r.seed, [r.label], r.seed_chat)[0] if r.temperature > 0 else None


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids of a left-padded batch, as transformers' ``generate`` computes them."""
    return (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 1)


def _pad_left(t: torch.Tensor, width: int, dim: int = -2) -> torch.Tensor:
    """Zeros before ``t`` along ``dim`` (the length axis) up to ``width``."""
    short = width - t.shape[dim]
    if short == 0:
        return t
    shape = list(t.shape)
    shape[dim] = short
    return torch.cat([t.new_zeros(shape), t], dim=dim)


def _mergeable(cache: Any) -> bool:
    """Every layer one plain [batch, heads, length, dim] key and value tensor (no sliding
    window): such caches can be padded, merged, trimmed and sliced by prefix."""
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in cache.layers)


def _logprob(raw: torch.Tensor, tok: int, k: int) -> tuple:
    """The model's own log-probabilities (before temperature and processors)."""
    lp = torch.log_softmax(raw, dim=-1)
    top = torch.topk(lp, min(k, lp.shape[0])) if k else None
    return float(lp[tok]), top


def _alternatives(m: TransformersModel, top: Any) -> tuple[TokenLogprob, ...]:
    if top is None:
        return ()
    return tuple(
        TokenLogprob(m._piece(j), float(v), int(j))
        for v, j in zip(top.values.tolist(), top.indices.tolist(), strict=True)
    )
