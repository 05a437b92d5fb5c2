"""Shared fixtures for marks tests: keys bound to the tiny byte tokenizer."""

from __future__ import annotations

import hashlib
import itertools

import pytest

from distilltrace.marks.keys import make_watermark
from distilltrace.marks.schemes import SchemeParams, TokenizerBinding, tokenizer_fingerprint
from distilltrace.marks.secret import Secret


@pytest.fixture(scope="session")
def byte_tok():
    from distilltrace.models.tiny import byte_tokenizer

    return byte_tokenizer()


@pytest.fixture(scope="session")
def byte_binding(byte_tok):
    return TokenizerBinding(fingerprint=tokenizer_fingerprint(byte_tok), spec=None, id="byte")


@pytest.fixture
def make_wm(byte_binding, request):
    """A new key on each call, derived from the test's id and a counter, so the keys are
    distinct within a test but the same on every run (no flaky power tests)."""
    counter = itertools.count()

    def _make(scheme="greenlist", **kw):
        seed = f"{request.node.nodeid}#{next(counter)}".encode()
        secret = Secret(hashlib.sha256(seed).digest())
        return make_watermark(SchemeParams(scheme=scheme, **kw), byte_binding, secret)

    return _make


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models run fastest single-threaded on a shared 2-core machine (restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
