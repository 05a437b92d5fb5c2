"""Closed-mode radioactivity scored only where our own model was unsure.

H0 (the suspect was not trained on text marked with the key) stays exact when the scored
positions are chosen by something that does not depend on the key: here, our model's
probability of the suspect's token after the suspect's own context.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distilltrace.errors import InputError
from distilltrace.marks.detect import TupleScorer, encode_text
from distilltrace.marks.radioactivity import (
    DEFAULT_MAX_REFERENCE_PROB,
    radioactivity_closed,
    reference_token_probs,
    score_closed,
)
from distilltrace.stats import binomial_slack, calibration

V = 200


@pytest.mark.parametrize("scheme", ["tournament", "greenlist"])
def test_a_key_independent_selection_keeps_the_null_exact(make_wm, scheme):
    """400 fresh keys, each scoring a key-independent stream at positions picked by a
    key-independent 'our model was unsure' rule: FPR <= alpha, and (for the tournament)
    uniform p-values."""
    rng = np.random.default_rng(11)
    ps = []
    for _ in range(400):
        wm = make_wm(scheme)
        ids = rng.integers(0, V, 160).tolist()
        probs = rng.random(len(ids))  # stands in for our model's probability of each token
        sc = TupleScorer(wm)
        sc.add_sequence(ids, select=(probs <= DEFAULT_MAX_REFERENCE_PROB).tolist())
        t = sc.test(min_scored=1)
        assert 0 < sc.n_unselected < len(ids)
        ps.append(t.pvalue)
    alphas = (0.01, 0.05, 0.1)
    slack = max(binomial_slack(len(ps), a) for a in alphas)
    cal = calibration(ps, alphas)
    assert all(np.mean(np.array(ps) <= a) <= a + slack for a in alphas), cal
    if scheme == "tournament":  # 30 bits a tuple: close to continuous
        assert cal.ok(ks_level=0.001, slack=slack), cal


def test_selection_counts_and_alignment(make_wm):
    wm = make_wm("greenlist", context_width=1)
    ids = list(range(1, 41))
    sc = TupleScorer(wm)
    sc.add_sequence(ids, select=[i % 2 == 0 for i in range(len(ids))])
    t = sc.test(min_scored=1)
    # positions 1..39 are considered (position 0 is the first window); the odd ones go
    assert (t.n_tokens, t.n_unselected, t.n_scored) == (39, 20, 19)
    with pytest.raises(ValueError, match="align"):
        sc.add_sequence(ids, select=[True])


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from distilltrace.models import load_model
    from distilltrace.models.tiny import make_tiny_model

    d = tmp_path_factory.mktemp("refsel")
    return (
        load_model(str(make_tiny_model(d / "ours", seed=21))),
        load_model(str(make_tiny_model(d / "suspect", seed=22))),
    )


def test_reference_token_probs_match_one_sequence_at_a_time(models):
    ours, suspect = models
    prompts = ["Explain tides.", "A haiku about rain", "2+2?"]
    outs = ["The moon pulls water.", "drops fall, soft and slow", ""]
    got = reference_token_probs(ours, prompts, outs, ours.tokenizer, batch_size=2)
    for p, o, probs in zip(prompts, outs, got, strict=True):
        ctx = ours.encode_prompt(p, True)
        ids = encode_text(ours.tokenizer, o)
        assert len(probs) == len(ids)
        if not ids:
            continue
        with torch.inference_mode():
            lg = ours.hf_model(input_ids=torch.tensor([ctx + ids])).logits[0].float()
        want = torch.softmax(lg[len(ctx) - 1 : len(ctx) - 1 + len(ids)], -1)
        want = want[torch.arange(len(ids)), torch.tensor(ids)]
        assert np.allclose(probs, want.numpy(), atol=1e-5)
        assert all(0.0 < x <= 1.0 for x in probs)


def test_closed_mode_with_our_model_scores_only_unsure_tokens(models, make_wm):
    ours, suspect = models
    wm = make_wm("tournament")
    prompts = ["Tell me about rivers.", "What is a prime?", "Name three colours."]
    res = radioactivity_closed(
        wm, suspect, prompts, ours.tokenizer, reference=ours, max_new_tokens=40
    )
    t = res.test
    assert res.settings["max_reference_prob"] == DEFAULT_MAX_REFERENCE_PROB
    assert res.settings["reference"]["name"] == ours.info.name
    assert t.n_tokens == (t.n_scored + t.n_duplicate + t.n_excluded + t.n_filtered + t.n_unselected)
    outs = [s["output"] for s in res.samples]
    probs = reference_token_probs(ours, prompts, outs, ours.tokenizer)
    again, _ = score_closed(wm, outs, prompts, ours.tokenizer, reference_probs=probs)
    assert (again.n_scored, again.statistic) == (t.n_scored, t.statistic)
    with pytest.raises(InputError, match="one list per output"):
        score_closed(wm, outs, prompts, ours.tokenizer, reference_probs=probs[:1])
    with pytest.raises(InputError, match="max_reference_prob"):
        radioactivity_closed(wm, suspect, prompts, ours.tokenizer, reference=ours,
                             max_reference_prob=0.0)  # fmt: skip
