"""The on-disk query cache: hits, resume after interruption, keys."""

from __future__ import annotations

import pytest

from distilltrace.models import load_model
from distilltrace.models.cache import CachedModel, QueryCache

PROMPTS = [f"prompt number {i}" for i in range(10)]


class Interrupting:
    """Wraps a real model; raises KeyboardInterrupt on the call after `after` calls."""

    def __init__(self, model, after):
        self.model, self.after, self.calls = model, after, 0
        self.info = model.info

    def generate(self, *args, **kwargs):
        self.calls += 1
        if self.calls > self.after:
            raise KeyboardInterrupt
        return self.model.generate(*args, **kwargs)


def test_repeat_is_served_from_the_cache(tiny_model, tmp_path):
    path = tmp_path / "q.sqlite"
    first = CachedModel(tiny_model, path)
    a = first.generate(PROMPTS, max_new_tokens=6, temperature=0.7, seed=1)
    assert first.stats.misses == len(PROMPTS) and first.stats.hits == 0
    again = CachedModel(tiny_model, path)  # a new process would see the same file
    b = again.generate(PROMPTS, max_new_tokens=6, temperature=0.7, seed=1)
    assert a == b
    assert again.stats.hits == len(PROMPTS) and again.stats.misses == 0
    c = again.generate(PROMPTS[:2], max_new_tokens=6, temperature=0.7, seed=2)  # new params
    assert again.stats.misses == 2 and len(c) == 2
    lp = again.next_token_logprobs(PROMPTS[:3], top_k=3)
    assert again.next_token_logprobs(PROMPTS[:3], top_k=3) == lp
    sc = again.score(PROMPTS[:2], [" a", " b"])
    assert again.score(PROMPTS[:2], [" a", " b"]) == sc
    assert QueryCache(path).count(tiny_model.info.identity) == 10 + 2 + 3 + 2


def test_interrupted_run_resumes_without_recomputing(tiny_model, tmp_path):
    path = tmp_path / "q.sqlite"
    broken = CachedModel(Interrupting(tiny_model, after=2), path, chunk_size=3)
    with pytest.raises(KeyboardInterrupt):
        broken.generate(PROMPTS, max_new_tokens=5)
    assert QueryCache(path).count() == 6  # two chunks of three were committed
    resumed = CachedModel(tiny_model, path, chunk_size=3)
    out = resumed.generate(PROMPTS, max_new_tokens=5)
    assert resumed.stats.hits == 6 and resumed.stats.misses == 4
    assert out == tiny_model.generate(PROMPTS, max_new_tokens=5)


def test_chunk_follows_the_model_batch(tiny_model, tmp_path, monkeypatch):
    """Misses are computed a model batch at a time, so the cache never narrows it."""
    assert CachedModel(tiny_model, tmp_path / "a.sqlite").chunk_size == tiny_model.batch_size
    monkeypatch.setattr(tiny_model, "batch_size", 128)
    assert CachedModel(tiny_model, tmp_path / "b.sqlite").chunk_size == 128


def test_uncacheable_processors_bypass_the_cache(cached_model):
    def identity(input_ids, scores):
        return scores

    cached_model.generate(["x"], max_new_tokens=2, logits_processors=[identity])
    assert cached_model.stats.uncacheable == 1 and cached_model.stats.misses == 0


def test_watermark_processors_are_cached_by_key_id_never_the_secret(tiny_model, tmp_path):
    """A marked generation is cached under its processor's key id and scheme: the same key
    again is a hit with the same answers, another key a miss; the secret is neither in the
    processor's cache key nor in the cache file."""
    from distilltrace.marks.keys import make_watermark
    from distilltrace.marks.schemes import SchemeParams, TokenizerBinding
    from distilltrace.marks.secret import Secret

    path = tmp_path / "q.sqlite"
    m = CachedModel(tiny_model, path)
    keys = [
        make_watermark(
            SchemeParams(), TokenizerBinding.of_model(tiny_model), Secret(bytes([i]) * 32)
        )
        for i in (1, 2)
    ]
    kw = dict(max_new_tokens=6, temperature=0.8, seed=3)
    a = m.generate(PROMPTS[:4], logits_processors=keys[0].logits_processors(tiny_model), **kw)
    b = m.generate(PROMPTS[:4], logits_processors=keys[0].logits_processors(tiny_model), **kw)
    assert a == b and m.stats.hits == 4 and m.stats.uncacheable == 0
    m.generate(PROMPTS[:4], logits_processors=keys[1].logits_processors(tiny_model), **kw)
    assert m.stats.misses == 8
    raw = path.read_bytes()
    secret = bytes([1]) * 32
    assert secret not in raw and secret.hex().encode() not in raw
    proc = keys[0].logits_processors(tiny_model)[0]
    assert keys[0].key_id in proc.cache_key and secret.hex() not in proc.cache_key


def test_load_model_with_cache_and_passthrough(tiny_dir, tmp_path):
    m = load_model(str(tiny_dir), cache=tmp_path / "c.sqlite")
    assert isinstance(m, CachedModel)
    assert m.tokenizer is m.model.tokenizer and m.hf_model is m.model.hf_model
    m.generate(["hello"], max_new_tokens=3)
    m.generate(["hello"], max_new_tokens=3)
    assert m.stats.to_dict() == {"hits": 1, "misses": 1, "uncacheable": 0}


def test_duplicate_prompts_are_computed_once(cached_model):
    out = cached_model.generate(["same", "same", "other"], max_new_tokens=4)
    assert out[0] == out[1]
    assert cached_model.stats.misses == 2


def test_generation_from_token_ids_is_cached_by_label_ids_and_settings(tiny_model, tmp_path):
    """generate_encoded (a conversation encoded by the caller, e.g. after a system prompt)
    is cached per label, token ids and settings: a repeat is all hits and equal to the
    model's own answers; the same label over other ids is computed again; per-token
    log-probabilities go straight to the model."""
    convs = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": p}]
             for p in PROMPTS[:4]]  # fmt: skip
    enc = [tiny_model.encode_messages(c) for c in convs]
    labels = [str(c) for c in convs]
    kw = dict(max_new_tokens=6, temperature=0.8, seed=3)
    want = tiny_model.generate_encoded(labels, enc, **kw)
    path = tmp_path / "q.sqlite"
    first = CachedModel(tiny_model, path)
    assert first.generate_encoded(labels, enc, **kw) == want
    assert first.stats.misses == 4 and first.stats.hits == 0
    again = CachedModel(tiny_model, path)
    assert again.generate_encoded(labels, enc, **kw) == want
    assert again.stats.hits == 4 and again.stats.misses == 0
    other = [tiny_model.encode_prompt(p) for p in PROMPTS[:4]]  # same labels, no system turn
    assert again.generate_encoded(labels, other, **kw) == tiny_model.generate_encoded(
        labels, other, **kw
    )
    assert again.stats.misses == 4
    steps = again.generate_encoded(labels[:1], enc[:1], top_logprobs=2, **kw)
    assert steps[0][1] and again.stats.uncacheable == 1


def test_generation_from_token_ids_needs_a_local_model(tiny_model, tmp_path):
    class Remote:  # a backend without token-level generation (as over HTTP)
        info = tiny_model.info

    with pytest.raises(AttributeError, match="not a local model"):
        CachedModel(Remote(), tmp_path / "q.sqlite").generate_encoded(["x"], [[1, 2]])
