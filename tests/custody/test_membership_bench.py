"""The membership benchmark's reading of a demo folder (benchmarks/custody_membership.py):
which exchanges it tests, with which settings."""

from __future__ import annotations

import json

from benchmarks.custody_membership import _exchanges


def _demo(tmp_path, rows, harvested, cfg):
    b = tmp_path / "bundle-harvested"
    (b / "log").mkdir(parents=True)
    (b / "manifest.json").write_text(json.dumps({"config": cfg}))
    # written raw as the build writes them (ensure_ascii=False): U+2028 stays in the text
    for path, items in (
        (b / "harvested.jsonl", harvested),
        (b / "log" / "segment-000.jsonl", rows),
    ):
        lines = "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in items)
        path.write_text(lines, encoding="utf-8")
    return tmp_path


def test_the_bench_tests_the_bundles_exchanges_with_their_logged_settings(tmp_path):
    """As the build selects them: a greedy row and a repeated (prompt, answer) are left
    out; each kept exchange carries its own row's temperature and length cap; an answer
    holding a Unicode line separator is one row (JSON Lines split on \\n only)."""
    rows = [
        {"request_id": "r1", "temperature": 0.8, "max_tokens": 64},
        {"request_id": "r2", "temperature": 0.0, "max_tokens": 64},
        {"request_id": "r3", "temperature": 0.5, "max_tokens": 32},
        {"request_id": "r4", "temperature": 0.8, "max_tokens": 64},
    ]
    harvested = [
        {"request_id": "r1", "prompt": "a", "response": "x"},
        {"request_id": "r2", "prompt": "b", "response": "y"},
        {"request_id": "r3", "prompt": "c", "response": "z\u2028w\x85v"},
        {"request_id": "r4", "prompt": "a", "response": "x"},
    ]
    ex, st, cfg = _exchanges(_demo(tmp_path, rows, harvested, {"seed": 0}))
    assert [h["request_id"] for h in ex] == ["r1", "r3"]
    assert ex[1]["response"] == "z\u2028w\x85v"
    assert [(s["temperature"], s["max_tokens"]) for s in st] == [(0.8, 64), (0.5, 32)]
    assert cfg == {"seed": 0}
