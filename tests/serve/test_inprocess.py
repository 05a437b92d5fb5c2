"""serve's API called in-process (``LocalClient``, the gateway's local upstream) answers as
serve does over HTTP: the same status codes, error bodies and seeded generations; a stream
arrives chunk by chunk, and closing it frees the model at once."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from fastapi.testclient import TestClient

from distilltrace.serve.app import create_app
from distilltrace.serve.inprocess import LocalClient
from tests.serve.test_hardening import Processors, slow_z

CHAT = "/v1/chat/completions"


def _both(make_app, method: str, path: str, body: dict | bytes | None = None):
    """(HTTP answer, in-process answer) to the same request, each from a fresh app (no
    prefix cache shared): (status, JSON body)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode() if body else b""
    with TestClient(make_app()) as c:
        h = {"content-type": "application/json"}
        r = c.request(method, path, content=raw or None, headers=h)
        over_http = (r.status_code, r.json())
    local = asyncio.run(LocalClient(make_app()).request(method, path, raw))
    assert local.headers["content-type"] == "application/json"
    return over_http, (local.status_code, json.loads(local.content))


def _same_answer(a: dict, b: dict) -> None:
    for d in (a, b):  # a fresh id and clock per answer
        d.pop("id", None)
        d.pop("created", None)
    assert a == b


@pytest.mark.parametrize(
    "path, body",
    [
        (CHAT, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "seed": 3}),
        (
            CHAT,
            {
                "messages": [{"role": "user", "content": "yo"}],
                "max_tokens": 4,
                "seed": 1,
                "temperature": 0.7,
                "logprobs": True,
                "top_logprobs": 2,
            },
        ),
        ("/v1/completions", {"prompt": ["ab", "cde"], "max_tokens": 5, "seed": 9}),
        ("/v1/completions", {"prompt": "ab", "max_tokens": 0, "logprobs": 1, "echo": True}),
    ],
)
def test_answers_equal_serve_over_http(tiny_model, path, body):
    (s1, a), (s2, b) = _both(lambda: create_app(tiny_model), "POST", path, body)
    assert s1 == s2 == 200
    _same_answer(a, b)


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("POST", CHAT, {"messages": [{"role": "user", "content": "hi"}], "temperature": "1"}, 422),
        ("POST", CHAT, {"messages": []}, 422),
        ("POST", CHAT, {"messages": [{"role": "user", "content": "hi"}], "model": "x"}, 404),
        ("POST", CHAT, {"messages": [{"role": "user", "content": "hi"}], "n": 2}, 400),
        ("POST", "/v1/completions", {"prompt": "a" * 100_000, "max_tokens": 1}, 400),
        ("POST", CHAT, b"[1, 2]", 422),
        ("GET", "/v1/models", None, 200),
        ("GET", "/v1/models/nope", None, 404),
    ],
)
def test_errors_and_listings_equal_serve_over_http(tiny_model, method, path, body, status):
    make = lambda: create_app(tiny_model, context_length=256)  # noqa: E731
    (s1, a), (s2, b) = _both(make, method, path, body)
    assert s1 == s2 == status
    assert a == b


def test_a_stream_arrives_in_chunks_and_closing_it_frees_the_model(tiny_model):
    app = create_app(tiny_model, watermark=Processors(slow_z(tiny_model)))
    client = LocalClient(app)
    stream = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 400, "stream": True}

    async def main() -> tuple[list[bytes], float, dict]:
        r = await client.request("POST", CHAT, json.dumps(stream).encode())
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        chunks = []
        async for chunk in r.aiter_raw():
            chunks.append(chunk)
            if len(chunks) == 3:
                break
        await r.aclose()
        t0 = time.monotonic()
        short = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        r2 = await client.request("POST", CHAT, json.dumps(short).encode())
        return chunks, time.monotonic() - t0, json.loads(r2.content)

    chunks, elapsed, answer = asyncio.run(asyncio.wait_for(main(), timeout=30))
    assert [c.startswith(b"data: {") for c in chunks] == [True] * 3
    assert json.loads(chunks[2][6:])["choices"][0]["delta"] == {"content": "Z"}
    assert answer["choices"][0]["message"]["content"] == "ZZ"
    assert elapsed < 3.0, f"the next request waited {elapsed:.1f}s for an abandoned stream"


def test_a_caller_cancelled_while_waiting_frees_the_model_and_breaks_nothing(tiny_model):
    """An awaiting request that is cancelled (a timeout, a shutdown) ends its rows at the
    next token; the batcher keeps serving (its futures are never cancelled under it).
    Dynamic batching: the next request waits for the running batch to end."""
    from distilltrace.serve.batching import BatchConfig

    batching = BatchConfig(max_batch=2, continuous=False)
    app = create_app(tiny_model, watermark=Processors(slow_z(tiny_model)), batching=batching)
    client = LocalClient(app)
    long = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 400}
    short = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}

    async def main() -> tuple[float, dict]:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.request("POST", CHAT, json.dumps(long).encode()), 0.5)
        t0 = time.monotonic()
        r = await client.request("POST", CHAT, json.dumps(short).encode())
        return time.monotonic() - t0, json.loads(r.content)

    elapsed, answer = asyncio.run(asyncio.wait_for(main(), timeout=30))
    assert answer["choices"][0]["message"]["content"] == "ZZ"
    assert elapsed < 3.0, f"the next request waited {elapsed:.1f}s for a cancelled one"
