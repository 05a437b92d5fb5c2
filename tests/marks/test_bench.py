"""`distilltrace bench marks` end to end at toy sizes (the real sizes are in the docs)."""

from __future__ import annotations

import json

import pytest

from distilltrace.cli import main


@pytest.mark.slow
def test_bench_marks_quick_at_toy_sizes(tmp_path, capsys):
    sizes = {
        "n_power": 3,
        "power_tokens": 40,
        "n_null_keys": 6,
        "lengths": [10, 30],
        "n_cost": 2,
        "radio_prompts": 8,
        "radio_tokens": 24,
        "mixes": [0.0, 1.0],
        "train_epochs": 1,
        "closed_prompts": 2,
        "closed_tokens": 16,
        "radio_null_keys": 3,
    }
    with pytest.raises(SystemExit) as e:
        main(
            [
                "bench",
                "marks",
                "--tier",
                "quick",
                "--out",
                str(tmp_path),
                "--set",
                json.dumps(sizes),
            ]
        )
    out = capsys.readouterr()
    assert e.value.code in (0, None), out.err
    res = json.loads((tmp_path / "result.json").read_text())
    s = res["sections"]
    assert s["power"]["n"] == 3 and [r["tokens"] for r in s["length"]] == [10, 30]
    assert {r["substituted"] for r in s["robustness"]} == {0.1, 0.2, 0.3}
    assert s["cost"]["tokens_per_s_marked"] > 0
    assert [r["mix"] for r in s["radioactivity"]["students"]] == [0.0, 1.0]
    zero, full = s["radioactivity"]["students"]
    assert full["n_reelicited_prompts"] == 2  # capped at closed_prompts
    for row in (zero, full):
        for k in ("closed_held_reference", "closed_reelicited_reference", "closed_reelicited"):
            assert row[k]["n_tokens"] > 0, k
    assert len(s["radioactivity"]["null_zero_percent_student_random_keys"]) == 3
    assert (tmp_path / "report.html").read_text().startswith("<!doctype html>")
    assert "power:" in out.out
    with pytest.raises(SystemExit) as e:
        main(
            ["bench", "marks", "--tier", "quick", "--out", str(tmp_path), "--set", '{"n_powr": 3}']
        )
    assert e.value.code == 2 and "unknown benchmark setting" in capsys.readouterr().err
