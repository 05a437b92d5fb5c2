"""Shared fixtures for marks tests: keys bound to the tiny byte tokenizer."""

from __future__ import annotations

import pytest

from distilltrace.marks.keys import make_watermark
from distilltrace.marks.schemes import SchemeParams, TokenizerBinding, tokenizer_fingerprint


@pytest.fixture(scope="session")
def byte_tok():
    from distilltrace.models.tiny import byte_tokenizer

    return byte_tokenizer()


@pytest.fixture(scope="session")
def byte_binding(byte_tok):
    return TokenizerBinding(fingerprint=tokenizer_fingerprint(byte_tok), spec=None, id="byte")


@pytest.fixture
def make_wm(byte_binding):
    def _make(scheme="greenlist", **kw):
        return make_watermark(SchemeParams(scheme=scheme, **kw), byte_binding)

    return _make


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models run fastest single-threaded on a shared 2-core machine (restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
