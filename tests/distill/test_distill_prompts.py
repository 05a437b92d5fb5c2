"""Prompt generator and prompt-file loader."""

from __future__ import annotations

import collections

import pytest

from distilltrace.distill.prompts import FAMILIES, generate_prompts, load_prompts
from distilltrace.errors import InputError


def test_generate_is_seeded_distinct_and_balanced():
    a = generate_prompts(300, seed=5)
    assert a == generate_prompts(300, seed=5)
    assert a != generate_prompts(300, seed=6)
    assert len({p.text for p in a}) == 300
    counts = collections.Counter(p.family for p in a)
    assert set(counts) == set(FAMILIES)
    assert max(counts.values()) - min(counts.values()) <= 1
    assert all(p.text.strip() and p.topic for p in a)
    assert generate_prompts(120, seed=5) == a[:120]  # a prompt set can grow


def test_generate_large_and_filtered():
    big = generate_prompts(5000, seed=0)
    assert len({p.text for p in big}) == 5000
    only = generate_prompts(40, seed=1, families=["math", "code"])
    assert {p.family for p in only} == {"math", "code"}
    with pytest.raises(InputError, match="unknown prompt families"):
        generate_prompts(3, families=["poetry-slam"])


def test_load_text_jsonl_csv(tmp_path):
    t = tmp_path / "p.txt"
    t.write_text("first prompt\n\nsecond prompt\n")
    assert load_prompts(t) == ["first prompt", "second prompt"]
    j = tmp_path / "p.jsonl"
    j.write_text('{"prompt": "a"}\n{"prompt": "b", "x": 1}\n"c"\n')
    assert load_prompts(j) == ["a", "b", "c"]
    j2 = tmp_path / "q.jsonl"
    j2.write_text('{"q": "one"}\n{"q": "two"}\n')
    assert load_prompts(j2, column="q") == ["one", "two"]
    c = tmp_path / "p.csv"
    c.write_text('id,prompt\n1,"hello, world"\n2,"multi\nline"\n')
    assert load_prompts(c) == ["hello, world", "multi\nline"]


@pytest.mark.parametrize(
    ("name", "content", "column", "pattern"),
    [
        ("e.txt", "", None, r"empty \(line 1\)"),
        ("e.jsonl", "  \n\n", None, "empty"),
        (
            "bad.jsonl",
            '{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": oops}\n',
            None,
            "line 3: malformed JSON",
        ),
        ("miss.jsonl", '{"prompt": "a"}\n{"text": "b"}\n', None, "line 2: no field 'prompt'"),
        (
            "blank.jsonl",
            '{"prompt": "a"}\n{"prompt": "  "}\n',
            None,
            "line 2: field 'prompt' is empty",
        ),
        ("num.jsonl", "[1, 2]\n", None, "line 1: expected a JSON object"),
        ("col.csv", "id,text\n1,hi\n", None, "line 1: no column 'prompt'"),
        ("cell.csv", "id,prompt\n1,hi\n2,\n", None, "line 3: column 'prompt' is empty"),
        ("width.csv", "id,prompt\n1,hi\n2,there,extra\n", None, "line 3: 3 fields"),
        ("x.txt", "hello\n", "prompt", "--column applies"),
    ],
)
def test_load_errors_name_the_line(tmp_path, name, content, column, pattern):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(InputError, match=pattern):
        load_prompts(p, column=column)


def test_load_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_prompts(tmp_path / "nope.txt")
