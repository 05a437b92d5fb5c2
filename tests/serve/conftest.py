"""Fixtures: a tiny trained model and an in-process client of the serve app."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

TRAIN_TEXTS = [
    "The capital of France is Paris.",
    "The cat sat on the mat.",
    "Two plus two is four.",
]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from distilltrace.models.tiny import make_tiny_model

    return make_tiny_model(
        tmp_path_factory.mktemp("tiny") / "tiny", train_texts=TRAIN_TEXTS, train_steps=20, seed=2
    )


@pytest.fixture(scope="session")
def tiny_model(tiny_dir):
    from distilltrace.models import load_model

    return load_model(str(tiny_dir))


@pytest.fixture(scope="session")
def client(tiny_model):
    from fastapi.testclient import TestClient

    from distilltrace.serve.app import create_app

    with TestClient(create_app(tiny_model), raise_server_exceptions=False) as c:
        yield c


def small_model(max_positions: int, *, seed: int = 0):
    """An untrained in-memory Llama (byte tokenizer, ChatML template) with a given context."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from distilltrace.models.tiny import untrained_model

    return untrained_model(
        LlamaForCausalLM,
        LlamaConfig,
        seed=seed,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
    )


@pytest.fixture(scope="session")
def ctx256_model():
    return small_model(256)


@contextlib.contextmanager
def live_server(app):
    """Serve an ASGI app with a real uvicorn on a free 127.0.0.1 port (in a thread);
    yields the base URL and always stops the server."""
    import uvicorn

    from tests.serve_helpers import free_port

    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="session")
def live():
    """The live_server context manager (a real uvicorn in a thread)."""
    return live_server


@pytest.fixture(scope="session")
def make_small_model():
    """small_model(max_positions): an untrained in-memory model with that context length."""
    return small_model
