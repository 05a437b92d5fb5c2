"""The local transformers backend and the tiny-model factory."""

from __future__ import annotations

import pytest
import torch

from distilltrace.errors import InputError
from distilltrace.models import Model, TransformersModel, load_model
from distilltrace.models.tiny import byte_tokenizer, make_tiny_model

PROMPTS = ["What is the capital of France?", "hi", "Tell me about cats and dogs, please."]


def test_tiny_folder_loads_as_transformers_model(tiny_dir, tiny_model):
    assert (tiny_dir / "config.json").is_file()
    assert list(tiny_dir.glob("*.safetensors"))
    assert isinstance(tiny_model, TransformersModel)
    assert isinstance(tiny_model, Model)
    assert tiny_model.info.vocab_size == len(tiny_model.tokenizer) == 261
    assert tiny_model.device.type == "cpu"
    assert "chat" in tiny_model.info.supports


def test_byte_tokenizer_round_trips_and_has_chat_template():
    tok = byte_tokenizer()
    text = "héllo wörld ✓"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n"


def test_same_seed_same_folder(tmp_path):
    a = make_tiny_model(tmp_path / "a", seed=3)
    b = make_tiny_model(tmp_path / "b", seed=3)
    c = make_tiny_model(tmp_path / "c", seed=4)
    ma, mb, mc = (load_model(str(p)) for p in (a, b, c))
    assert ma.info.identity == mb.info.identity != mc.info.identity


def test_batch_does_not_change_outputs(tiny_model):
    for temp in (0.0, 0.9):
        batched = tiny_model.generate(PROMPTS, max_new_tokens=12, temperature=temp, seed=5)
        single = [
            tiny_model.generate([p], max_new_tokens=12, temperature=temp, seed=5)[0]
            for p in PROMPTS
        ]
        assert batched == single


def test_generation_batches_respect_the_row_and_token_caps(tiny_model, monkeypatch):
    """Rows sorted by prompt length go in consecutive batches of at most batch_size rows
    and max_batch_tokens padded tokens; a row over the token cap gets a batch of its own;
    and the split does not change outputs (float32)."""
    monkeypatch.setattr(tiny_model, "batch_size", 3)
    monkeypatch.setattr(tiny_model, "max_batch_tokens", 100)
    got = tiny_model._gen_batches([5, 5, 10, 20, 30, 200, 200], 10, 3)
    # rows 0-2: 3 x (10 + 10) = 60 (a 4th row is over batch_size); rows 3-4: 2 x (30 + 10)
    # = 80; rows 5 and 6 are 210 wide each, over the cap alone
    assert [list(r) for r in got] == [[0, 1, 2], [3, 4], [5], [6]]
    assert tiny_model._gen_batches([], 10, 3) == []
    assert [list(r) for r in tiny_model._gen_batches([1] * 7, 0, 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    wide = tiny_model.generate(PROMPTS, max_new_tokens=12)
    monkeypatch.setattr(tiny_model, "max_batch_tokens", 1)  # one row per batch
    assert tiny_model.generate(PROMPTS, max_new_tokens=12) == wide


def test_seed_changes_sampled_output(tiny_model):
    outs = {
        tiny_model.generate(PROMPTS[:1], max_new_tokens=16, temperature=1.0, seed=s)[0].text
        for s in range(4)
    }
    assert len(outs) > 1


def test_greedy_generation_agrees_with_score_and_logprobs(tiny_model):
    g = tiny_model.generate(["The cat"], max_new_tokens=6, chat=False)[0]
    top = tiny_model.next_token_logprobs(["The cat"], top_k=3, chat=False)[0]
    assert g.token_ids[0] == top.top[0].id
    sc = tiny_model.score(["The cat"], [g.text], chat=False)[0]
    assert [t.id for t in sc.tokens] == list(g.token_ids)
    assert sc.tokens[0].logprob == pytest.approx(top.top[0].logprob, abs=1e-4)


def test_batched_score_equals_full_log_softmax_per_row(tiny_model):
    """score keeps only the continuation positions' logits; the values must equal a full
    log-softmax computed one row at a time (no padding), including empty continuations."""
    conts = ["General Kenobi!", "", "Once upon a time, two plus two."]
    tiny_model.score_batch_size = 3
    got = tiny_model.score(PROMPTS, conts)
    for p, c, sc in zip(PROMPTS, conts, got, strict=True):
        p_ids = tiny_model.encode_prompt(p, True)
        c_ids = tiny_model.encode_continuation(c)
        lp, width = tiny_model._forward_logprobs([p_ids + c_ids])
        start = width - len(c_ids)
        want = [float(lp[0, start + j - 1, t]) for j, t in enumerate(c_ids)]
        assert [t.id for t in sc.tokens] == c_ids
        assert [t.logprob for t in sc.tokens] == pytest.approx(want, abs=1e-4)


def test_score_runs_a_prefix_every_prompt_shares_once(tiny_model, monkeypatch):
    """Prompts that open alike (a system prompt, the template's head) have that prefix run
    once per score call; each batch reuses a copy of its cache and runs only the rest. The
    log-probabilities equal those computed without it, with empty continuations too."""
    head = "You are a careful assistant. Answer in one line. "
    prompts = [head + q for q in ("Why?", "What is two plus two?", "Name a cat.", "Hi")]
    conts = ["Because.", "Four, I think.", "", "Hello there, friend."]
    monkeypatch.setattr(tiny_model, "score_batch_size", 2)
    monkeypatch.setattr(tiny_model, "shared_prefix_min", 0)
    plain = tiny_model.score(prompts, conts, chat=False)
    widths: list[tuple[int, int]] = []
    hook = tiny_model.hf_model.register_forward_pre_hook(
        lambda mod, args, kw: widths.append(tuple(kw["input_ids"].shape)), with_kwargs=True
    )
    try:
        monkeypatch.setattr(tiny_model, "shared_prefix_min", 8)
        shared = tiny_model.score(prompts, conts, chat=False)
    finally:
        hook.remove()
    n = len(tiny_model.encode_prompt(head, chat=False))  # BOS + the head's bytes
    assert widths[0] == (1, n)  # the shared prefix, once
    enc = [tiny_model.encode_prompt(p, chat=False) for p in prompts]
    longest = max(len(e) + len(c) for e, c in zip(enc, conts, strict=True))
    assert len(widths) == 3 and all(r == 2 and w <= longest - n for r, w in widths[1:])
    for a, b in zip(plain, shared, strict=True):
        assert [t.id for t in a.tokens] == [t.id for t in b.tokens]
        assert [t.logprob for t in b.tokens] == pytest.approx(
            [t.logprob for t in a.tokens], abs=1e-4
        )


def test_shared_prefix_only_where_it_is_long_enough_and_safe(tiny_model, monkeypatch):
    """No shared run for a prefix under shared_prefix_min, for one prompt, or for a model
    whose sliding attention window is narrower than the longest row; a prompt that is all
    prefix keeps its last token (whose logits predict the continuation)."""
    enc = [tiny_model.encode_prompt(p, chat=False) for p in ("abcdefgh", "abcdefghij")]
    monkeypatch.setattr(tiny_model, "shared_prefix_min", 4)
    got = tiny_model._shared_prefix(enc, 20)
    assert got is not None and got.length == len(enc[0]) - 1
    assert got.expanded(3).get_seq_length() == got.length
    assert tiny_model._shared_prefix(enc[:1], 20) is None
    monkeypatch.setattr(tiny_model, "shared_prefix_min", 20)
    assert tiny_model._shared_prefix(enc, 20) is None
    monkeypatch.setattr(tiny_model, "shared_prefix_min", 4)
    monkeypatch.setattr(tiny_model.hf_model.config, "sliding_window", 16, raising=False)
    assert tiny_model._shared_prefix(enc, 20) is None
    assert tiny_model._shared_prefix(enc, 16) is not None


def test_forcing_processor_decides_the_token(tiny_model):
    target = tiny_model.tokenizer.convert_tokens_to_ids("Z")

    def force(input_ids, scores):
        out = torch.full_like(scores, float("-inf"))
        out[:, target] = 0.0
        return out

    for temp in (0.0, 0.7):
        g = tiny_model.generate(
            ["hi"], max_new_tokens=5, temperature=temp, logits_processors=[force]
        )
        assert g[0].text == "ZZZZZ"


def test_bad_parameters_raise_input_error(tiny_model):
    with pytest.raises(InputError):
        tiny_model.generate(["x"], temperature=-1)
    with pytest.raises(InputError):
        tiny_model.generate(["x"], top_p=0)
    with pytest.raises(InputError):
        tiny_model.score(["a", "b"], ["c"])
    with pytest.raises(InputError):
        tiny_model.next_token_logprobs(["a"], top_k=0)


def test_from_objects_matches_folder(tiny_model):
    m = TransformersModel.from_objects(tiny_model.hf_model, tiny_model.tokenizer, name="mem")
    a = m.next_token_logprobs(["hello"], top_k=4)[0]
    b = tiny_model.next_token_logprobs(["hello"], top_k=4)[0]
    assert [t.id for t in a.top] == [t.id for t in b.top]
    assert m.info.name == "mem" and len(m.info.identity) == 64
