"""Human text from the standard library's docstrings."""

from __future__ import annotations

import json

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


def test_paragraphs_are_cached_on_disk_and_rebuilt_when_damaged(tmp_path, monkeypatch):
    """The second process reads the cache file instead of the standard library; a damaged
    file is rebuilt; a folder that cannot be written only costs the extraction."""
    from distilltrace.distill import human_text as ht

    monkeypatch.setenv("DISTILLTRACE_CACHE", str(tmp_path / "cache"))
    ht._paragraphs.cache_clear()
    first = ht._paragraphs()
    path = ht.cache_path()
    assert path.is_file() and path.parent.parent == tmp_path / "cache"
    assert not list(path.parent.glob("*.tmp"))
    ht._paragraphs.cache_clear()

    def no_extraction():
        raise AssertionError("read the standard library again")

    monkeypatch.setattr(ht, "_extract_paragraphs", no_extraction)
    assert ht._paragraphs() == first  # a new process: from the file
    extractions = []  # from here on the extraction is counted (and not redone for real)
    monkeypatch.setattr(ht, "_extract_paragraphs", lambda: extractions.append(1) or first)
    ht._paragraphs.cache_clear()
    path.write_text('["half a list"', encoding="utf-8")
    assert ht._paragraphs() == first and json.loads(path.read_text(encoding="utf-8")) == list(first)
    assert len(extractions) == 1  # the damaged file was rebuilt
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DISTILLTRACE_CACHE", str(blocker))
    ht._paragraphs.cache_clear()
    assert ht._paragraphs() == first and len(extractions) == 2  # unwritable: extracted, kept
    ht._paragraphs.cache_clear()
