"""The tournament scheme (SynthID-style, the default mark): the exact layer-by-layer winner
distribution, distortion-freeness over keys, exact binomial null (calibration under one key
and under random keys), power, repeated-context masking, and generation on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as st

from distilltrace.marks.detect import MARKED, TupleScorer, detect_texts
from distilltrace.marks.hashing import pair_bits
from distilltrace.marks.keys import load_watermark, make_watermark, write_key_file
from distilltrace.marks.schemes import (
    DEFAULT_SCHEME,
    SchemeParams,
    TokenizerBinding,
    Tournament,
    TournamentProcessor,
)
from distilltrace.marks.schemes.tournament import TAIL_MASS, repeated_windows, supports
from distilltrace.marks.secret import Secret
from distilltrace.stats import binomial_slack, calibration

V = 200


def _valid(wm, tests, rng, alphas=(0.01, 0.05, 0.1)):
    """The binomial test is discrete: reported p-values must be super-uniform (FPR <= alpha
    + binomial slack, one-sided KS) and randomised ones exactly uniform (two-sided KS)."""
    ps = np.array([t.pvalue for t in tests])
    slack = max(binomial_slack(len(ps), a) for a in alphas)
    fpr_ok = all(np.mean(ps <= a) <= a + slack for a in alphas)
    one_sided = st.kstest(ps, "uniform", alternative="greater").pvalue
    cal = calibration([wm.impl.randomized_pvalue(t, rng) for t in tests], alphas)
    return (cal, one_sided), fpr_ok and one_sided > 0.001 and cal.ok(0.001, slack)


def tournament_stream(wm, n, rng, strength=1.0, vocab=None):
    """A synthetic marked stream over `vocab` (default ids 0..V-1): with probability
    `strength` the token is drawn from the tournament distribution over a random Dirichlet
    p, else uniformly. The byte tokenizer's printable ASCII is ids 5+32..5+126."""
    vocab = np.arange(V) if vocab is None else np.asarray(vocab)
    h = wm.context_width
    ids = rng.choice(vocab, h).tolist()
    for _ in range(n):
        if rng.random() < strength:
            p = rng.dirichlet(np.full(len(vocab), 0.3))
            seed = np.uint64(wm.window_seed(ids[-h:]))
            q = wm.impl.tournament_probs(p, pair_bits(seed, vocab))
            ids.append(int(rng.choice(vocab, p=q / q.sum())))
        else:
            ids.append(int(rng.choice(vocab)))
    return ids


def test_default_scheme_is_the_tournament(byte_binding):
    assert DEFAULT_SCHEME == "tournament"
    p = SchemeParams()
    assert p.scheme == "tournament" and p.layers == 30 and p.mask_repeated is True
    assert SchemeParams(scheme="greenlist").delta == 4.0  # the green list stays available
    with pytest.raises(ValueError, match="layers"):
        SchemeParams(layers=0)
    with pytest.raises(ValueError, match="layers"):
        SchemeParams(layers=65)
    with pytest.raises(ValueError, match="unknown parameter"):
        SchemeParams(delta=2.0)


def test_layer_update_equals_a_simulated_knockout_tournament():
    """The closed form p_l = p_{l-1} (1 + g_l - E[g_l]) is the distribution of the winner of
    2^m candidates drawn from p, compared on g_l then g_{l-1}..., ties broken at random."""
    rng = np.random.default_rng(0)
    m, k = 3, 6
    p = np.array([0.4, 0.25, 0.15, 0.1, 0.07, 0.03])
    g = rng.integers(0, 2, size=(k, m)).astype(float)
    q = p.copy()
    for layer in range(m):
        q = q * (1 + g[:, layer] - q @ g[:, layer])
    n_sim = 40_000
    cand = rng.choice(k, size=(n_sim, 2**m), p=p)
    for layer in range(m):
        a, b = cand[:, 0::2], cand[:, 1::2]
        ga, gb = g[a, layer], g[b, layer]
        coin = rng.random(a.shape) < 0.5
        cand = np.where(ga > gb, a, np.where(gb > ga, b, np.where(coin, a, b)))
    counts = np.bincount(cand[:, 0], minlength=k)
    assert q.sum() == pytest.approx(1.0)
    assert st.chisquare(counts, n_sim * q).pvalue > 1e-3


def test_winner_distribution_is_a_distribution_for_peaked_and_truncated_inputs():
    """Normalised and never negative, also when nearly all mass is on one token (where
    E[g] rounds to 1) and when the input leaves out a tail (sums to less than 1)."""
    rng = np.random.default_rng(9)
    t = Tournament()
    for peak in (1 - 1e-15, 1 - 1e-9, 0.9):
        p = np.full(50, (1 - peak) / 49)
        p[0] = peak
        for _ in range(200):
            bits = rng.integers(0, 2**63, 50, dtype=np.uint64)
            q = t.tournament_probs(p[:40], bits[:40])
            assert np.all(q >= 0) and q.sum() == pytest.approx(1.0)


def test_support_leaves_out_the_least_likely_tokens_up_to_the_tail_mass():
    """Per row: the left-out tokens total <= TAIL_MASS and are all less likely than every
    kept one; whole binary orders of magnitude go, from the least likely up, as far as the
    bound allows (one more would pass it); tokens of probability 0 always go; a uniform
    row or a one-token row keeps every token it can."""
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(6, 49_152, generator=g, dtype=torch.float64)
    logits *= torch.tensor([[1.0], [3.0], [6.0], [12.0], [25.0], [0.0]], dtype=torch.float64)
    logits[0, :100] = float("-inf")
    probs = torch.softmax(logits, dim=-1)
    keep = supports(probs)
    exps = torch.frexp(probs).exponent
    for p, k, e in zip(probs, keep, exps, strict=True):
        left = p[~k]
        assert float(left.sum()) <= TAIL_MASS
        assert k.any() and (left.numel() == 0 or float(left.max()) < float(p[k].min()))
        nonzero_kept = e[k & (p > 0)]
        lowest = int(nonzero_kept.min())
        assert float(left.sum() + p[k & (e == lowest)].sum()) > TAIL_MASS
    assert not keep[0, :100].any()
    assert keep[5].all()  # uniform: one group, all of the mass
    one = torch.zeros(1, 10, dtype=torch.float64)
    one[0, 3] = 1.0
    assert supports(one).nonzero().tolist() == [[0, 3]]
    assert keep[1].sum() > keep[4].sum()  # flatter rows keep more tokens
    # from float32 probabilities (the processor's): the true left-out mass stays in bound
    keep32 = supports(probs.float())
    assert torch.all(probs.masked_fill(keep32, 0).sum(1) <= TAIL_MASS)
    assert torch.all(keep32.sum(1) >= keep.sum(1) // 2) and keep32.any(1).all()


def test_tournament_is_distortion_free_over_keys(byte_binding):
    """Over random keys/windows the sampled token follows the model distribution p."""
    p = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05, 0.0])
    n = 3000
    scores = torch.log(p).unsqueeze(0).repeat(n, 1)
    rng = np.random.default_rng(1)
    ids = torch.from_numpy(rng.integers(0, 10**6, (n, 2)))
    wm = make_watermark(SchemeParams(layers=8), byte_binding, Secret(bytes(32)))
    out = TournamentProcessor(wm)(ids, scores)
    q = torch.softmax(out.double(), dim=-1).numpy()
    assert np.all(q[:, 5] == 0)  # a zero-probability token stays impossible
    g = torch.Generator().manual_seed(0)
    chosen = torch.multinomial(torch.from_numpy(q), 1, generator=g).squeeze(1).numpy()
    counts = np.bincount(chosen, minlength=6)
    assert st.chisquare(counts[:5], n * p[:5].numpy()).pvalue > 1e-3
    assert not np.allclose(q[0], q[1])  # but each key/window prefers other tokens


def test_hand_computed_values(make_wm):
    wm = make_wm("tournament", layers=5)
    seeds = np.array([wm.window_seed([1, 2]), wm.window_seed([3, 4])], dtype=np.uint64)
    toks = np.array([7, 9])
    bits = pair_bits(seeds, toks)
    expect = [bin(int(b) & 0b11111).count("1") for b in bits]
    assert wm.tuple_scores(seeds, toks).tolist() == expect
    t = wm.impl.null(20, 70.0)  # 100 fair bits, 70 ones
    assert t.expected == 50.0 and t.z == pytest.approx(4.0)
    assert np.exp(t.log_p) == pytest.approx(st.binom.sf(69, 100, 0.5), rel=1e-9)


def test_random_keys_on_unmarked_streams_are_calibrated(make_wm):
    rng = np.random.default_rng(2)
    tests = []
    for _ in range(400):
        wm = make_wm("tournament")
        sc = TupleScorer(wm, allowed_seeds=None)
        sc.add_sequence(rng.integers(0, V, 150).tolist(), context_is_marked=True)
        tests.append(sc.test())
    res, ok = _valid(wm, tests, rng)
    assert ok, res


def test_one_key_on_many_unmarked_texts_is_calibrated_at_small_alpha(make_wm):
    """3,000 unmarked streams under one key: FPR <= alpha at 1e-2 and 1e-3 (+ slack)."""
    wm = make_wm("tournament", layers=30)
    rng = np.random.default_rng(3)
    tests = []
    for _ in range(3000):
        sc = TupleScorer(wm)
        sc.add_sequence(rng.integers(0, 50, 60).tolist(), context_is_marked=True)
        tests.append(sc.test())
    ps = np.array([t.pvalue for t in tests])
    for a in (1e-2, 1e-3):
        assert np.mean(ps <= a) <= a + binomial_slack(len(ps), a), (a, np.mean(ps <= a))
    res, ok = _valid(wm, tests, rng)
    assert ok, res


def test_power_on_marked_streams_and_the_wrong_key(make_wm):
    rng = np.random.default_rng(4)
    wm = make_wm("tournament")
    for _ in range(3):
        sc = TupleScorer(wm)
        sc.add_sequence(tournament_stream(wm, 150, rng, strength=0.5))
        assert sc.test().pvalue < 1e-6 and sc.test().verdict == MARKED
    other = make_wm("tournament")
    ps = []
    for _ in range(60):
        sc = TupleScorer(other)
        sc.add_sequence(tournament_stream(wm, 60, rng))
        ps.append(sc.test().pvalue)
    assert np.mean(np.array(ps) <= 0.05) <= 0.05 + binomial_slack(60, 0.05)


def test_repeated_windows_are_left_unmarked(make_wm):
    ids = torch.tensor([[5, 6, 7, 5, 6], [5, 6, 7, 8, 9], [1, 2, 3, 4, 5]])
    assert repeated_windows(ids, 2) == [True, False, False]
    assert repeated_windows(ids[:, :2], 2) == [False, False, False]
    wm = make_wm("tournament")
    scores = torch.randn(3, V)
    out = TournamentProcessor(wm)(ids, scores.clone())
    assert torch.equal(out[0], scores[0])  # repeated context: the model's own scores
    assert not torch.allclose(out[1], scores[1])
    off = make_wm("tournament", mask_repeated=False)
    assert not torch.allclose(TournamentProcessor(off)(ids, scores.clone())[0], scores[0])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from distilltrace.models import load_model
    from distilltrace.models.tiny import make_tiny_model

    return load_model(str(make_tiny_model(tmp_path_factory.mktemp("m") / "tiny", seed=3)))


class PrintableAscii:
    """Only printable ASCII bytes and EOS stay allowed (text round-trips)."""

    def __call__(self, input_ids, scores):
        mask = torch.full_like(scores, float("-inf"))
        mask[:, 5 + 32 : 5 + 127] = 0.0
        return scores + mask


def test_generation_is_detected_and_differs_across_seeds(tiny, tmp_path):
    secret = Secret(bytes(range(1, 33)))
    wm = make_watermark(SchemeParams(), TokenizerBinding.of_model(tiny), secret)
    write_key_file(tmp_path / "k.json", wm, secret)
    wm = load_watermark(tmp_path / "k.json")  # the key file round-trips with its mac
    assert wm.params.to_dict()["layers"] == 30
    procs = [PrintableAscii(), *wm.logits_processors(tiny)]
    prompts = [f"Write a note about topic {i}." for i in range(4)]
    runs = [
        tiny.generate(prompts, max_new_tokens=100, temperature=1.0, seed=s, logits_processors=procs)
        for s in (0, 1)
    ]
    assert all(a.text != b.text for a, b in zip(*runs, strict=True))  # diverse across seeds
    rep = detect_texts(wm, [g.text for g in runs[0]], tiny.tokenizer)
    assert all(t.test.verdict == MARKED and t.test.pvalue < 1e-6 for t in rep.texts)
    plain = tiny.generate(prompts, max_new_tokens=100, temperature=1.0, logits_processors=[])
    assert detect_texts(wm, [g.text for g in plain], tiny.tokenizer).pooled.pvalue > 1e-3


def test_scheme_class_checks_its_parameters():
    assert Tournament(layers=np.int64(4)).layers == 4
    with pytest.raises(ValueError, match="integer"):
        Tournament(layers=2.5)
    with pytest.raises(ValueError, match="true or false"):
        Tournament(mask_repeated="yes")


def test_a_batch_is_processed_as_each_row_alone(make_wm):
    """One softmax for the whole batch: every row comes out as it would on its own
    (rows with repeated windows and rows with no finite score included)."""
    wm = make_wm("tournament")
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, V, (6, 5), generator=g)
    ids[0] = torch.tensor([5, 6, 7, 5, 6])  # repeated window: left as it is
    scores = torch.randn(6, V, generator=g) * 3
    scores[1] = float("-inf")  # nothing to sample: left as it is
    scores[2, : V // 2] = float("-inf")  # a truncated row
    out = TournamentProcessor(wm)(ids, scores.clone())
    alone = torch.cat(
        [TournamentProcessor(wm)(ids[i : i + 1], scores[i : i + 1].clone()) for i in range(6)]
    )
    assert torch.equal(out, alone)
    assert torch.equal(out[0], scores[0]) and torch.equal(out[1], scores[1])
    assert out.dtype == scores.dtype


@pytest.mark.parametrize("scheme", ["tournament", "greenlist", "gumbel"])
def test_rows_of_different_lengths_are_processed_as_each_row_alone(make_wm, scheme):
    """`process_rows` (serve's running batch): every row comes out as the processor makes
    it from that row's own tokens, including a row shorter than the context width (left as
    it is), a row with a repeated window and a row whose scores are all -inf."""
    wm = make_wm(scheme)
    h = wm.context_width
    g = torch.Generator().manual_seed(4)
    seqs = [torch.randint(0, V, (n,), generator=g).tolist() for n in (h + 9, h - 1, h, 3 * h)]
    seqs.append([5, 6, 7, 8] * (h + 1))  # its last window occurred before
    seqs.append(torch.randint(0, V, (h + 2,), generator=g).tolist())
    scores = torch.randn(len(seqs), V, generator=g) * 3
    scores[5] = float("-inf")
    proc = wm.impl.processor(wm)
    out = proc.process_rows(seqs, scores.clone())
    for i, s in enumerate(seqs):
        alone = proc(torch.tensor([s]), scores[i : i + 1].clone())[0]
        assert torch.equal(out[i], alone), i
    assert torch.equal(out[1], scores[1])  # no window yet
    assert not torch.equal(out[0], scores[0])
