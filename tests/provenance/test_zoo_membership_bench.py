"""benchmarks/provenance_zoo_membership.py: which harvest rows a zoo student trained on,
and the served exchanges it tests them as (no model is run here; the test itself is
tests/provenance/test_membership.py, its power on real students docs/benchmarks.md)."""

from __future__ import annotations

import json

import pytest

from benchmarks.provenance_zoo_membership import (
    first_rows,
    parse_sets,
    served_rows,
    trained_share,
)
from distilltrace.distill.prompts import generate_prompts


@pytest.fixture
def zoo(tmp_path):
    plan = {"n_prompts": 20, "harvest_seed": 3, "temperature": 0.7, "top_p": 0.95,
            "max_new_tokens": 96, "students": [
                {"name": "a-100", "method": "seq-kd", "teachers": ["t"], "data_fraction": 1.0},
                {"name": "a-10", "method": "mix-sharegpt", "teachers": ["t"], "data_fraction": 0.1},
                {"name": "a-other", "method": "seq-kd", "teachers": ["u"], "data_fraction": 1.0},
                {"name": "a-sharegpt", "method": "sharegpt", "teachers": [], "data_fraction": 1.0},
            ]}  # fmt: skip
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    (tmp_path / "data").mkdir()
    prompts = generate_prompts(20, seed=3)
    with open(tmp_path / "data" / "t.jsonl", "w") as f:  # harvest order != plan order
        for p in reversed(prompts):
            f.write(json.dumps({"prompt": p.text, "response": "answer to " + p.text,
                                "meta": {}}) + "\n")  # fmt: skip
    return tmp_path, prompts


def test_served_rows_follow_the_plan_order_with_the_serving_settings(zoo):
    path, prompts = zoo
    rows = served_rows(path, "t")
    assert [r["prompt"] for r in rows] == [p.text for p in prompts]
    assert all(r["response"] == "answer to " + r["prompt"] for r in rows)
    assert {(r["temperature"], r["top_p"], r["max_tokens"]) for r in rows} == {(0.7, 0.95, 96)}
    assert len({r["request_id"] for r in rows}) == 20


def test_trained_share_and_the_rows_a_share_took(zoo):
    path, _ = zoo
    assert trained_share(path, "a-100", "t") == 1.0
    assert trained_share(path, "a-10", "t") == 0.1
    assert trained_share(path, "a-other", "t") == 0.0  # another teacher's answers
    assert trained_share(path, "a-sharegpt", "t") == 0.0
    assert trained_share(path, "not-in-zoo", "t") == 0.0
    assert (first_rows(160, 1.0), first_rows(160, 0.1), first_rows(160, 0.01)) == (160, 16, 2)
    assert first_rows(20, 0.01) == 1
    assert parse_sets("1.0:3,0.1:9") == [(1.0, 3), (0.1, 9)]
