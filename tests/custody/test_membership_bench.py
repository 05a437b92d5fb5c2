"""The membership benchmark's reading of a demo folder (benchmarks/custody_membership.py):
which exchanges it tests, with which settings."""

from __future__ import annotations

import json

from benchmarks.custody_membership import _exchanges


def _demo(tmp_path, rows, harvested, cfg):
    b = tmp_path / "bundle-harvested"
    (b / "log").mkdir(parents=True)
    (b / "manifest.json").write_text(json.dumps({"config": cfg}))
    (b / "harvested.jsonl").write_text("".join(json.dumps(h) + "\n" for h in harvested))
    (b / "log" / "segment-000.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def test_the_bench_tests_the_bundles_exchanges_with_their_logged_settings(tmp_path):
    """As the build selects them: a greedy row and a repeated (prompt, answer) are left
    out; each kept exchange carries its own row's temperature and length cap."""
    rows = [
        {"request_id": "r1", "temperature": 0.8, "max_tokens": 64},
        {"request_id": "r2", "temperature": 0.0, "max_tokens": 64},
        {"request_id": "r3", "temperature": 0.5, "max_tokens": 32},
        {"request_id": "r4", "temperature": 0.8, "max_tokens": 64},
    ]
    harvested = [
        {"request_id": "r1", "prompt": "a", "response": "x"},
        {"request_id": "r2", "prompt": "b", "response": "y"},
        {"request_id": "r3", "prompt": "c", "response": "z"},
        {"request_id": "r4", "prompt": "a", "response": "x"},
    ]
    ex, st, cfg = _exchanges(_demo(tmp_path, rows, harvested, {"seed": 0}))
    assert [h["request_id"] for h in ex] == ["r1", "r3"]
    assert [(s["temperature"], s["max_tokens"]) for s in st] == [(0.8, 64), (0.5, 32)]
    assert cfg == {"seed": 0}
