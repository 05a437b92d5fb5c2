"""The OpenAI-compatible app: shapes, numbers equal to the local model, errors, auth, watermark."""

from __future__ import annotations

import json
import threading

import pytest
import torch
from fastapi.testclient import TestClient

from distilltrace.serve.app import create_app, hash_api_key


def chat(client, content, **kw):
    body = {"model": "tiny", "messages": [{"role": "user", "content": content}], **kw}
    return client.post("/v1/chat/completions", json=body)


def test_models_lists_the_served_model(client, tiny_model):
    d = client.get("/v1/models").json()
    assert d["object"] == "list" and d["data"][0]["id"] == "tiny"
    assert d["data"][0]["distilltrace"]["identity"] == tiny_model.info.identity
    assert client.get("/v1/models/tiny").status_code == 200
    assert client.get("/v1/models/other").status_code == 404


def test_chat_completion_matches_local_generation(client, tiny_model):
    r = chat(client, "hello there", max_tokens=12, temperature=0.8, seed=4)
    assert r.status_code == 200
    d = r.json()
    assert d["object"] == "chat.completion"
    assert d["choices"][0]["message"]["role"] == "assistant"
    local = tiny_model.generate(["hello there"], max_new_tokens=12, temperature=0.8, seed=4)[0]
    assert d["choices"][0]["message"]["content"] == local.text
    assert d["usage"]["completion_tokens"] == len(local.token_ids)
    assert "watermark" not in d


def test_chat_logprobs_are_the_model_log_probabilities(client, tiny_model):
    d = chat(client, "hi", max_tokens=5, temperature=0, logprobs=True, top_logprobs=3).json()
    content = d["choices"][0]["logprobs"]["content"]
    text = d["choices"][0]["message"]["content"]
    assert len(content) == d["usage"]["completion_tokens"] >= 1
    assert all(len(c["top_logprobs"]) == 3 for c in content)
    assert content[0]["token"] == content[0]["top_logprobs"][0]["token"]  # greedy
    sc = tiny_model.score(["hi"], [text], chat=True)[0]
    assert sum(c["logprob"] for c in content) == pytest.approx(sc.total_logprob, abs=1e-3)


def test_completions_batch_echo_and_logprobs(client, tiny_model):
    prompts = ["The cat", "Two plus"]
    d = client.post(
        "/v1/completions",
        json={"prompt": prompts, "max_tokens": 6, "temperature": 0.9, "seed": 1, "logprobs": 2},
    ).json()
    local = tiny_model.generate(prompts, max_new_tokens=6, temperature=0.9, seed=1, chat=False)
    assert [c["text"] for c in d["choices"]] == [g.text for g in local]
    assert all(len(t) == 2 for t in d["choices"][0]["logprobs"]["top_logprobs"])
    e = client.post(
        "/v1/completions",
        json={"prompt": "The cat sat", "max_tokens": 0, "echo": True, "logprobs": 0},
    ).json()
    lp = e["choices"][0]["logprobs"]
    assert e["choices"][0]["text"] == "The cat sat" and lp["token_logprobs"][0] is None
    sc = tiny_model.score(["The"], [" cat sat"], chat=False)[0]
    assert sum(lp["token_logprobs"][3:]) == pytest.approx(sc.total_logprob, abs=1e-3)


def test_stop_sequence_truncates(client):
    def complete(seed, **kw):
        body = {"prompt": "The cat", "max_tokens": 16, "temperature": 1.0, "seed": seed, **kw}
        return client.post("/v1/completions", json=body).json()["choices"][0]

    seed = next(s for s in range(50) if len(complete(s)["text"]) >= 6)
    text = complete(seed)["text"]
    stop = text[3:5]
    cut = complete(seed, stop=[stop])
    assert cut["text"] == text[: text.find(stop)]
    assert cut["finish_reason"] == "stop"


def _sse(r):
    events = [x[len("data: ") :] for x in r.text.split("\n\n") if x.startswith("data: ")]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


def test_streaming_gives_the_same_text(client):
    plain = chat(client, "hello", max_tokens=10, temperature=0.7, seed=9).json()
    r = chat(client, "hello", max_tokens=10, temperature=0.7, seed=9, stream=True)
    assert r.headers["content-type"].startswith("text/event-stream")
    chunks = _sse(r)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == plain["choices"][0]["message"]["content"]
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    r2 = client.post("/v1/completions", json={"prompt": "The", "max_tokens": 5, "stream": True})
    assert len(_sse(r2)) >= 2


BAD = [
    ("/v1/chat/completions", {"messages": []}, 422),
    ("/v1/chat/completions", {"messages": [{"role": "wizard", "content": "x"}]}, 422),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "n": 2}, 400),
    (
        "/v1/chat/completions",
        {"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]},
        404,
    ),
    (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "x"}], "temperature": 9},
        422,
    ),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "top_p": 0}, 422),
    (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "x"}], "max_tokens": -1},
        422,
    ),
    ("/v1/chat/completions", {"messages": [{"role": "assistant", "content": "x"}]}, 400),
    (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": "x"}], "stop": list("abcde")},
        400,
    ),
    (
        "/v1/chat/completions",
        {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
        400,
    ),
    ("/v1/completions", {"prompt": []}, 400),
    ("/v1/completions", {"prompt": 5}, 422),
    ("/v1/completions", {"prompt": "x", "logprobs": 99}, 422),
    ("/v1/completions", {"prompt": ["a", "b"], "stream": True}, 400),
    ("/v1/nothing", {}, 404),
]


@pytest.mark.parametrize("path,body,status", BAD)
def test_bad_requests_get_openai_style_errors(client, path, body, status):
    r = client.post(path, json=body)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["message"] and err["type"]


def test_malformed_json_is_422_not_500(client):
    r = client.post(
        "/v1/completions", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and "error" in r.json()


def test_api_keys(tiny_model):
    app = create_app(tiny_model, api_key_hashes=[hash_api_key("s3cret")])
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200
        r = c.get("/v1/models")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert c.get("/v1/models", headers={"Authorization": "Bearer nope"}).status_code == 401
        ok = c.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


class ForceTokenWatermark:
    """A real watermark-shaped object: its processor forces one token."""

    key_id = "test-key-1"

    def __init__(self, token_id):
        self.token_id = token_id

    def logits_processors(self, model):
        def force(input_ids, scores):
            out = torch.full_like(scores, float("-inf"))
            out[:, self.token_id] = 0.0
            return out

        return [force]


def test_watermark_processors_run_and_key_id_is_reported(tiny_model):
    z = tiny_model.tokenizer.convert_tokens_to_ids("Z")
    app = create_app(tiny_model, watermark=ForceTokenWatermark(z))
    with TestClient(app) as c:
        d = chat(c, "hi", max_tokens=4, temperature=0.7).json()
        assert d["choices"][0]["message"]["content"] == "ZZZZ"
        assert d["watermark"] == {"key_id": "test-key-1"}
        s = chat(c, "hi", max_tokens=2, stream=True)
        assert all(ch["watermark"]["key_id"] == "test-key-1" for ch in _sse(s))


def test_concurrent_requests_are_safe(client):
    expected = chat(client, "hello", max_tokens=8, temperature=0.7, seed=1).json()
    results, errors = [], []

    def worker():
        try:
            results.append(chat(client, "hello", max_tokens=8, temperature=0.7, seed=1).json())
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    texts = {r["choices"][0]["message"]["content"] for r in results}
    assert texts == {expected["choices"][0]["message"]["content"]}
