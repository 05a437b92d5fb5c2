"""serve's API called in the same process, without HTTP.

``LocalClient(app).request(method, path, body)`` answers ``POST /v1/chat/completions``,
``POST /v1/completions`` and ``GET /v1/models[/ID]`` of a serve app
(``distilltrace.serve.app.create_app``) by calling its service directly: the same request
schemas, checks, batching, watermark and error bodies as over HTTP, without a second HTTP
handling, ASGI middleware, an HTTP client or a worker thread per waiting request. This is
how the gateway talks to a local model. The answer is a :class:`LocalResponse`, which has
the part of ``httpx.Response`` that the gateway reads. A streamed answer arrives chunk by
chunk; closing it stops its generation. The serve app's Host and body-size guard is not
run: the caller (the gateway) applies its own.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from distilltrace.serve.app import ChatRequest, CompletionRequest, error_response

_ROUTES = {"/v1/chat/completions": ChatRequest, "/v1/completions": CompletionRequest}
JSON_TYPE = "application/json"
SSE_TYPE = "text/event-stream; charset=utf-8"


class LocalResponse:
    """An answer of :class:`LocalClient`: ``status_code``, ``headers`` (lower-case names),
    ``content`` (the whole body; a stream's once read), ``aiter_raw()``, ``aread()`` and
    ``aclose()``, as an ``httpx.Response`` has them."""

    def __init__(self, status: int, content: bytes = b"", stream: Any = None):
        self.status_code = status
        self.headers = {"content-type": SSE_TYPE if stream is not None else JSON_TYPE}
        self.content = content
        self._stream = stream

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        if self._stream is None:
            if self.content:
                yield self.content
            return
        async for chunk in self._stream.body_iterator:
            yield chunk

    async def aread(self) -> bytes:
        if self._stream is not None:
            self.content = b"".join([c async for c in self.aiter_raw()])
            await self.aclose()
        return self.content

    async def aclose(self) -> None:
        """Stop a stream's generation (the SSE body's own ``finally`` sets its cancel)."""
        if self._stream is not None:
            stream, self._stream = self._stream, None
            stream.cancel.set()
            await stream.body_iterator.aclose()


class _Caller:
    """What serve's stream asks of the request: whether the client has gone. Never, here:
    the caller closes the response instead."""

    async def is_disconnected(self) -> bool:
        return False


class LocalClient:
    """Calls a serve app's service in-process (see the module doc)."""

    def __init__(self, app: Any):
        self.svc = app.state.service

    async def request(self, method: str, path: str, body: bytes = b"") -> LocalResponse:
        try:
            answer = await self._answer(method, path, body)
        except Exception as e:  # noqa: BLE001 - answered as serve answers it over HTTP
            answer = error_response(e)
        if isinstance(answer, JSONResponse):
            return LocalResponse(answer.status_code, bytes(answer.body))
        if isinstance(answer, dict):
            return LocalResponse(200, bytes(JSONResponse(answer).body))  # serve's bytes
        return LocalResponse(200, stream=answer)  # serve's SSE response

    async def _answer(self, method: str, path: str, body: bytes) -> Any:
        svc = self.svc
        if method == "GET" and path == "/v1/models":
            return svc.models()
        if method == "GET" and path.startswith("/v1/models/"):
            return svc.model_entry(path[len("/v1/models/") :])
        schema = _ROUTES.get(path)
        if schema is None:
            raise HTTPException(404, "Not Found")
        if method != "POST":
            raise HTTPException(405, "Method Not Allowed")
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RequestValidationError([{"loc": ("body",), "msg": "JSON decode error"}]) from None
        req = schema.model_validate(data, from_attributes=True)  # FastAPI's messages
        prepare = svc.chat if schema is ChatRequest else svc.completions
        return await svc.respond(prepare, req, len(body), _Caller())
