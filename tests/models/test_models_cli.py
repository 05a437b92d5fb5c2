"""`distilltrace models list` and `distilltrace generate`."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from distilltrace.cli import app

runner = CliRunner()


def test_generate_prints_the_same_text_as_the_library(tiny_dir, tiny_model):
    r = runner.invoke(app, ["generate", str(tiny_dir), "hello", "--max-new-tokens", "6"])
    assert r.exit_code == 0, r.output
    expected = tiny_model.generate(["hello"], max_new_tokens=6)[0].text
    assert r.stdout.rstrip("\n") == expected


def test_generate_prompts_file_writes_json_lines(tiny_dir, tiny_model, tmp_path):
    f = tmp_path / "p.txt"
    f.write_text("one\ntwo\n\nthree\n")
    args = ["generate", str(tiny_dir), "--prompts-file", str(f), "--max-new-tokens", "4"]
    args += ["--temperature", "0.8", "--seed", "3", "--no-chat"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.stdout.splitlines() if x.startswith("{")]
    assert [x["prompt"] for x in rows] == ["one", "two", "three"]
    local = tiny_model.generate(["one", "two", "three"], 4, temperature=0.8, seed=3, chat=False)
    assert [x["text"] for x in rows] == [g.text for g in local]


def test_models_list_json(tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILLTRACE_HOME", str(tmp_path))
    r = runner.invoke(app, ["models", "list", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert {b["name"] for b in d["bundled"]} == {"smollm2-135m-instruct", "gemma3-270m"}
    assert d["cached"] == []


def test_bad_spec_is_one_line_with_the_accepted_forms():
    r = subprocess.run(
        [sys.executable, "-m", "distilltrace.cli", "generate", "foo:bar", "hi"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "accepted forms" in lines[0] and "Traceback" not in r.stderr
