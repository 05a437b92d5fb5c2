"""Text-level comparison used by the greedy test (tokenizer-free)."""

from distilltrace.provenance.textmatch import ngrams, normalise, prefix_agreement, words


def test_normalise_and_words():
    assert normalise("  Hello\tWORLD\n") == "hello world"
    assert words("Hello, world!") == ["hello", ",", "world", "!"]
    assert words("Hello, world!", alnum_only=True) == ["hello", "world"]
    # a continuation cut by the token limit loses its (possibly partial) last word
    assert words("The cat sat on the ma", truncated=True) == ["the", "cat", "sat", "on", "the"]


def test_prefix_agreement():
    a = words("The quick brown fox jumps", alnum_only=True)
    assert prefix_agreement(a, a, k=4) == 1.0
    assert prefix_agreement(a, words("The quick red fox", alnum_only=True), k=4) == 0.5
    assert prefix_agreement(["yes"], ["yes"], k=8) == 1.0  # identical short answers
    assert prefix_agreement(["yes"], ["yes", "indeed", "so"], k=8) == 1 / 3
    assert prefix_agreement([], [], k=8) == 0.0  # shared silence is not evidence
    assert prefix_agreement(["a"], [], k=8) == 0.0


def test_same_text_agrees_whatever_the_spacing_or_case():
    assert prefix_agreement(words("Well,  HELLO there"), words("well, hello there"), k=3) == 1.0


def test_ngrams():
    assert ngrams(["a", "b", "."], 2) == ["a", "b", "a b", "b ."]
