"""Schemes as logits processors in a tiny model's generate(), and detection of the result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as st

from distilltrace.marks.detect import MARKED, TupleScorer, detect_texts
from distilltrace.marks.keys import make_watermark
from distilltrace.marks.schemes import (
    GreenListProcessor,
    GumbelProcessor,
    SchemeParams,
    TokenizerBinding,
    TokenizerMismatchError,
)
from distilltrace.marks.secret import Secret

PROMPTS = [f"Write a note about topic {i}." for i in range(6)]


class PrintableAscii:
    """A real logits processor: only printable ASCII bytes (ids 5+32..5+126) and EOS stay
    allowed, so the byte model's text decodes and re-encodes to the same tokens."""

    def __call__(self, input_ids, scores):
        mask = torch.full_like(scores, float("-inf"))
        mask[:, 5 + 32 : 5 + 127] = 0.0
        return scores + mask


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from distilltrace.models import load_model
    from distilltrace.models.tiny import make_tiny_model

    return load_model(str(make_tiny_model(tmp_path_factory.mktemp("m") / "tiny", seed=3)))


def _wm(model, **kw):
    """A key with a fixed secret, so these power tests give the same result on every run."""
    return make_watermark(
        SchemeParams(**kw), TokenizerBinding.of_model(model), Secret(bytes(range(1, 33)))
    )


@pytest.mark.parametrize("scheme", ["greenlist", "gumbel", "tournament"])
def test_marked_generations_are_detected_and_unmarked_are_not(tiny, scheme):
    wm = _wm(tiny, scheme=scheme)
    procs = [PrintableAscii(), *wm.logits_processors(tiny)]
    marked = tiny.generate(PROMPTS, max_new_tokens=120, temperature=1.0, logits_processors=procs)
    plain = tiny.generate(
        PROMPTS, max_new_tokens=120, temperature=1.0, logits_processors=[PrintableAscii()]
    )
    rep = detect_texts(wm, [g.text for g in marked], tiny.tokenizer)
    assert all(t.test.verdict == MARKED and t.test.pvalue < 1e-6 for t in rep.texts)
    assert rep.n_flagged_holm == len(PROMPTS)
    # text round trip: detection on the generated token ids gives the same test
    sc = TupleScorer(wm)
    sc.add_sequence(list(marked[0].token_ids))
    assert sc.test().statistic == pytest.approx(rep.texts[0].test.statistic)
    rep0 = detect_texts(wm, [g.text for g in plain], tiny.tokenizer)
    assert rep0.pooled.pvalue > 1e-3 and rep0.n_flagged_holm == 0


def test_greenlist_processor_adds_delta_to_green_tokens(tiny):
    wm = _wm(tiny, scheme="greenlist", delta=3.0, context_width=2)
    proc = GreenListProcessor(wm)
    ids = torch.tensor([[10, 11, 12], [7, 8, 9]])
    scores = torch.randn(2, 261)
    out = proc(ids, scores.clone())
    for row, w in enumerate(([11, 12], [8, 9])):
        green = torch.from_numpy(wm.green_mask(wm.window_seed(w), 261))
        assert torch.allclose(out[row][green], scores[row][green] + 3.0)
        assert torch.equal(out[row][~green], scores[row][~green])


def test_gumbel_is_distortion_free_over_keys(byte_binding):
    """Over random keys/windows the Gumbel-max pick follows the model distribution p."""
    p = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05, 0.0])
    scores = torch.log(p).unsqueeze(0).repeat(3000, 1)
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(rng.integers(0, 10**6, (3000, 2)))
    wm = make_watermark(SchemeParams(scheme="gumbel"), byte_binding, Secret(bytes(32)))
    out = GumbelProcessor(wm)(ids, scores)
    chosen = torch.argmax(out, dim=-1).numpy()
    assert np.all(np.isfinite(out.numpy()).sum(axis=1) == 1)  # exactly one token left
    counts = np.bincount(chosen, minlength=6)
    assert counts[5] == 0  # a zero-probability token is never picked
    assert st.chisquare(counts[:5], 3000 * p[:5].numpy()).pvalue > 1e-3


def test_processors_refuse_a_model_with_another_tokenizer(tiny):
    from distilltrace.models.local import TransformersModel
    from distilltrace.models.tiny import byte_tokenizer

    wm = _wm(tiny)
    tok = byte_tokenizer()
    tok.add_tokens(["<other>"])
    other = TransformersModel.from_objects(tiny.hf_model, tok, name="other")
    with pytest.raises(TokenizerMismatchError, match="other"):
        wm.logits_processors(other)
    assert "key_id" in repr(wm.logits_processors(tiny)[0])
