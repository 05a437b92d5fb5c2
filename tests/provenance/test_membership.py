"""The exact rank test of served answers against fresh ones (provenance.membership)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats

from distilltrace.provenance.membership import (
    MIN_P,
    membership_test,
    rank_sum_sf,
    served_ranks,
    test_logprobs,
)
from distilltrace.stats import binomial_slack


def test_tail_is_the_exact_count_of_rank_vectors():
    """P(T >= t) by enumeration of every rank vector, for small n and k; k = 1 is the
    sign test (a binomial tail); far tails stay exact until the float64 floor."""
    for n, k in [(1, 1), (3, 2), (4, 3), (6, 1)]:
        sums = [sum(v) for v in itertools.product(range(k + 1), repeat=n)]
        for t in range(-1, n * k + 2):
            want = sum(s >= t for s in sums) / len(sums)
            assert rank_sum_sf(t, n, k) == pytest.approx(want, rel=1e-12, abs=0)
    assert rank_sum_sf(70, 79, 1) == pytest.approx(stats.binom.sf(69, 79, 0.5), rel=1e-9)
    assert rank_sum_sf(79, 79, 1) == pytest.approx(2.0**-79, rel=1e-12)
    assert rank_sum_sf(2000, 2000, 1) == MIN_P  # 2^-2000 is below float64


@pytest.mark.parametrize("k,discrete", [(1, False), (3, False), (2, True)])
def test_pvalues_are_calibrated_on_exchangeable_scores(k, discrete):
    """Null: each exchange's served score and its k fresh scores are i.i.d. (continuous,
    or rounded so that ties are common: a seeded random order keeps ranks uniform). Over 3,000
    null draws P(p <= a) <= a + binomial slack at a = 0.01, 0.05, 0.1, and the test is not
    needlessly conservative: P(p <= 0.1) >= 0.05."""
    rng = np.random.default_rng(11 + k)
    ps = []
    for i in range(3000):
        n = int(rng.integers(5, 40))
        x = rng.normal(size=(n, k + 1))
        if discrete:
            x = np.round(x)
        ps.append(membership_test(x[:, 0], x[:, 1:], seed=i).pvalue)
    ps = np.asarray(ps)
    for a in (0.01, 0.05, 0.1):
        assert (ps <= a).mean() <= a + binomial_slack(len(ps), a), a
    assert (ps <= 0.1).mean() >= 0.05


def test_served_answers_the_suspect_favours_give_a_small_pvalue():
    rng = np.random.default_rng(3)
    served = rng.normal(2.0, 1.0, 40)
    fresh = rng.normal(0.0, 1.0, (40, 3))
    r = membership_test(served, fresh)
    assert r.pvalue < 1e-10 and r.statistic > 0.8 and r.n == 40 and r.details["k"] == 3
    d = r.to_dict()
    assert d["name"] == "harvest_membership" and "exchangeable" in d["null"]
    assert membership_test(-served, -fresh).pvalue > 0.99  # one-sided


def test_ties_are_broken_in_a_random_order_that_keeps_the_rank_uniform():
    """With the served score tied with all k fresh ones, its rank is uniform on {0..k}
    (not a sum of coins, which would pile up in the middle); reproducible by seed."""
    s = np.zeros(6000)
    f = np.zeros((6000, 2))
    ranks, ties = served_ranks(s, f, seed=5)
    assert ties == 6000
    share = np.bincount(ranks, minlength=3) / len(ranks)
    assert np.allclose(share, 1 / 3, atol=0.03), share
    assert (served_ranks(s, f, seed=5)[0] == ranks).all()  # verify recomputes the same
    ranks, _ = served_ranks([1.0, 1.0], [[0.0, 1.0], [2.0, 1.0]], seed=0)
    assert ranks[0] in (1, 2) and ranks[1] in (0, 1)  # strictly below, plus its tie place


def test_recorded_logprobs_are_ranked_per_character_against_our_model():
    """Served answers the suspect favours over our model, per character, rank first."""
    answers = [["aaaa", "bbbb"]] * 12
    suspect = [[-1.0, -8.0]] * 12  # the served answer: 1.75 nats/char above the fresh one
    ours = [[-4.0, -4.0]] * 12
    t = test_logprobs(suspect, ours, answers, seed=0)
    assert t.rank_sum == 12 and t.pvalue == 2.0**-12
    assert test_logprobs(ours, ours, answers, seed=0).n_ties == 12  # our model against itself: ties


def test_bad_scores_raise():
    with pytest.raises(ValueError, match="one row"):
        membership_test([1.0, 2.0], [[0.0]])
    with pytest.raises(ValueError, match="finite"):
        membership_test([float("nan")], [[0.0]])
    assert membership_test([], np.zeros((0, 1))).pvalue == 1.0


def test_cli_reads_served_answers_and_tests_them(tmp_path, capsys):
    """`provenance membership` on a tiny teacher's served answers (JSON Lines with their
    serving settings; a malformed row is quarantined and counted against the file's rows).
    The suspect here is the teacher itself, which never trained on its own samples: it
    scores every answer exactly as our model does, so every exchange is a tie and the
    p-value is the null's (the seeded random order). The claim's power is measured on
    real models (docs/benchmarks.md, "Custody: quick demo", session 28)."""
    import json

    from distilltrace.cli import main
    from distilltrace.models import load_model
    from distilltrace.models.tiny import make_tiny_model

    teacher_dir = make_tiny_model(tmp_path / "teacher", seed=5)
    teacher = load_model(str(teacher_dir))
    prompts = [f"question {i}: what is {i} plus {i}?" for i in range(20)]
    gens = teacher.generate(prompts, max_new_tokens=12, temperature=1.0, seed=0)
    served = tmp_path / "served.jsonl"
    with open(served, "w") as f:
        for p, g in zip(prompts, gens, strict=True):
            f.write(json.dumps({"prompt": p, "response": g.text or "x"}) + "\n")
        f.write("{not json\n")
    base = ["provenance", "membership", "--reference", str(teacher_dir), "--served", str(served),
            "--suspect", str(teacher_dir)]  # fmt: skip
    run = [*base, "--fresh", "2", "--temperature", "1.0", "--max-tokens", "12",
           "--cache", str(tmp_path / "cache")]  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main([*run, "--out", str(tmp_path / "m.json")])
    assert e.value.code == 0
    cap = capsys.readouterr()
    assert "21 rows read: 20 exchanges, 1 quarantined" in cap.out
    # progress: a line per fresh draw and per scoring of each chunk (not on a terminal)
    assert "membership: fresh answers, then scores: 3/3" in cap.err
    doc = json.loads((tmp_path / "m.json").read_text())
    assert doc["n"] == 20 and doc["details"]["k"] == 2 and doc["details"]["n_ties"] == 20
    assert 0.0 < doc["pvalue"] <= 1.0 and doc["quarantined"] == 1
    assert [t["answers"][0] for t in doc["transcript"]] == [g.text or "x" for g in gens]
    assert all(len(t["answers"]) == 3 for t in doc["transcript"])
    # our model's fresh answers and scores come from the query cache the second time, and
    # the same without a cache (seeded draws)
    assert (tmp_path / "cache" / "queries.sqlite").is_file()
    for extra in (["--out", str(tmp_path / "m2.json")], ["--no-cache", "--out", str(tmp_path / "m3.json")]):  # fmt: skip
        with pytest.raises(SystemExit) as e:
            main([*run, *extra])
        assert e.value.code == 0
    capsys.readouterr()
    for again in ("m2.json", "m3.json"):
        d2 = json.loads((tmp_path / again).read_text())
        assert [t["answers"] for t in d2["transcript"]] == [t["answers"] for t in doc["transcript"]]
        assert d2["pvalue"] == doc["pvalue"]
    # without the serving settings (no columns, no options) nothing can be tested
    with pytest.raises(SystemExit) as e:
        main(base)
    assert e.value.code == 2
    assert "no served exchange can be tested" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main([*base, "--temperature", "1", "--max-tokens", "12",
              "--out", str(tmp_path / "no" / "m.json")])  # fmt: skip
    assert e.value.code == 2
    assert "does not exist" in capsys.readouterr().err
