"""An OpenAI-compatible HTTP API (FastAPI) over a local TransformersModel.

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions``
(logprobs/top_logprobs, seed, temperature, top_p, max_tokens, stop, SSE streaming), and
``GET /health``. Concurrent requests are batched (serve/batching.py: one worker thread owns
generation; ``BatchConfig(max_batch=8, window_ms=20, continuous=True)``: a request joins the
running batch at the next token; each request keeps its own sampling parameters and seed). With ``max_batch=1`` model access is serialised as before: one
generation at a time (a list of prompts in one /v1/completions request is generated as one
batch). Errors are OpenAI-style JSON
(400/401/404/413/421/422); an unexpected failure is a JSON 500 that names no detail.

Limits (docs/serve.md): request body size, prompt characters (checked before tokenising),
prompt tokens + max_tokens against the model's context, 64 list prompts, 256 messages,
strict JSON types. With a watermark, log-probabilities are refused (they would reveal the
green lists). Message content is never parsed into special tokens. A streaming client
that disconnects stops its generation.

distilltrace extension: ``echo=true`` with ``max_tokens=0`` on /v1/chat/completions whose
last message is from the assistant returns the log-probabilities of that message's tokens
(the same numbers as ``Model.score(prompt, continuation, chat=True)``).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
)
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from distilltrace.errors import CapabilityError, DistilltraceError
from distilltrace.models.base import TokenLogprob
from distilltrace.models.local import TokenStep, TransformersModel
from distilltrace.serve import prompts as P
from distilltrace.serve.batching import BatchConfig, Batcher, Row
from distilltrace.serve.errors import APIError, bad_request, error_body
from distilltrace.serve.guard import DEFAULT_MAX_BODY_BYTES, Guard, hash_api_key

DEFAULT_MAX_TOKENS = 128
MAX_TOKENS_LIMIT = 4096
MAX_TOP_LOGPROBS = 20
SEED_RANGE = (-(2**63), 2**63 - 1)
# a request body up to this size is checked and tokenised on the event loop; a larger one
# in a worker thread, so a long prompt cannot stall other requests (SmolLM2 chat, 2026-12-03:
# 0.5 ms at 100 characters, 1.5 ms at 1,000, 5.8 ms at 4,000, 18 ms at 16,000)
INLINE_PREPARE_BYTES = 1024
__all__ = ["APIError", "BatchConfig", "DEFAULT_MAX_BODY_BYTES", "create_app", "hash_api_key"]

_error_body = error_body


# ---------------------------------------------------------------------------- request schemas
def _number(v: Any) -> Any:
    """JSON numbers only: no booleans, no numeric strings (no lax coercion)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError("must be a number")
    return v


Number = Annotated[float, BeforeValidator(_number)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ContentPart(_Open):
    type: StrictStr
    text: StrictStr | None = None


class Message(_Open):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: StrictStr | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        parts = []
        for p in self.content:
            if p.type != "text" or p.text is None:
                raise APIError(
                    400, "only text content parts are supported", "invalid_request_error"
                )
            parts.append(p.text)
        return "".join(parts)


class _Sampling(_Open):
    model: StrictStr | None = None
    max_tokens: StrictInt | None = Field(None, ge=0, le=MAX_TOKENS_LIMIT)
    temperature: Number = Field(1.0, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: Number = Field(1.0, gt=0.0, le=1.0, allow_inf_nan=False)
    seed: StrictInt | None = Field(None, ge=SEED_RANGE[0], le=SEED_RANGE[1])
    stop: StrictStr | list[StrictStr] | None = None
    stream: StrictBool = False
    n: StrictInt = Field(1, ge=1)
    echo: StrictBool = False


class ChatRequest(_Sampling):
    messages: list[Message] = Field(..., min_length=1)
    max_completion_tokens: StrictInt | None = Field(None, ge=0, le=MAX_TOKENS_LIMIT)
    logprobs: StrictBool = False
    top_logprobs: StrictInt | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)


class CompletionRequest(_Sampling):
    prompt: StrictStr | list[StrictStr]
    logprobs: StrictInt | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)


# ---------------------------------------------------------------------------- helpers
def _stops(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    s = [stop] if isinstance(stop, str) else list(stop)
    if len(s) > 4:
        raise APIError(400, "at most 4 stop sequences", "invalid_request_error", param="stop")
    if any(len(x) > P.MAX_STOP_CHARS for x in s):
        raise bad_request(
            f"a stop sequence has at most {P.MAX_STOP_CHARS} characters", None, "stop"
        )
    return [x for x in s if x]


def _cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class _Streamer:
    """Receives token ids from generate() and turns them into text deltas for ``emit``."""

    def __init__(self, model: TransformersModel, stops: Sequence[str]):
        self.model = model
        self.stops = list(stops)
        self.ids: list[int] = []
        self.sent = 0
        self.text = ""
        self.emit: Callable[[tuple[str, Any]], None] = lambda item: None
        self.stopped = threading.Event()
        self._first = True
        self._hold = max((len(s) for s in self.stops), default=1) - 1

    def put(self, value: Any) -> None:
        if self._first:  # generate() first passes the prompt
            self._first = False
            return
        self.push(value.reshape(-1).tolist())

    def push(self, token_ids: list[int]) -> None:
        """New token ids of this generation (the batcher calls this per token)."""
        for t in token_ids:
            if self.stopped.is_set():
                return
            if t in self.model.eos_ids:
                self.stopped.set()
                return
            self.ids.append(int(t))
        text = self.model.tokenizer.decode(self.ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return  # an incomplete multi-byte character: wait for the next token
        cut, hit = _cut_at_stop(text, self.stops)
        if hit:
            self._emit(cut)
            self.emit(("stop", "stop"))
            self.stopped.set()
            return
        self._emit(text[: max(self.sent, len(text) - self._hold)])

    def _emit(self, upto: str) -> None:
        if len(upto) > self.sent:
            self.emit(("text", upto[self.sent :]))
            self.sent = len(upto)
        self.text = upto

    def end(self) -> None:
        if not self.stopped.is_set():
            text = self.model.tokenizer.decode(self.ids, skip_special_tokens=True)
            cut, _ = _cut_at_stop(text, self.stops)
            self._emit(cut)


class _StopFlag:
    """A stopping criterion: ends generation once any of its events is set (a stop
    sequence seen by the streamer, or the client gone)."""

    def __init__(self, *events: threading.Event):
        self.events = events

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        stop = any(e.is_set() for e in self.events)
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool)


class _SSEResponse(StreamingResponse):
    """A StreamingResponse that sets ``cancel`` when it ends for any reason (finished,
    client disconnected, task cancelled), so the generation behind it stops."""

    def __init__(self, content: Any, cancel: threading.Event):
        super().__init__(content, media_type="text/event-stream")
        self.cancel = cancel

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.cancel.set()


def _sse_bytes(chunk: dict[str, Any] | str) -> bytes:
    data = chunk if isinstance(chunk, str) else json.dumps(chunk)
    return f"data: {data}\n\n".encode()


def _post(loop: asyncio.AbstractEventLoop, q: asyncio.Queue, item: Any) -> None:
    try:
        loop.call_soon_threadsafe(q.put_nowait, item)
    except RuntimeError:  # the event loop is gone (server shutting down)
        pass


def _tok_json(t: TokenLogprob) -> dict[str, Any]:
    return {"token": t.token, "logprob": t.logprob, "bytes": list(t.token.encode()), "id": t.id}


def _chat_logprobs(steps: Sequence[TokenStep], with_top: bool) -> dict[str, Any]:
    return {
        "content": [
            {
                **_tok_json(s.chosen),
                "top_logprobs": [_tok_json(t) for t in s.top] if with_top else [],
            }
            for s in steps
        ]
    }


# ---------------------------------------------------------------------------- the app
def create_app(
    model: TransformersModel,
    *,
    api_key_hashes: Iterable[str] | None = None,
    watermark: Any | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    context_length: int | None = None,
    max_prompt_chars: int | None = None,
    allowed_hosts: Iterable[str] | None = None,
    batching: BatchConfig | None = None,
) -> FastAPI:
    """The FastAPI app serving ``model``; optional SHA-256 key hashes and a watermark.

    ``watermark`` has ``key_id: str`` and ``logits_processors(model) -> list``; when given,
    every generation runs those processors, every response carries
    ``"watermark": {"key_id": ...}`` (never the key), and log-probabilities are refused.
    ``max_body_bytes`` caps a request body (413); ``context_length`` overrides the model
    config's; ``max_prompt_chars`` caps prompt characters before tokenising (default
    16 per token of context); ``allowed_hosts`` (None: no check) is the Host allow-list.
    ``batching`` (default ``BatchConfig()``: up to 8 rows, 20 ms window) batches concurrent
    requests; ``BatchConfig(max_batch=1)`` serves one generation at a time.
    """
    if not isinstance(model, TransformersModel):
        raise CapabilityError(
            "serve needs a local model (a folder, a GGUF file or a bundled model)"
        )
    if int(max_body_bytes) < 1:
        raise ValueError("max_body_bytes must be >= 1")
    svc = _Service(model, watermark, context_length, max_prompt_chars, int(max_body_bytes))
    svc.start_batching(batching if batching is not None else BatchConfig())
    app = FastAPI(title="distilltrace serve", version="1", docs_url=None, redoc_url=None)
    app.state.model = model
    app.state.service = svc
    app.state.batcher = svc.batcher
    app.state.context_length = svc.ctx
    _install_error_handlers(app)
    app.add_middleware(
        Guard,
        key_hashes=list(api_key_hashes or []),
        allowed_hosts=None if allowed_hosts is None else list(allowed_hosts),
        max_body_bytes=int(max_body_bytes),
    )

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "model": svc.name}

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        return svc.models()

    @app.get("/v1/models/{model_id:path}")
    def get_model(model_id: str) -> dict[str, Any]:
        return svc.model_entry(model_id)

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatRequest, request: Request) -> Any:
        return await svc.respond(svc.chat, req, _body_size(request), request)

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request) -> Any:
        return await svc.respond(svc.completions, req, _body_size(request), request)

    return app


def error_response(e: Exception) -> JSONResponse:
    """The OpenAI-style JSON error answer to an exception raised while answering (the app's
    handlers and the in-process transport share it)."""
    if isinstance(e, APIError):
        return JSONResponse(error_body(e.message, e.type, e.code, e.param), status_code=e.status)
    if isinstance(e, RequestValidationError | ValidationError):
        return _invalid(e.errors())
    if isinstance(e, StarletteHTTPException):
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(e.detail), kind), status_code=e.status_code)
    if isinstance(e, DistilltraceError):
        return JSONResponse(error_body(str(e), "invalid_request_error"), status_code=400)
    # never the exception's text: it may carry request content or internals
    body = error_body("internal server error", "server_error", "internal_error")
    return JSONResponse(body, status_code=500)


def _invalid(errs: Sequence[Any]) -> JSONResponse:
    first = errs[0] if errs else {}
    loc = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
    msg = f"{loc}: {first.get('msg', 'invalid request')}" if loc else first.get("msg", "")
    return JSONResponse(
        error_body(msg or "invalid request", "invalid_request_error", None, loc or None),
        status_code=422,
    )


def _install_error_handlers(app: FastAPI) -> None:
    async def handle(_: Request, e: Exception) -> JSONResponse:
        return error_response(e)

    for kind in (APIError, RequestValidationError, StarletteHTTPException, DistilltraceError):
        app.add_exception_handler(kind, handle)
    app.add_exception_handler(Exception, handle)


def _body_size(request: Request) -> int:
    """The request body's declared length (a body without one counts as large)."""
    try:
        return int(request.headers.get("content-length", ""))
    except ValueError:
        return INLINE_PREPARE_BYTES + 1


@dataclass
class _Job:
    """A generation request that is checked and tokenised: what is left is the model.

    ``finish(results)`` builds the JSON answer from the rows' ``(Generation, steps)``
    (None when ``run_model`` is false); ``make`` builds SSE chunks when streaming;
    ``locked_finish``: finish() uses the model itself (echo log-probabilities)."""

    labels: list[str]
    encoded: list[list[int]]
    req: _Sampling
    n_tokens: int
    top: int | None
    seed_chat: bool
    finish: Callable[[list | None], dict[str, Any]] | None = None
    make: Callable[..., dict[str, Any]] | None = None
    run_model: bool = True
    locked_finish: bool = False


class _Service:
    """The model behind the routes: limits, the model lock, generation and scoring."""

    def __init__(
        self,
        model: TransformersModel,
        watermark: Any | None,
        context_length: int | None,
        max_prompt_chars: int | None,
        max_body_bytes: int,
    ):
        self.model = model
        self.name = model.info.name
        self.watermark = watermark
        self.processors = list(watermark.logits_processors(model)) if watermark else []
        self.wm_field = {"watermark": {"key_id": str(watermark.key_id)}} if watermark else {}
        self.ctx = int(context_length) if context_length else P.context_length(model)
        default_chars = P.CHARS_PER_TOKEN_CAP * self.ctx if self.ctx else max_body_bytes
        self.max_chars = int(max_prompt_chars) if max_prompt_chars else default_chars
        self.lock = threading.Lock()  # one generation at a time (unbatched)
        self.batcher: Batcher | None = None

    def start_batching(self, config: BatchConfig) -> None:
        """Batch concurrent generations (max_batch > 1) through one worker thread."""
        if not isinstance(config, BatchConfig):
            raise TypeError("batching must be a BatchConfig")
        if config.max_batch > 1:
            self.batcher = Batcher(self.model, self.processors, config)

    # -------------------------------------------------------------- checks
    def model_card(self) -> dict[str, Any]:
        info = self.model.info
        supports = ["generate", "chat"] + ([] if self.watermark else ["logprobs", "score"])
        return {
            "id": self.name,
            "object": "model",
            "created": 0,
            "owned_by": "distilltrace",
            "distilltrace": {
                "identity": info.identity,
                "tokenizer_id": info.tokenizer_id,
                "vocab_size": info.vocab_size,
                "backend": info.backend,
                "context_length": self.ctx,
                "supports": supports,
            },
        }

    def models(self) -> dict[str, Any]:
        """The answer to ``GET /v1/models``."""
        return {"object": "list", "data": [self.model_card()]}

    def model_entry(self, model_id: str) -> dict[str, Any]:
        """The answer to ``GET /v1/models/{model_id}`` (404 for another model)."""
        P.check_unicode(model_id, "model")
        self.check_model(model_id)
        return {"id": self.name, "object": "model", "created": 0, "owned_by": "distilltrace"}

    def check_model(self, req_model: str | None) -> None:
        if req_model is not None and req_model != self.name:
            raise APIError(
                404,
                f"model {req_model!r} not found; this server serves {self.name!r}",
                "invalid_request_error",
                "model_not_found",
                "model",
            )

    def check_common(self, req: _Sampling) -> list[str]:
        """Checks that need no tokenising; returns the stop sequences."""
        P.check_unicode(req.model_dump(), "")
        self.check_model(req.model)
        if req.n != 1:
            raise APIError(400, "only n=1 is supported", "invalid_request_error", param="n")
        return _stops(req.stop)

    def refuse_logprobs(self) -> None:
        """With a watermark, log-probabilities (and echo scores) would reveal the green
        lists: the raw numbers next to the watermark-biased picks. Refused."""
        if self.watermark is not None:
            raise bad_request(
                "log-probabilities are not available while a watermark is active (they "
                "would reveal the watermark); request without logprobs/echo",
                "logprobs_unavailable",
                "logprobs",
            )

    # -------------------------------------------------------------- generation
    def run(
        self,
        labels: list[str],
        encoded: list[list[int]],
        req: _Sampling,
        n_tokens: int,
        top: int | None,
        seed_chat: bool,
        streamer: Any | None = None,
        stopping: list[Any] | None = None,
        cancel: threading.Event | None = None,
    ) -> list[tuple[Any, list[TokenStep] | None]]:
        if self.batcher is not None:
            return self.run_batched(
                labels, encoded, req, n_tokens, top, seed_chat, streamer, cancel
            )
        with self.lock:
            if cancel is not None and cancel.is_set():
                return []  # the client left while this request waited for the model
            return self.model.generate_encoded(
                labels,
                encoded,
                n_tokens,
                req.temperature,
                req.top_p,
                0 if req.seed is None else int(req.seed),
                self.processors or None,
                seed_chat=seed_chat,
                top_logprobs=top,
                streamer=streamer,
                stopping_criteria=stopping,
            )

    def run_batched(
        self,
        labels: list[str],
        encoded: list[list[int]],
        req: _Sampling,
        n_tokens: int,
        top: int | None,
        seed_chat: bool,
        streamer: _Streamer | None,
        cancel: threading.Event | None,
    ) -> list[tuple[Any, list[TokenStep] | None]]:
        """One row per prompt through the batcher; [] if the client left while queued."""
        assert self.batcher is not None
        rows = self._rows(labels, encoded, req, n_tokens, top, seed_chat, streamer, cancel)
        results = [f.result() for f in self.batcher.submit(rows)]
        return [] if any(r is None for r in results) else results

    async def run_async(self, job: _Job) -> list[tuple[Any, list[TokenStep] | None]]:
        """``job``'s rows through the batcher, awaited (no thread waits for them); without
        a batcher, one locked generation in a worker thread."""
        args = (job.labels, job.encoded, job.req, job.n_tokens, job.top, job.seed_chat)
        if self.batcher is None:
            return await run_in_threadpool(self.run, *args)
        cancel = threading.Event()
        futures = self.batcher.submit(self._rows(*args, None, cancel))
        waiting = asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        try:  # shielded: a cancelled caller must not cancel futures the batcher will set
            return list(await asyncio.shield(waiting))
        except asyncio.CancelledError:
            cancel.set()  # its rows leave the batch at their next token
            raise

    @staticmethod
    def _rows(labels, encoded, req, n_tokens, top, seed_chat, streamer, cancel) -> list[Row]:
        seed = 0 if req.seed is None else int(req.seed)
        return [
            Row(
                label,
                list(ids),
                n_tokens,
                float(req.temperature),
                float(req.top_p),
                seed,
                seed_chat,
                top,
                on_token=(lambda t: streamer.push([t])) if streamer is not None else None,
                on_end=streamer.end if streamer is not None else None,
                stop=streamer.stopped if streamer is not None else None,
                cancel=cancel,
            )
            for label, ids in zip(labels, encoded, strict=True)
        ]

    async def respond(
        self, prepare: Callable[[Any], Any], req: _Sampling, size: int, request: Any
    ) -> Any:
        """Answer ``req``: ``prepare`` (``self.chat`` or ``self.completions``) checks and
        tokenises it (inline for a small body, else in a worker thread) into a _Job, or a
        function of work under the model lock; then the model runs and the answer is built.
        ``request`` needs only ``async is_disconnected()`` (streams)."""
        if size <= INLINE_PREPARE_BYTES:
            work = prepare(req)
        else:
            work = await run_in_threadpool(prepare, req)
        if not isinstance(work, _Job):
            return await run_in_threadpool(work)  # echo scoring: under the model lock
        job = work
        if job.make is not None:
            label, ids = job.labels[0], job.encoded[0]
            return self.stream(request, label, ids, job.req, job.n_tokens, job.seed_chat, job.make)
        results = await self.run_async(job) if job.run_model else None
        assert job.finish is not None
        if job.locked_finish:
            return await run_in_threadpool(job.finish, results)
        return job.finish(results)

    @staticmethod
    def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    def trim(self, gen: Any, steps: list[TokenStep] | None, stops: list[str]) -> tuple:
        text, hit = _cut_at_stop(gen.text, stops)
        finish = "stop" if hit else gen.finish_reason
        if hit and steps is not None:
            kept, used = [], 0
            for s in steps:
                piece = self.model.tokenizer.decode([s.chosen.id], skip_special_tokens=True)
                if used + len(piece) > len(text):
                    break
                kept.append(s)
                used += len(piece)
            steps = kept
        return text, finish, steps

    def stream(
        self,
        request: Request,
        label: str,
        ids: list[int],
        req: _Sampling,
        n_tokens: int,
        seed_chat: bool,
        make: Callable[..., dict[str, Any]],
    ) -> StreamingResponse:
        """SSE of one generation; it stops within about one token of the client leaving."""
        streamer = _Streamer(self.model, _stops(req.stop))
        cancel = threading.Event()
        errors: list[BaseException] = []

        def work() -> None:
            try:
                stop = [_StopFlag(streamer.stopped, cancel)]
                self.run([label], [ids], req, n_tokens, None, seed_chat, streamer, stop, cancel)
            except BaseException as e:  # noqa: BLE001 - reported to the client below
                errors.append(e)
            finally:
                streamer.emit(("end", None))

        async def body() -> AsyncIterator[bytes]:
            loop = asyncio.get_running_loop()
            q: asyncio.Queue = asyncio.Queue()
            streamer.emit = lambda item: _post(loop, q, item)
            threading.Thread(target=work, daemon=True).start()
            try:
                yield _sse_bytes(make(None, None, first=True))
                finish = "length"
                while True:
                    try:
                        kind, val = await asyncio.wait_for(q.get(), timeout=0.25)
                    except TimeoutError:
                        kind, val = "wait", None
                    if kind == "text":
                        yield _sse_bytes(make(val, None))
                    elif kind == "stop":
                        finish = "stop"
                    elif kind == "end":
                        break
                    if await request.is_disconnected():
                        return
                if errors:
                    yield _sse_bytes(
                        {"error": {"message": "generation failed", "type": "server_error"}}
                    )
                else:
                    yield _sse_bytes(make(None, "stop" if streamer.stopped.is_set() else finish))
                yield _sse_bytes("[DONE]")
            finally:
                cancel.set()

        return _SSEResponse(body(), cancel)

    # -------------------------------------------------------------- chat
    def chat(self, req: ChatRequest) -> _Job | Callable[[], dict[str, Any]]:
        """Check and tokenise a chat request (see ``respond``)."""
        stops = self.check_common(req)
        if not self.model.has_chat:
            raise APIError(
                400,
                f"model {self.name!r} has no chat template; use /v1/completions",
                "invalid_request_error",
            )
        if len(req.messages) > P.MAX_MESSAGES:
            raise bad_request(f"at most {P.MAX_MESSAGES} messages", None, "messages")
        if req.logprobs or req.echo:
            self.refuse_logprobs()
        msgs = [
            {"role": m.role if m.role != "developer" else "system", "content": m.text()}
            for m in req.messages
        ]
        P.check_chars([m["content"] for m in msgs], self.max_chars, self.ctx, "messages")
        explicit = req.max_completion_tokens is not None or req.max_tokens is not None
        n_tokens = _max_tokens(req, req.max_completion_tokens)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if req.echo:
            self.check_echo(req, msgs, n_tokens)
            return lambda: self.chat_echo(req, msgs, rid, created)
        if msgs[-1]["role"] == "assistant":
            raise APIError(
                400,
                "the last message must not be from the assistant (unless echo)",
                "invalid_request_error",
                param="messages",
            )
        single = len(msgs) == 1 and msgs[0]["role"] == "user"
        label = msgs[0]["content"] if single else json.dumps(msgs, ensure_ascii=False)
        try:
            ids = P.encode_chat(self.model, msgs)
        except APIError:
            raise
        except Exception as e:  # noqa: BLE001 - a template that rejects the conversation
            raise APIError(
                400, f"cannot apply the chat template: {e}", "invalid_request_error"
            ) from None
        n_tokens = P.check_context(len(ids), n_tokens, self.ctx, "messages", explicit)
        if req.stream:
            if req.logprobs:
                raise APIError(
                    400, "logprobs with stream are not supported", "invalid_request_error"
                )
            return _Job(
                [label], [ids], req, n_tokens, None, True, make=self.chat_chunk(rid, created)
            )
        top = (req.top_logprobs or 0) if req.logprobs else None

        def finish(results: list | None) -> dict[str, Any]:
            return self.chat_answer(req, ids, results or [], stops, rid, created)

        return _Job([label], [ids], req, n_tokens, top, True, finish=finish)

    def chat_chunk(self, rid: str, created: int) -> Callable[..., dict[str, Any]]:
        def make(delta: str | None, finish: str | None, first: bool = False) -> dict:
            d: dict[str, Any] = {"role": "assistant", "content": ""} if first else {}
            if delta is not None:
                d = {"content": delta}
            return {
                "id": rid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.name,
                "choices": [{"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}],
                **self.wm_field,
            }

        return make

    def chat_answer(
        self,
        req: ChatRequest,
        ids: list[int],
        results: list,
        stops: list[str],
        rid: str,
        created: int,
    ) -> dict[str, Any]:
        ((gen, steps),) = results
        text, finish, steps = self.trim(gen, steps, stops)
        return {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": self.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": _chat_logprobs(steps, bool(req.top_logprobs))
                    if steps is not None
                    else None,
                    "finish_reason": finish,
                }
            ],
            "usage": self.usage(len(ids), len(gen.token_ids)),
            "system_fingerprint": self.model.info.identity[:16],
            **self.wm_field,
        }

    @staticmethod
    def check_echo(req: ChatRequest, msgs: list[dict[str, str]], n_tokens: int) -> None:
        if n_tokens != 0 or req.stream:
            raise APIError(
                400,
                "echo is supported with max_tokens=0 and no streaming (scoring)",
                "invalid_request_error",
                param="echo",
            )
        if len(msgs) != 2 or msgs[0]["role"] != "user" or msgs[1]["role"] != "assistant":
            raise APIError(
                400,
                "echo scoring needs exactly a user message then an assistant message",
                "invalid_request_error",
                param="messages",
            )

    def chat_echo(
        self, req: ChatRequest, msgs: list[dict[str, str]], rid: str, created: int
    ) -> dict[str, Any]:
        user, assistant = msgs[0]["content"], msgs[1]["content"]
        ids = P.encode_scoring(self.model, user, assistant)
        P.check_context(len(ids[0]) + len(ids[1]), 0, self.ctx, "messages")
        with self.lock:
            toks = P.score_chat(self.model, user, assistant, ids)
        return {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": self.name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": assistant},
                    "logprobs": {"content": [{**_tok_json(t), "top_logprobs": []} for t in toks]},
                    "finish_reason": "length",
                }
            ],
            "usage": self.usage(len(ids[0]) + len(toks), 0),
            "system_fingerprint": self.model.info.identity[:16],
        }

    # -------------------------------------------------------------- completions
    def completions(self, req: CompletionRequest) -> _Job:
        """Check and tokenise a completions request (see ``respond``)."""
        stops = self.check_common(req)
        prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
        if not prompts:
            raise APIError(400, "prompt must not be empty", "invalid_request_error", param="prompt")
        if len(prompts) > P.MAX_PROMPTS:
            raise bad_request(f"at most {P.MAX_PROMPTS} prompts in a list", None, "prompt")
        if req.logprobs is not None:
            self.refuse_logprobs()
        for p in prompts:
            P.check_chars([p], self.max_chars, self.ctx, "prompt")
        n_tokens = _max_tokens(req)
        encoded = [self.model.encode_prompt(p, False) for p in prompts]
        longest = max(len(e) for e in encoded)
        n_tokens = P.check_context(
            longest, n_tokens, self.ctx, "prompt", req.max_tokens is not None
        )
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        if req.stream:
            if len(prompts) != 1 or req.logprobs is not None or req.echo:
                raise APIError(
                    400,
                    "stream needs one prompt, no logprobs and no echo",
                    "invalid_request_error",
                    param="stream",
                )

            def make(delta: str | None, finish: str | None, first: bool = False) -> dict:
                choice = {
                    "index": 0,
                    "text": delta or "",
                    "logprobs": None,
                    "finish_reason": finish,
                }
                return {
                    "id": rid,
                    "object": "text_completion",
                    "created": created,
                    "model": self.name,
                    "choices": [choice],
                    **self.wm_field,
                }

            return _Job(prompts, encoded, req, n_tokens, None, False, make=make)
        top = req.logprobs

        def finish(results: list | None) -> dict[str, Any]:
            return self.complete(req, prompts, encoded, results, stops, rid, created)

        return _Job(
            prompts,
            encoded,
            req,
            n_tokens,
            top,
            False,
            finish=finish,
            run_model=n_tokens > 0,
            locked_finish=req.echo and top is not None,
        )

    def complete(
        self,
        req: CompletionRequest,
        prompts: list[str],
        encoded: list[list[int]],
        results: list | None,
        stops: list[str],
        rid: str,
        created: int,
    ) -> dict[str, Any]:
        """The answer; ``results`` None: no tokens were asked for (max_tokens 0)."""
        top = req.logprobs
        if results is None:
            results = [(None, [] if top is not None else None) for _ in prompts]
        choices = []
        n_out = 0
        for i, (p, ids, (gen, steps)) in enumerate(zip(prompts, encoded, results, strict=True)):
            if gen is None:
                text, finish = "", "length"
            else:
                text, finish, steps = self.trim(gen, steps, stops)
                n_out += len(gen.token_ids)
            lp = None
            if top is not None:
                lp = self.completion_logprobs(p, ids, steps or [], top, req.echo)
            choices.append(
                {
                    "index": i,
                    "text": (p + text) if req.echo else text,
                    "logprobs": lp,
                    "finish_reason": finish,
                }
            )
        return {
            "id": rid,
            "object": "text_completion",
            "created": created,
            "model": self.name,
            "choices": choices,
            "usage": self.usage(sum(len(e) for e in encoded), n_out),
            "system_fingerprint": self.model.info.identity[:16],
            **self.wm_field,
        }

    def completion_logprobs(
        self, prompt: str, ids: list[int], steps: list[TokenStep], top: int, echo: bool
    ) -> dict[str, Any]:
        model = self.model
        tokens: list[str] = []
        lps: list[float | None] = []
        tops: list[dict[str, float] | None] = []
        top_ids: list[dict[str, int] | None] = []
        offsets: list[int] = []
        token_ids: list[int] = []
        if echo:
            with self.lock:
                plp = self.prompt_logprobs(ids)
            offs = _offsets(model, prompt, ids)
            for j, t in enumerate(ids):
                tokens.append(model._piece(t))
                token_ids.append(int(t))
                lps.append(None if j == 0 else plp[j - 1])
                tops.append(None)
                top_ids.append(None)
                offsets.append(offs[j])
        pos = len(prompt)
        for s in steps:
            tokens.append(s.chosen.token)
            token_ids.append(int(s.chosen.id))
            lps.append(s.chosen.logprob)
            tops.append({t.token: t.logprob for t in s.top} if top else None)
            top_ids.append({t.token: int(t.id) for t in s.top} if top else None)
            offsets.append(pos)
            pos += len(model.tokenizer.decode([s.chosen.id], skip_special_tokens=True))
        return {
            "tokens": tokens,
            "token_logprobs": lps,
            "top_logprobs": tops,
            "text_offset": offsets,
            "token_ids": token_ids,
            "top_logprob_ids": top_ids,
        }

    def prompt_logprobs(self, ids: list[int]) -> list[float]:
        lp, _ = self.model._forward_logprobs([ids])
        return [float(lp[0, j, ids[j + 1]]) for j in range(len(ids) - 1)]


def _max_tokens(req: _Sampling, extra: int | None = None) -> int:
    m = extra if extra is not None else req.max_tokens
    return DEFAULT_MAX_TOKENS if m is None else int(m)


def _offsets(model: TransformersModel, text: str, ids: list[int]) -> list[int]:
    """Character offset of each prompt token in the text (special tokens at their position)."""
    try:
        enc = model.tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
        if list(enc["input_ids"]) == list(ids):
            return [int(a) for a, _ in enc["offset_mapping"]]
    except (NotImplementedError, ValueError, KeyError, TypeError):
        pass
    out, pos = [], 0
    for t in ids:
        out.append(pos)
        pos += len(model.tokenizer.decode([t], skip_special_tokens=True))
    return out
