"""Fixtures: a tiny in-memory model, a gateway app factory and one account's key."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def gw_model():
    """An untrained in-memory Llama (byte tokenizer, ChatML template): fast to build."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from distilltrace.models.tiny import untrained_model

    return untrained_model(
        LlamaForCausalLM,
        LlamaConfig,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
    )


@pytest.fixture
def make_gateway(tmp_path, gw_model):
    """make_gateway(enforcer=None, routers=(), **config) -> (app, api key) on a fresh log."""
    from distilltrace.gateway.app import create_gateway_app
    from distilltrace.gateway.config import GatewayConfig

    def make(enforcer=None, routers=(), **kw):
        kw.setdefault("upstream", gw_model)
        cfg = GatewayConfig(log_dir=tmp_path / "log", **kw)
        app = create_gateway_app(cfg, enforcer=enforcer, routers=routers)
        key = app.state.accounts.add_account(
            "acct-1", org_id="org-1", signup_path="self_serve", payment_fingerprint="pf-1"
        )
        return app, key

    return make


def _segment_records(log_dir: Path) -> list[dict]:
    """Every record now in the log's segment files (what is durable so far)."""
    from distilltrace.gateway.evidence_log import decode_line

    out = []
    for seg in sorted((Path(log_dir) / "segments").glob("*.seg")):
        for line in seg.read_bytes().split(b"\n"):
            if line:
                out.append(decode_line(line))
    return out


def _sse_events(text: str) -> list:
    """The data payloads of an SSE body ('[DONE]' kept as a string)."""
    out = []
    for block in text.split("\n\n"):
        if block.startswith("data: "):
            data = block[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


@pytest.fixture(scope="session")
def segment_records():
    """segment_records(log_dir): the records now durable in the log's segment files."""
    return _segment_records


@pytest.fixture(scope="session")
def sse_events():
    """sse_events(text): the data payloads of an SSE body."""
    return _sse_events


@contextlib.contextmanager
def _live_server(app):
    """A real uvicorn serving ``app`` on a free 127.0.0.1 port in a thread; yields the base
    URL and always stops the server."""
    import uvicorn

    from tests.serve_helpers import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
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
def live_server():
    """live_server(app): a context manager running ``app`` on loopback."""
    return _live_server
