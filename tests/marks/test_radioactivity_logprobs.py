"""Logprobs-mode radioactivity (`marks.radioactivity_logprobs`) on synthetic suspects.

H0: the suspect's weights are independent of the key, so its answers and top-k
log-probabilities are too. A synthetic suspect writes random-walk answers over printable
bytes; its logits lean towards the key's high-scoring tokens by `tilt` (0: H0).
"""

from __future__ import annotations

import numpy as np
import pytest

from distilltrace.errors import CapabilityError, InputError
from distilltrace.marks.radioactivity_logprobs import (
    StepReading,
    radioactivity_logprobs,
    read_steps,
    reference_candidates,
    score_logprobs,
)
from distilltrace.models.base import Generation, ModelInfo, TokenLogprob, TokenStep
from distilltrace.stats import binomial_slack, calibration

PRINTABLE = np.arange(37, 132)  # byte-tokenizer ids of ASCII 32..126


class Suspect:
    """Answers each prompt with a seeded random walk; the top-k log-probabilities come
    from logits N(0, 1) + tilt * (the key's centred score of each candidate)."""

    def __init__(self, tok, wm=None, tilt=0.0, with_ids=True, steps=60, seed=0):
        self.tok, self.wm, self.tilt, self.with_ids = tok, wm, tilt, with_ids
        self.steps, self.seed = steps, seed
        self.info = ModelInfo(
            name="synthetic",
            backend="test",
            spec="synthetic",
            tokenizer_id="byte",
            vocab_size=261,
            identity="synthetic",
        )

    def generate_steps(self, prompts, *, top_k, max_new_tokens, seed, chat, on_batch=None):
        out = []
        for n, p in enumerate(prompts):
            rng = np.random.default_rng([self.seed, n])
            ids = rng.choice(PRINTABLE, 2).tolist()
            steps = []
            for _ in range(min(self.steps, max_new_tokens)):
                logits = rng.normal(0, 1, len(PRINTABLE))
                if self.tilt:
                    seed_ = self.wm.window_seed(ids[-self.wm.context_width :])
                    sc = self.wm.tuple_scores(np.full(len(PRINTABLE), seed_, np.uint64), PRINTABLE)
                    logits = logits + self.tilt * (sc - self.wm.impl.tuple_mean())
                lp = logits - np.logaddexp.reduce(logits)
                order = np.argsort(-lp)[:top_k]
                top = tuple(self._tok(PRINTABLE[j], lp[j]) for j in order)
                steps.append(TokenStep(chosen=top[0], top=top))
                ids.append(int(PRINTABLE[order[0]]))
            text = self.tok.decode(ids[2:])
            out.append((Generation(prompt=p, text=text), steps))
        return out

    def _tok(self, i, lp):
        return TokenLogprob(self.tok.decode([int(i)]), float(lp), int(i) if self.with_ids else None)


PROMPTS = [f"question {i}?" for i in range(40)]


def test_null_is_calibrated_over_keys(make_wm, byte_tok):
    """One H0 suspect's reading, 400 fresh keys: FPR <= alpha (+ slack) at 0.01, 0.05, 0.1."""
    wm0 = make_wm("tournament")
    reading = read_steps(wm0, Suspect(byte_tok), PROMPTS, byte_tok, top_k=8, max_new_tokens=60)
    ps = [score_logprobs(make_wm("tournament"), reading, byte_tok).pvalue for _ in range(400)]
    alphas = (0.01, 0.05, 0.1)
    cal = calibration(ps, alphas)
    slack = max(binomial_slack(len(ps), a) for a in alphas)
    assert all(np.mean(np.array(ps) <= a) <= a + slack for a in alphas), cal
    assert np.mean(np.array(ps) <= 0.5) > 0.1  # conservative, not degenerate


def test_a_suspect_leaning_towards_the_key_is_found(make_wm, byte_tok):
    """A lean too small to move the greedy choice much (tilt 0.03 per unit of a 30-bit
    score) is found from 40 answers; under another key it is not."""
    wm = make_wm("tournament")
    res = radioactivity_logprobs(wm, Suspect(byte_tok, wm, tilt=0.03), PROMPTS, byte_tok,
                                 top_k=20, max_new_tokens=60)  # fmt: skip
    assert res.test.pvalue < 1e-6 and res.test.verdict == "marked", res.test
    other = make_wm("tournament")
    reading = read_steps(other, Suspect(byte_tok, wm, tilt=0.03), PROMPTS, byte_tok, top_k=20)
    assert score_logprobs(other, reading, byte_tok).pvalue > 1e-3


def test_pieces_map_onto_the_key_tokens_when_an_endpoint_gives_no_ids(make_wm, byte_tok):
    wm = make_wm("tournament")
    a = read_steps(wm, Suspect(byte_tok, with_ids=True), PROMPTS[:5], byte_tok, top_k=5)
    b = read_steps(wm, Suspect(byte_tok, with_ids=False), PROMPTS[:5], byte_tok, top_k=5)
    assert a.chosen == b.chosen and all(
        (x == y).all() for x, y in zip(a.top_ids, b.top_ids, strict=True)
    )
    assert a.n_steps == 5 * 60


def test_foreign_tokens_and_missing_capabilities_are_refused(make_wm, byte_tok):
    wm = make_wm("tournament")

    class Foreign(Suspect):  # its ids are another vocabulary's: they decode to other text
        def generate_steps(self, prompts, **kw):
            return [(Generation(prompt=g.prompt, text="zz" + g.text), s)
                    for g, s in super().generate_steps(prompts, **kw)]  # fmt: skip

    with pytest.raises(CapabilityError, match="not the key's"):
        read_steps(wm, Foreign(byte_tok), PROMPTS[:4], byte_tok, top_k=3)

    class TextOnly:
        info = ModelInfo(
            name="text-only",
            backend="test",
            spec="x",
            tokenizer_id="byte",
            vocab_size=261,
            identity="x",
        )

        def generate(self, prompts, **kw):
            return [Generation(prompt=p, text="a") for p in prompts]

    with pytest.raises(CapabilityError, match="use --mode closed"):
        read_steps(wm, TextOnly(), PROMPTS[:2], byte_tok)
    with pytest.raises(InputError, match="top_k"):
        read_steps(wm, Suspect(byte_tok), PROMPTS[:2], byte_tok, top_k=0)
    with pytest.raises(InputError, match="at least one prompt"):
        read_steps(wm, Suspect(byte_tok), [], byte_tok)


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    from distilltrace.models import load_model
    from distilltrace.models.tiny import make_tiny_model

    return load_model(str(make_tiny_model(tmp_path_factory.mktemp("lp") / "ours", seed=31)))


def test_reference_candidates_are_our_probabilities_counted_once(make_wm, byte_tok, ours):
    import torch

    wm = make_wm("tournament")
    reading = read_steps(wm, Suspect(byte_tok, steps=12), PROMPTS[:3], byte_tok, top_k=4)
    cands, probs = reference_candidates(ours, reading, batch_size=2)
    for i, (c, p) in enumerate(zip(cands, probs, strict=True)):
        ctx = ours.encode_prompt(reading.prompts[i], True)
        ids = list(reading.chosen[i])
        with torch.inference_mode():
            lg = ours.hf_model(input_ids=torch.tensor([ctx + ids])).logits[0].float()
        full = torch.softmax(lg[len(ctx) - 1 : len(ctx) - 1 + len(ids)], -1).numpy()
        assert c.shape == p.shape == (12, 8)
        assert (c[:, :4] == reading.top_ids[i]).all()
        np.testing.assert_allclose(p[:, :4], np.take_along_axis(full, c[:, :4], 1), atol=1e-5)
        for j in range(12):  # our top-4: counted in the second half only if not in the first
            for m in range(4, 8):
                want = 0.0 if c[j, m] in c[j, :4] else full[j, c[j, m]]
                assert p[j, m] == pytest.approx(want, abs=1e-5)


def test_null_is_calibrated_with_our_models_weights(make_wm, byte_tok, ours):
    """q - p weights, p from our (tiny) model: still key-independent, FPR <= alpha."""
    reading = read_steps(make_wm("tournament"), Suspect(byte_tok, seed=7), PROMPTS, byte_tok,
                         top_k=6)  # fmt: skip
    ref = reference_candidates(ours, reading)
    ps = [score_logprobs(make_wm("tournament"), reading, byte_tok, reference_probs=ref).pvalue
          for _ in range(300)]  # fmt: skip
    for a in (0.01, 0.05, 0.1):
        assert np.mean(np.array(ps) <= a) <= a + binomial_slack(len(ps), a)


def test_prompt_windows_are_left_out_unless_asked(make_wm, byte_tok):
    wm = make_wm("tournament", context_width=1)
    reading = read_steps(wm, Suspect(byte_tok, steps=30), ["abcdefghijklmnopqrstuvwxyz"] * 3,
                         byte_tok, top_k=3)  # fmt: skip
    t = score_logprobs(wm, reading, byte_tok)
    kept = score_logprobs(wm, reading, byte_tok, exclude_prompt_windows=False)
    assert t.n_excluded > 0 and kept.n_excluded == 0 and kept.n_scored > t.n_scored
    assert t.n_tokens == kept.n_tokens == 3 * 29


def test_a_reading_is_plain_data():
    r = StepReading(("p",), ("t",), ((1, 2),), (np.zeros((2, 1), np.int64),),
                    (np.zeros((2, 1)),), 1)  # fmt: skip
    assert r.n_steps == 2
