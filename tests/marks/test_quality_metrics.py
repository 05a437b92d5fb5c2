"""The text-quality and task measures of the marks benchmarks, on hand-computed cases."""

from __future__ import annotations

import json
import math

import pytest

from distilltrace.bench.marks_quality import (
    GSM8K_DEFAULT,
    bleu,
    distinct_n,
    gsm8k_correct,
    gsm8k_prediction,
    read_gsm8k,
    self_bleu,
)
from distilltrace.errors import InputError


def test_distinct_n_by_hand():
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # ab, ba, ab
    assert distinct_n(["a b", "a b"], 2) == 0.5
    assert distinct_n(["a b c"], 1) == 1.0
    assert distinct_n(["one"], 2) == 0.0


def test_bleu_by_hand():
    assert bleu("the cat sat on the mat", ["the cat sat on the mat"]) == pytest.approx(1.0)
    assert bleu("dog", ["the cat"]) == 0.0
    # unigram 4/4; bigram (2+1)/(3+1); trigram (1+1)/(2+1); 4-gram (0+1)/(1+1);
    # hypothesis shorter than the reference (4 vs 5): brevity penalty exp(1 - 5/4)
    got = bleu("the cat sat down", ["the cat sat on down"])
    want = math.exp(1 - 5 / 4) * (1 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert got == pytest.approx(want)


def test_self_bleu_identical_vs_diverse():
    same = [["a b c d e", "a b c d e"], ["x y z w v", "x y z w v"]]
    assert self_bleu(same) == pytest.approx(1.0)
    diverse = [["a b c d e", "f g h i j"]]
    assert self_bleu(diverse) == 0.0
    with pytest.raises(InputError, match="two texts"):
        self_bleu([["only one"]])


def test_gsm8k_answer_extraction():
    assert gsm8k_prediction("so 3 + 4 = 7\n#### 7") == "7"
    assert gsm8k_prediction("The total is 1,250 dollars.") == "1250"
    assert gsm8k_correct("#### 18", "18") and gsm8k_correct("answer: 18.0", "18")
    assert not gsm8k_correct("no number here", "18")
    assert not gsm8k_correct("#### 17", "18")


def test_read_gsm8k(tmp_path):
    f = tmp_path / "g.jsonl"
    rows = [
        {"question": "q1", "answer": "work\n#### 1,000"},
        {"question": "q2", "answer": "#### 5"},
    ]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert read_gsm8k(f) == [
        {"question": "q1", "answer": "1000"},
        {"question": "q2", "answer": "5"},
    ]
    assert len(read_gsm8k(f, 1)) == 1
    f.write_text('{"q": 1}\n')
    with pytest.raises(InputError, match="not a GSM8K row"):
        read_gsm8k(f)
    with pytest.raises(InputError, match="not found"):
        read_gsm8k(tmp_path / "none.jsonl")


@pytest.mark.skipif(not GSM8K_DEFAULT.is_file(), reason="GSM8K test file absent")
def test_shared_gsm8k_gold_answers_are_numbers():
    rows = read_gsm8k(GSM8K_DEFAULT, 200)
    assert len(rows) == 200
    assert all(gsm8k_correct(f"#### {r['answer']}", r["answer"]) for r in rows)


def test_perplexity_per_seed_equals_perplexity_of_each_seed():
    """`benchmarks.marks_quality` scores every answer once and splits the perplexity by
    seed (one seed per benchmark key): the same numbers as scoring each seed alone."""
    from types import SimpleNamespace

    from benchmarks.marks_quality import _ppl_per_seed
    from distilltrace.bench.marks_quality import perplexity

    class Judge:  # log-probability -0.5 per word of the answer
        def score(self, prompts, texts):
            return [
                SimpleNamespace(
                    total_logprob=-0.5 * len(t.split()) - len(p) / 100, n_tokens=len(t.split())
                )
                for p, t in zip(prompts, texts, strict=True)
            ]

    def ans(p, t):
        return SimpleNamespace(prompt=p, text=t)

    per_seed = [[ans("p1", "a b c"), ans("p2", " ")], [ans("p1", "a"), ans("p22", "a b c d e")]]
    got = _ppl_per_seed(Judge(), per_seed)
    want = [perplexity(Judge(), [x.prompt for x in s], [x.text for x in s]) for s in per_seed]
    assert got == pytest.approx(want)
    assert got[0] == pytest.approx(math.exp((1.5 + 0.02) / 3))  # the empty answer is skipped
