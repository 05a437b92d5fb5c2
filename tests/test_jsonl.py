"""The project's JSON Lines splitting (distilltrace.jsonl)."""

from __future__ import annotations

import json

from distilltrace import jsonl


def test_lines_split_on_newline_only_and_keep_unicode_separators_in_records():
    rows = [{"a": "x\u2028y"}, {"a": "z\x85w\u2029v"}]
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    assert len(text.splitlines()) > 2  # what the readers used to do
    got = [json.loads(x) for x in jsonl.lines(text) if x.strip()]
    assert got == rows
    assert jsonl.lines("a\n\nb") == ["a", "", "b"]  # blank lines kept for numbering
