"""The OpenAI-compatible HTTP backend against small real HTTP servers started here.

Each server is a `http.server` on 127.0.0.1 that answers with fixed behaviour (5xx, 429,
no logprobs), so the client's retries, backoff and capability errors meet real sockets.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from distilltrace.errors import CapabilityError, EndpointError, InputError, ModelSpecError
from distilltrace.models import load_model, parse_spec
from distilltrace.models.openai_http import OpenAIModel
from tests.serve_helpers import free_port

MODELS = {"object": "list", "data": [{"id": "m", "object": "model"}]}


def chat_reply(text="ok"):
    return {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ]
    }


@contextmanager
def fake_openai(plan):
    """Serve on loopback; `plan(handler, n)` returns (status, body, headers) for call n."""
    calls = {"n": 0, "times": [], "auth": []}

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _answer(self):
            n = calls["n"]
            calls["n"] += 1
            calls["times"].append(time.monotonic())
            calls["auth"].append(self.headers.get("Authorization"))
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            status, out, headers = plan(self.path, body, n)
            data = json.dumps(out).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/v1", calls
    finally:
        srv.shutdown()
        srv.server_close()


def client(url, **kw):
    return OpenAIModel(url, "m", backoff=0.01, **kw)


def test_5xx_is_retried_then_succeeds():
    def plan(path, body, n):
        if path.endswith("/models"):
            return 200, MODELS, None
        return (503, {"error": {"message": "busy"}}, None) if n < 3 else (200, chat_reply(), None)

    with fake_openai(plan) as (url, calls):
        m = client(url, retries=4)
        assert m.generate(["hi"])[0].text == "ok"
        assert calls["n"] == 4  # /models + two 503s + success


def test_5xx_after_retries_is_one_readable_line():
    def plan(path, body, n):
        if path.endswith("/models"):
            return 200, MODELS, None
        return 500, {"error": {"message": "kaput"}}, None

    with fake_openai(plan) as (url, calls):
        m = client(url, retries=2)
        with pytest.raises(EndpointError) as e:
            m.generate(["hi"])
        msg = str(e.value)
        assert "HTTP 500" in msg and "kaput" in msg and "3 attempts" in msg and "\n" not in msg
        assert calls["n"] == 1 + 3


def test_429_retry_after_is_respected():
    def plan(path, body, n):
        if path.endswith("/models"):
            return 200, MODELS, None
        if n == 1:
            return 429, {"error": {"message": "slow down"}}, {"Retry-After": "0.6"}
        return 200, chat_reply(), None

    with fake_openai(plan) as (url, calls):
        m = client(url, retries=3)
        assert m.generate(["hi"])[0].text == "ok"
        assert calls["times"][2] - calls["times"][1] >= 0.55


def test_401_is_not_retried_and_the_key_is_never_shown(monkeypatch):
    secret = "sk-very-secret-123"

    def plan(path, body, n):
        return 401, {"error": {"message": f"bad key {secret}"}}, None

    monkeypatch.setenv("DT_TEST_KEY", secret)
    with fake_openai(plan) as (url, calls):
        with pytest.raises(EndpointError) as e:
            load_model(f"openai:{url};model=m;key_env=DT_TEST_KEY")
        assert "401" in str(e.value) and secret not in str(e.value)
        assert calls["n"] == 1
        assert calls["auth"][0] == f"Bearer {secret}"


def test_unreachable_endpoint():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(EndpointError, match="unreachable"):
        client(url, retries=1)


def test_timeout_is_an_endpoint_error():
    def plan(path, body, n):
        if path.endswith("/models"):
            return 200, MODELS, None
        time.sleep(1.5)
        return 200, chat_reply(), None

    with fake_openai(plan) as (url, _):
        m = client(url, retries=0, timeout=0.5)
        with pytest.raises(EndpointError, match="timed out"):
            m.generate(["hi"])


def test_without_logprobs_generate_works_and_logprob_ops_raise_capability_error():
    def plan(path, body, n):
        if path.endswith("/models"):
            return 200, MODELS, None
        if path.endswith("/completions") and "prompt" in body:
            return (
                200,
                {"choices": [{"index": 0, "text": " there", "finish_reason": "length"}]},
                None,
            )
        return 200, chat_reply("fine"), None

    with fake_openai(plan) as (url, _):
        m = client(url)
        assert "logprobs" not in m.info.supports
        assert m.generate(["hi"])[0].text == "fine"
        assert m.generate(["hi"], chat=False)[0].text == " there"
        with pytest.raises(CapabilityError):
            m.next_token_logprobs(["hi"])
        with pytest.raises(CapabilityError):
            m.score(["hi"], [" there"], chat=False)
        with pytest.raises(CapabilityError):
            m.generate(["hi"], logits_processors=[lambda i, s: s])
        with pytest.raises(CapabilityError, match="log-probabilities"):
            m.generate_steps(["hi"], top_k=5)  # an answer without its logprobs
        with pytest.raises(CapabilityError, match="chat API"):
            m.generate_steps(["hi"], chat=False)
        with pytest.raises(InputError, match="top_k"):
            m.generate_steps(["hi"], top_k=21)


def test_answers_with_top_logprobs_over_http():
    """generate_steps: each step's token, its id where the server gives one (else None),
    and the top-k alternatives, with the request asking for them."""
    seen = []

    def entry(tok, lp, i=None):
        d = {"token": tok, "logprob": lp, "bytes": list(tok.encode())}
        return d if i is None else {**d, "id": i}

    def plan(path, body, n):
        if path.endswith("/models"):
            return 200, MODELS, None
        seen.append(body)
        content = [
            {**entry("Hi", -0.1, 7), "top_logprobs": [entry("Hi", -0.1, 7), entry("Yo", -2.5)]},
            {**entry("!", -0.3), "top_logprobs": [entry("!", -0.3)]},
        ]
        reply = chat_reply("Hi!")
        reply["choices"][0]["logprobs"] = {"content": content}
        return 200, reply, None

    with fake_openai(plan) as (url, _):
        ((gen, steps),) = client(url).generate_steps(["hello"], top_k=2, max_new_tokens=8, seed=3)
    assert gen.text == "Hi!" and [s.chosen.token for s in steps] == ["Hi", "!"]
    assert [s.chosen.id for s in steps] == [7, None]
    assert [(t.token, t.logprob, t.id) for t in steps[0].top] == [
        ("Hi", -0.1, 7),
        ("Yo", -2.5, None),
    ]
    assert seen[-1]["logprobs"] is True and seen[-1]["top_logprobs"] == 2
    assert seen[-1]["temperature"] == 0.0 and seen[-1]["max_tokens"] == 8


def test_concurrency_limit_is_respected():
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    def plan(path, body, n):
        if path.endswith("/models"):
            return 200, MODELS, None
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.1)
        with lock:
            state["now"] -= 1
        return 200, chat_reply(), None

    with fake_openai(plan) as (url, _):
        m = load_model(f"openai:{url};model=m;concurrency=2")
        assert len(m.generate([f"p{i}" for i in range(8)])) == 8
        assert 1 <= state["peak"] <= 2


@pytest.mark.parametrize(
    "spec",
    [
        "openai:http://x/v1",  # no model
        "openai:ftp://x;model=m",
        "openai:http://x/v1;model=m;colour=blue",
        "openai:http://x/v1;model=m;timeout=-1",
        "openai:http://x/v1;model=m;concurrency=0",
    ],
)
def test_malformed_openai_specs(spec):
    with pytest.raises(ModelSpecError, match="accepted forms"):
        parse_spec(spec)


def test_missing_key_env_variable(monkeypatch):
    monkeypatch.delenv("DT_NOT_SET", raising=False)
    with pytest.raises(ModelSpecError, match="DT_NOT_SET"):
        load_model("openai:http://127.0.0.1:9/v1;model=m;key_env=DT_NOT_SET")
