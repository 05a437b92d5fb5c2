"""Human text from the standard library's docstrings."""

from __future__ import annotations

from distilltrace.distill.human_text import human_corpus


def test_corpus_is_deterministic_clean_and_bounded():
    a = human_corpus(max_chars=50_000, seed=0)
    assert a == human_corpus(max_chars=50_000, seed=0)
    assert a != human_corpus(max_chars=50_000, seed=1)
    assert 40_000 <= sum(map(len, a)) <= 50_000
    full = human_corpus()
    assert sum(map(len, full)) > 300_000  # a real corpus, not a handful of lines
    assert len(set(full)) == len(full)  # de-duplicated
    for chunk in full:
        assert ">>>" not in chunk and ":func:" not in chunk and "``" not in chunk
        assert chunk[0].isupper()
        assert len(chunk) <= 2_000
