"""An OpenAI-compatible HTTP API (FastAPI) over a local TransformersModel.

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions``
(logprobs/top_logprobs, seed, temperature, top_p, max_tokens, stop, SSE streaming), and
``GET /health``. Model access is serialised: one generation at a time (a list of prompts in
one /v1/completions request is generated as one batch). Errors are OpenAI-style JSON
(400/401/404/422); a 500 means a bug.

distilltrace extension: ``echo=true`` with ``max_tokens=0`` on /v1/chat/completions whose
last message is from the assistant returns the log-probabilities of that message's tokens
(the same numbers as ``Model.score(prompt, continuation, chat=True)``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from distilltrace.errors import CapabilityError, DistilltraceError
from distilltrace.models.base import TokenLogprob
from distilltrace.models.local import TokenStep, TransformersModel

DEFAULT_MAX_TOKENS = 128
MAX_TOKENS_LIMIT = 4096
MAX_TOP_LOGPROBS = 20


class APIError(Exception):
    """An error answered as OpenAI-style JSON with an HTTP status."""

    def __init__(self, status: int, message: str, type_: str, code: str | None = None, param=None):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status,
            message,
            type_,
            code,
            param,
        )


def _error_body(message: str, type_: str, code: str | None = None, param: Any = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# ---------------------------------------------------------------------------- request schemas
class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ContentPart(_Open):
    type: str
    text: str | None = None


class Message(_Open):
    role: Literal["system", "user", "assistant", "developer", "tool"]
    content: str | list[ContentPart] | None = None

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
    model: str | None = None
    max_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS_LIMIT)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    n: int = Field(1, ge=1)
    echo: bool = False


class ChatRequest(_Sampling):
    messages: list[Message] = Field(..., min_length=1)
    max_completion_tokens: int | None = Field(None, ge=0, le=MAX_TOKENS_LIMIT)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)


class CompletionRequest(_Sampling):
    prompt: str | list[str]
    logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)


# ---------------------------------------------------------------------------- helpers
def hash_api_key(key: str) -> str:
    """The SHA-256 hex digest stored in an --api-keys file for this key."""
    return hashlib.sha256(key.encode()).hexdigest()


def _stops(stop: str | list[str] | None) -> list[str]:
    if stop is None:
        return []
    s = [stop] if isinstance(stop, str) else list(stop)
    if len(s) > 4:
        raise APIError(400, "at most 4 stop sequences", "invalid_request_error", param="stop")
    return [x for x in s if x]


def _cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class _Streamer:
    """Receives token ids from generate() and turns them into text deltas on a queue."""

    def __init__(self, model: TransformersModel, stops: Sequence[str]):
        self.model = model
        self.stops = list(stops)
        self.ids: list[int] = []
        self.sent = 0
        self.text = ""
        self.q: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.stopped = threading.Event()
        self._first = True
        self._hold = max((len(s) for s in self.stops), default=1) - 1

    def put(self, value: Any) -> None:
        if self._first:  # generate() first passes the prompt
            self._first = False
            return
        for t in value.reshape(-1).tolist():
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
            self.q.put(("stop", "stop"))
            self.stopped.set()
            return
        self._emit(text[: max(self.sent, len(text) - self._hold)])

    def _emit(self, upto: str) -> None:
        if len(upto) > self.sent:
            self.q.put(("text", upto[self.sent :]))
            self.sent = len(upto)
        self.text = upto

    def end(self) -> None:
        if not self.stopped.is_set():
            text = self.model.tokenizer.decode(self.ids, skip_special_tokens=True)
            cut, _ = _cut_at_stop(text, self.stops)
            self._emit(cut)


class _StopFlag:
    """A stopping criterion that ends generation once the streamer saw a stop sequence."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool)


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
) -> FastAPI:
    """The FastAPI app serving ``model``; optional SHA-256 key hashes and a watermark.

    ``watermark`` has ``key_id: str`` and ``logits_processors(model) -> list``; when given,
    every generation runs those processors and every response carries
    ``"watermark": {"key_id": ...}`` (never the key).
    """
    if not isinstance(model, TransformersModel):
        raise CapabilityError(
            "serve needs a local model (a folder, a GGUF file or a bundled model)"
        )
    hashes = [h.strip().lower() for h in (api_key_hashes or []) if h.strip()]
    processors = list(watermark.logits_processors(model)) if watermark is not None else []
    wm_field = {"watermark": {"key_id": str(watermark.key_id)}} if watermark is not None else {}
    name = model.info.name
    lock = threading.Lock()  # one generation at a time
    app = FastAPI(title="distilltrace serve", version="1", docs_url=None, redoc_url=None)
    app.state.model = model

    # -------------------------------------------------------------- errors
    @app.exception_handler(APIError)
    async def _api_error(_: Request, e: APIError) -> JSONResponse:
        return JSONResponse(_error_body(e.message, e.type, e.code, e.param), status_code=e.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        errs = e.errors()
        first = errs[0] if errs else {}
        loc = ".".join(str(x) for x in first.get("loc", ()) if x != "body")
        msg = f"{loc}: {first.get('msg', 'invalid request')}" if loc else first.get("msg", "")
        return JSONResponse(
            _error_body(msg or "invalid request", "invalid_request_error", None, loc or None),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, e: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        return JSONResponse(_error_body(str(e.detail), kind), status_code=e.status_code)

    @app.exception_handler(DistilltraceError)
    async def _dt(_: Request, e: DistilltraceError) -> JSONResponse:
        return JSONResponse(_error_body(str(e), "invalid_request_error"), status_code=400)

    @app.middleware("http")
    async def _auth(request: Request, call_next: Any) -> Any:
        if hashes and request.url.path.startswith("/v1"):
            header = request.headers.get("authorization", "")
            key = header[7:].strip() if header.lower().startswith("bearer ") else ""
            digest = hash_api_key(key) if key else ""
            ok = bool(key) and any(hmac.compare_digest(digest, h) for h in hashes)
            if not ok:
                msg = "invalid API key" if key else "missing API key (Authorization: Bearer KEY)"
                return JSONResponse(
                    _error_body(msg, "invalid_request_error", "invalid_api_key"), status_code=401
                )
        return await call_next(request)

    # -------------------------------------------------------------- helpers
    def check_model(req_model: str | None) -> None:
        if req_model is not None and req_model != name:
            raise APIError(
                404,
                f"model {req_model!r} not found; this server serves {name!r}",
                "invalid_request_error",
                "model_not_found",
                "model",
            )

    def max_tokens(req: _Sampling, extra: int | None = None) -> int:
        m = extra if extra is not None else req.max_tokens
        return DEFAULT_MAX_TOKENS if m is None else int(m)

    def run(
        labels: list[str],
        encoded: list[list[int]],
        req: _Sampling,
        n_tokens: int,
        top: int | None,
        seed_chat: bool,
        streamer: Any | None = None,
        stopping: list[Any] | None = None,
    ) -> list[tuple[Any, list[TokenStep] | None]]:
        with lock:
            return model.generate_encoded(
                labels,
                encoded,
                n_tokens,
                req.temperature,
                req.top_p,
                0 if req.seed is None else int(req.seed),
                processors or None,
                seed_chat=seed_chat,
                top_logprobs=top,
                streamer=streamer,
                stopping_criteria=stopping,
            )

    def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
        return {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }

    def trim(gen: Any, steps: list[TokenStep] | None, stops: list[str]) -> tuple[str, str, Any]:
        text, hit = _cut_at_stop(gen.text, stops)
        finish = "stop" if hit else gen.finish_reason
        if hit and steps is not None:
            kept, used = [], 0
            for s in steps:
                piece = model.tokenizer.decode([s.chosen.id], skip_special_tokens=True)
                if used + len(piece) > len(text):
                    break
                kept.append(s)
                used += len(piece)
            steps = kept
        return text, finish, steps

    def sse(chunks: Iterator[dict[str, Any]]) -> StreamingResponse:
        def body() -> Iterator[bytes]:
            for c in chunks:
                yield f"data: {json.dumps(c)}\n\n".encode()
            yield b"data: [DONE]\n\n"

        return StreamingResponse(body(), media_type="text/event-stream")

    def stream_chunks(
        label: str, ids: list[int], req: _Sampling, n_tokens: int, seed_chat: bool, make: Any
    ) -> Iterator[dict[str, Any]]:
        streamer = _Streamer(model, _stops(req.stop))
        errors: list[BaseException] = []

        def work() -> None:
            try:
                run(
                    [label],
                    [ids],
                    req,
                    n_tokens,
                    None,
                    seed_chat,
                    streamer,
                    [_StopFlag(streamer.stopped)],
                )
            except BaseException as e:  # noqa: BLE001 - reported to the client below
                errors.append(e)
            finally:
                streamer.q.put(("end", None))

        threading.Thread(target=work, daemon=True).start()

        def gen() -> Iterator[dict[str, Any]]:
            yield make(None, None, first=True)
            finish = "length"
            while True:
                kind, val = streamer.q.get()
                if kind == "text":
                    yield make(val, None)
                elif kind == "stop":
                    finish = "stop"
                elif kind == "end":
                    break
            if errors:
                yield {"error": {"message": "generation failed", "type": "server_error"}}
                return
            if streamer.stopped.is_set():
                finish = "stop"
            yield make(None, finish)

        return gen()

    # -------------------------------------------------------------- routes
    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "model": name}

    @app.get("/v1/models")
    def list_models() -> dict[str, Any]:
        info = model.info
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "distilltrace",
                    "distilltrace": {
                        "identity": info.identity,
                        "tokenizer_id": info.tokenizer_id,
                        "vocab_size": info.vocab_size,
                        "backend": info.backend,
                        "supports": ["generate", "chat", "logprobs", "score"],
                    },
                }
            ],
        }

    @app.get("/v1/models/{model_id:path}")
    def get_model(model_id: str) -> dict[str, Any]:
        check_model(model_id)
        return {"id": name, "object": "model", "created": 0, "owned_by": "distilltrace"}

    @app.post("/v1/chat/completions")
    def chat_completions(req: ChatRequest) -> Any:
        check_model(req.model)
        if req.n != 1:
            raise APIError(400, "only n=1 is supported", "invalid_request_error", param="n")
        if not model.has_chat:
            raise APIError(
                400,
                f"model {name!r} has no chat template; use /v1/completions",
                "invalid_request_error",
            )
        msgs = [
            {"role": m.role if m.role != "developer" else "system", "content": m.text()}
            for m in req.messages
        ]
        n_tokens = max_tokens(req, req.max_completion_tokens)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        if req.echo:
            return chat_echo(req, msgs, n_tokens, rid, created)
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
            ids = model.encode_prompt(label, True) if single else model.encode_messages(msgs)
        except Exception as e:  # noqa: BLE001 - a template that rejects the conversation
            raise APIError(
                400, f"cannot apply the chat template: {e}", "invalid_request_error"
            ) from None
        if req.stream:
            if req.logprobs:
                raise APIError(
                    400, "logprobs with stream are not supported", "invalid_request_error"
                )

            def make(delta: str | None, finish: str | None, first: bool = False) -> dict:
                d: dict[str, Any] = {"role": "assistant", "content": ""} if first else {}
                if delta is not None:
                    d = {"content": delta}
                return {
                    "id": rid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": name,
                    "choices": [
                        {"index": 0, "delta": d, "logprobs": None, "finish_reason": finish}
                    ],
                    **wm_field,
                }

            return sse(stream_chunks(label, ids, req, n_tokens, True, make))
        top = (req.top_logprobs or 0) if req.logprobs else None
        ((gen, steps),) = run([label], [ids], req, n_tokens, top, True)
        text, finish, steps = trim(gen, steps, _stops(req.stop))
        return {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": name,
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
            "usage": usage(len(ids), len(gen.token_ids)),
            "system_fingerprint": model.info.identity[:16],
            **wm_field,
        }

    def chat_echo(
        req: ChatRequest, msgs: list[dict[str, str]], n_tokens: int, rid: str, created: int
    ) -> dict[str, Any]:
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
        with lock:
            sc = model.score([msgs[0]["content"]], [msgs[1]["content"]], chat=True)[0]
        return {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": msgs[1]["content"]},
                    "logprobs": {
                        "content": [{**_tok_json(t), "top_logprobs": []} for t in sc.tokens]
                    },
                    "finish_reason": "length",
                }
            ],
            "usage": usage(len(model.encode_prompt(msgs[0]["content"], True)) + sc.n_tokens, 0),
            "system_fingerprint": model.info.identity[:16],
        }

    @app.post("/v1/completions")
    def completions(req: CompletionRequest) -> Any:
        check_model(req.model)
        if req.n != 1:
            raise APIError(400, "only n=1 is supported", "invalid_request_error", param="n")
        prompts = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
        if not prompts:
            raise APIError(400, "prompt must not be empty", "invalid_request_error", param="prompt")
        n_tokens = max_tokens(req)
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
        encoded = [model.encode_prompt(p, False) for p in prompts]
        if req.stream:
            if len(prompts) != 1 or req.logprobs is not None or req.echo:
                raise APIError(
                    400,
                    "stream needs one prompt, no logprobs and no echo",
                    "invalid_request_error",
                    param="stream",
                )

            def make(delta: str | None, finish: str | None, first: bool = False) -> dict:
                return {
                    "id": rid,
                    "object": "text_completion",
                    "created": created,
                    "model": name,
                    "choices": [
                        {"index": 0, "text": delta or "", "logprobs": None, "finish_reason": finish}
                    ],
                    **wm_field,
                }

            return sse(stream_chunks(prompts[0], encoded[0], req, n_tokens, False, make))
        top = req.logprobs
        results = (
            run(prompts, encoded, req, n_tokens, top, False)
            if n_tokens > 0
            else [(None, [] if top is not None else None) for _ in prompts]
        )
        choices = []
        n_out = 0
        stops = _stops(req.stop)
        for i, (p, ids, (gen, steps)) in enumerate(zip(prompts, encoded, results, strict=True)):
            if gen is None:
                text, finish, steps = "", "length", steps
            else:
                text, finish, steps = trim(gen, steps, stops)
                n_out += len(gen.token_ids)
            lp = None
            if top is not None:
                lp = completion_logprobs(p, ids, steps or [], top, req.echo)
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
            "model": name,
            "choices": choices,
            "usage": usage(sum(len(e) for e in encoded), n_out),
            "system_fingerprint": model.info.identity[:16],
            **wm_field,
        }

    def completion_logprobs(
        prompt: str, ids: list[int], steps: list[TokenStep], top: int, echo: bool
    ) -> dict[str, Any]:
        tokens: list[str] = []
        lps: list[float | None] = []
        tops: list[dict[str, float] | None] = []
        top_ids: list[dict[str, int] | None] = []
        offsets: list[int] = []
        token_ids: list[int] = []
        if echo:
            with lock:
                plp = prompt_logprobs(ids)
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

    def prompt_logprobs(ids: list[int]) -> list[float]:
        lp, _ = model._forward_logprobs([ids])
        return [float(lp[0, j, ids[j + 1]]) for j in range(len(ids) - 1)]

    return app


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
