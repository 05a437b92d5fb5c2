"""`distilltrace demo` end to end: simulate, scan, evaluate, report."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    from typer.testing import CliRunner

    from distilltrace.cli import app

    out = tmp_path / "demo"
    r = CliRunner().invoke(app, ["demo", "--out", str(out), "--accounts", "1500", "--days", "3"])
    assert r.exit_code == 0, r.output
    assert "report:" in r.output
    report = out / "scan" / "report.html"
    assert report.exists() and str(report.resolve()) in r.output.replace("\n", "")
    ev = json.loads((out / "scan" / "eval.json").read_text())
    from distilltrace.traffic.simulate import families

    assert {c["archetype"] for c in ev["campaigns"]} == set(families()["archetypes"])
    assert ev["accounts"]["n_positive"] > 30
    assert (out / "scan" / "eval.html").exists()
    assert (out / "logs.parquet.truth.json").exists()
