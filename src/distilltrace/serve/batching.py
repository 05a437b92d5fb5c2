"""Dynamic batching for serve: one worker thread owns generation; concurrent requests share
a batch.

Requests are queued as rows (one prompt each). When the worker is free it takes the first
queued row, waits up to ``window_ms`` for more (up to ``max_batch`` rows), and generates
them as one left-padded batch with the model's KV cache (transformers ``generate``). Each
row keeps its own parameters: ``temperature``, ``top_p``, ``max_tokens``, ``seed`` (its own
``torch.Generator``, seeded exactly as ``model.generate`` seeds that prompt), log-probability
requests, a stop event and a cancel event. The watermark's logits processors run per row on
that row's own (unpadded) tokens. A row that finishes (end of sequence, its ``max_tokens``,
a stop string seen by its streamer, its client gone) is answered at once; its slot in the
batch is padding until the batch's longest row ends, and rows queued meanwhile wait for the
next batch (dynamic, not continuous, batching).

Reproducibility: a row is computed exactly as a local ``model.generate`` batch computes it
(the same left-padded ``generate`` call, the same per-row seeded generator). Equality with
the request alone (batch 1) holds up to float32 rounding: padded-batch logits differ in the
last bits (SmolLM2: up to ~5e-5 in a log-probability), so a near-tie can flip a token, as
it can in the local model's own batches (docs/serve.md, "Batching").
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
    unbatched behaviour). ``window_ms``: how long the free worker waits, after the first
    queued row, for more rows before it starts a batch.
    """

    max_batch: int = 8
    window_ms: float = 20.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_batch, int) or isinstance(self.max_batch, bool):
            raise InputError(f"max_batch must be an integer >= 1, got {self.max_batch!r}")
        if self.max_batch < 1:
            raise InputError(f"max_batch must be an integer >= 1, got {self.max_batch!r}")
        if not isinstance(self.window_ms, int | float) or not 0 <= self.window_ms <= 10_000:
            raise InputError(f"batch window must be 0..10000 ms, got {self.window_ms!r}")


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
    """Counts of what the worker did (rows per batch), for tests and benchmarks."""

    batches: int = 0
    rows: int = 0
    largest: int = 0
    sizes: collections.Counter = field(default_factory=collections.Counter)

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
        """Stop the worker after its current batch; queued rows fail."""
        with self._cv:
            self._closed = True
            left = list(self._queue)
            self._queue.clear()
            self._cv.notify_all()
        for r in left:
            r.future.set_exception(RuntimeError("the server is shutting down"))

    def _take(self) -> list[Row] | None:
        """The next batch: the first queued row plus what arrives within the window."""
        cfg = self.config
        with self._cv:
            while not self._queue:
                if self._closed or not self._cv.wait(IDLE_EXIT_S) and not self._queue:
                    self._thread = None
                    return None
            deadline = time.monotonic() + cfg.window_ms / 1000.0
            while len(self._queue) < cfg.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cv.wait(left)
            n = min(len(self._queue), cfg.max_batch)
            return [self._queue.popleft() for _ in range(n)]

    def _loop(self) -> None:
        while True:
            rows = self._take()
            if rows is None:
                return
            live = [r for r in rows if not _answered_without_model(r)]
            if not live:
                continue
            self.stats.add(len(live))
            try:
                with self.model._lock:
                    _BatchRun(self.model, live, self.processors).generate()
            except BaseException as e:  # noqa: BLE001 - handed to every waiting request
                for r in live:
                    if not r.future.done():
                        r.future.set_exception(e)


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


class _Pick:
    """The batch's only logits processor: each row's own warp, watermark and pick."""

    def __init__(self, run: _BatchRun):
        self.run = run

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return self.run.pick(input_ids, scores)


class _Stop:
    """Per-row stopping: a row ends at its max_tokens, or when its stop/cancel is set."""

    def __init__(self, run: _BatchRun):
        self.run = run

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        return self.run.should_stop(input_ids).to(input_ids.device)


class _BatchRun:
    """One batch through ``hf_model.generate``; also its streamer (``put``/``end``)."""

    def __init__(self, model: TransformersModel, rows: list[Row], processors: list[Any]):
        self.model = model
        self.rows = rows
        self.processors = processors
        self.width = max(len(r.ids) for r in rows)
        self.pads = [self.width - len(r.ids) for r in rows]
        self.gens = [
            make_generators(r.seed, [r.label], r.seed_chat)[0] if r.temperature > 0 else None
            for r in rows
        ]
        self.live = [True] * len(rows)
        self.ending = [False] * len(rows)
        self.toks: list[list[int]] = [[] for _ in rows]
        self.lps: list[list[tuple]] = [[] for _ in rows]
        self._prompt_seen = False

    def generate(self) -> None:
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        m = self.model
        ids, mask = m._left_pad([r.ids for r in self.rows])
        gc = GenerationConfig(
            max_new_tokens=max(r.max_tokens for r in self.rows),
            do_sample=False,
            num_beams=1,
            eos_token_id=sorted(m.eos_ids) or None,
            pad_token_id=m.pad_id,
            return_dict_in_generate=False,
        )
        with torch.inference_mode():
            m.hf_model.generate(
                input_ids=ids,
                attention_mask=mask,
                generation_config=gc,
                logits_processor=LogitsProcessorList([_Pick(self)]),
                stopping_criteria=StoppingCriteriaList([_Stop(self)]),
                streamer=self,
            )
        for i in range(len(self.rows)):  # rows still open when generate returned
            if self.live[i]:
                self.finish(i)

    def pick(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        out = torch.full_like(scores, float("-inf"))
        for i, r in enumerate(self.rows):
            if not self.live[i]:
                out[i, self.model.pad_id] = 0.0
                continue
            s = scores[i : i + 1]
            if r.temperature > 0:
                s = warp(s, r.temperature, r.top_p)
            if self.processors:
                row_ids = input_ids[i : i + 1, self.pads[i] :]
                for p in self.processors:
                    s = p(row_ids, s)
            g = self.gens[i]
            tok = int(pick_tokens(s, None if g is None else [g])[0])
            out[i, tok] = 0.0
            if r.top_logprobs is not None:
                self.record(i, scores[i], tok, r.top_logprobs)
        return out

    def record(self, i: int, raw: torch.Tensor, tok: int, k: int) -> None:
        """The model's own log-probabilities (before temperature and processors)."""
        lp = torch.log_softmax(raw.float(), dim=-1)
        top = torch.topk(lp, min(k, lp.shape[0])) if k else None
        self.lps[i].append((float(lp[tok]), top))

    def should_stop(self, input_ids: torch.Tensor) -> torch.Tensor:
        n = input_ids.shape[1] - self.width  # tokens generated so far (every row)
        for i, r in enumerate(self.rows):
            if self.live[i] and (n >= r.max_tokens or r.ended()):
                self.ending[i] = True
        return torch.tensor([not a or e for a, e in zip(self.live, self.ending, strict=True)])

    # -------------------------------------------------------------- streamer protocol
    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first passes the prompt
            self._prompt_seen = True
            return
        eos = self.model.eos_ids
        for i, t in enumerate(value.reshape(-1).tolist()):
            if not self.live[i]:
                continue
            self.toks[i].append(int(t))
            r = self.rows[i]
            if r.on_token is not None:
                try:
                    r.on_token(int(t))
                except Exception:  # noqa: BLE001 - a broken stream ends its row, not the batch
                    self.ending[i] = True
            if t in eos or self.ending[i]:
                self.finish(i)

    def end(self) -> None:
        pass

    def finish(self, i: int) -> None:
        """Answer row i: its tokens up to end of sequence, its log-probabilities."""
        self.live[i] = False
        r = self.rows[i]
        toks, finish = [], "length"
        for t in self.toks[i]:
            if t in self.model.eos_ids:
                finish = "stop"
                break
            toks.append(t)
        m = self.model
        text = m.tokenizer.decode(toks, skip_special_tokens=True)
        steps = None
        if r.top_logprobs is not None:
            steps = []
            for t, (lp, top) in zip(toks, self.lps[i], strict=False):
                alts: tuple[TokenLogprob, ...] = ()
                if top is not None:
                    alts = tuple(
                        TokenLogprob(m._piece(j), float(v), int(j))
                        for v, j in zip(top.values.tolist(), top.indices.tolist(), strict=True)
                    )
                steps.append(TokenStep(TokenLogprob(m._piece(t), lp, int(t)), alts))
        gen = Generation(prompt=r.label, text=text, token_ids=tuple(toks), finish_reason=finish)
        try:
            if r.on_end is not None:
                r.on_end()
        finally:
            r.future.set_result((gen, steps))
