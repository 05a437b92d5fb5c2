"""The same contract tests for every backend (local folder, cached wrapper, HTTP via serve)."""

from __future__ import annotations

import math

import pytest

from distilltrace.errors import InputError
from distilltrace.models import Generation, Model, NextTokenLogprobs, ScoredContinuation

PROMPTS = ["What is the capital of France?", "hi", "The cat sat on"]


def test_info_describes_the_model(backend):
    info = backend.info
    assert isinstance(backend, Model)
    assert info.name and info.spec and info.backend and info.identity
    assert {"generate", "chat", "logprobs", "score"} <= set(info.supports)
    assert info.vocab_size == 261
    assert info.to_dict()["supports"] == sorted(info.supports)


@pytest.mark.parametrize("chat", [True, False])
def test_generate_one_result_per_prompt_in_order_and_deterministic(backend, chat):
    a = backend.generate(PROMPTS, max_new_tokens=8, temperature=0.8, seed=7, chat=chat)
    b = backend.generate(PROMPTS, max_new_tokens=8, temperature=0.8, seed=7, chat=chat)
    assert [g.prompt for g in a] == PROMPTS
    assert all(isinstance(g, Generation) for g in a)
    assert [g.text for g in a] == [g.text for g in b]
    assert all(g.finish_reason in ("stop", "length") for g in a)
    single = backend.generate(PROMPTS[2:], max_new_tokens=8, temperature=0.8, seed=7, chat=chat)
    assert single[0].text == a[2].text


def test_greedy_ignores_seed(backend):
    a = backend.generate(PROMPTS[:1], max_new_tokens=8, temperature=0.0, seed=1)
    b = backend.generate(PROMPTS[:1], max_new_tokens=8, temperature=0.0, seed=2)
    assert a[0].text == b[0].text


def test_max_new_tokens_zero_gives_empty_text(backend):
    assert backend.generate(["x"], max_new_tokens=0)[0].text == ""


@pytest.mark.parametrize("chat", [True, False])
def test_next_token_logprobs_are_sorted_log_probabilities(backend, chat):
    res = backend.next_token_logprobs(PROMPTS, top_k=5, chat=chat)
    assert len(res) == len(PROMPTS)
    for r, p in zip(res, PROMPTS, strict=True):
        assert isinstance(r, NextTokenLogprobs) and r.prompt == p
        lps = [t.logprob for t in r.top]
        assert len(lps) == 5
        assert lps == sorted(lps, reverse=True)
        assert all(lp <= 0 for lp in lps)
        assert sum(math.exp(lp) for lp in lps) <= 1 + 1e-6


@pytest.mark.parametrize("chat", [True, False])
def test_score_gives_per_token_logprobs(backend, chat):
    res = backend.score(["The cat", "hi"], [" sat on the mat", ""], chat=chat)
    assert isinstance(res[0], ScoredContinuation)
    assert res[0].n_tokens == len(" sat on the mat")  # byte-level tokenizer
    assert all(t.logprob <= 0 for t in res[0].tokens)
    assert res[0].total_logprob < 0
    assert res[1].n_tokens == 0 and res[1].total_logprob == 0


def test_score_needs_one_continuation_per_prompt(backend):
    with pytest.raises(InputError):
        backend.score(["a", "b"], ["c"])


def test_bad_sampling_parameters(backend):
    with pytest.raises(InputError):
        backend.generate(["x"], temperature=-0.5)


@pytest.mark.parametrize("chat", [True, False])
def test_same_numbers_as_the_local_model(backend, tiny_model, chat):
    """Logprobs consistency: every backend reports the local model's numbers."""
    a = backend.next_token_logprobs(PROMPTS, top_k=4, chat=chat)
    b = tiny_model.next_token_logprobs(PROMPTS, top_k=4, chat=chat)
    for x, y in zip(a, b, strict=True):
        assert [t.token for t in x.top] == [t.token for t in y.top]
        assert [t.logprob for t in x.top] == pytest.approx([t.logprob for t in y.top], abs=1e-4)
    s1 = backend.score(["The cat"], [" sat"], chat=chat)[0]
    s2 = tiny_model.score(["The cat"], [" sat"], chat=chat)[0]
    assert s1.total_logprob == pytest.approx(s2.total_logprob, abs=1e-4)
    g1 = backend.generate(PROMPTS, max_new_tokens=10, temperature=0.9, seed=3, chat=chat)
    g2 = tiny_model.generate(PROMPTS, max_new_tokens=10, temperature=0.9, seed=3, chat=chat)
    assert [g.text for g in g1] == [g.text for g in g2]
