"""`distilltrace distill ...` and `distilltrace zoo ...` from the command line."""

from __future__ import annotations

import json

import pytest

from distilltrace.cli import main
from distilltrace.distill.dataset import read_records
from distilltrace.models import load_model


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def test_harvest_then_seq_kd_from_the_cli(teacher_dir, tmp_path, capsys):
    data = tmp_path / "h.jsonl"
    argv = ["distill", "harvest", "--teacher", str(teacher_dir), "--n-prompts", "6"]
    assert _run([*argv, "--out", str(data), "--max-new-tokens", "12"]) == 0
    assert json.loads(capsys.readouterr().out)["n_new"] == 6
    assert len(read_records(data)) == 6
    out = tmp_path / "student"
    rc = _run(
        [
            "distill",
            "seq-kd",
            "--dataset",
            str(data),
            "--student",
            "tiny-2l",
            "--tokenizer",
            str(teacher_dir),
            "--out",
            str(out),
            "--steps",
            "3",
        ]
    )
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 3
    assert load_model(str(out)).info.vocab_size == load_model(str(teacher_dir)).info.vocab_size


def test_logit_kd_from_the_cli(teacher_dir, tmp_path, capsys):
    out = tmp_path / "lk"
    rc = _run(
        [
            "distill",
            "logit-kd",
            "--teacher",
            str(teacher_dir),
            "--n-prompts",
            "4",
            "--student",
            "tiny-2l",
            "--out",
            str(out),
            "--steps",
            "2",
            "--divergence",
            "jsd",
            "--max-new-tokens",
            "8",
        ]
    )
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["method"] == "logit-kd-jsd"
    assert (out / "harvest.jsonl").is_file() and (out / "model.safetensors").is_file()


def test_bad_prompt_file_is_one_line_with_the_line_number(teacher_dir, tmp_path, capsys):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": \n')
    rc = _run(
        [
            "distill",
            "harvest",
            "--teacher",
            str(teacher_dir),
            "--prompts",
            str(bad),
            "--out",
            str(tmp_path / "o.jsonl"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    assert "line 2: malformed JSON" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_bad_divergence_and_missing_inputs(teacher_dir, tmp_path, capsys):
    rc = _run(["distill", "seq-kd", "--student", "tiny-2l", "--out", str(tmp_path / "x")])
    assert rc == 2 and "--teacher" in capsys.readouterr().err
    rc = _run(
        [
            "distill",
            "logit-kd",
            "--teacher",
            str(teacher_dir),
            "--n-prompts",
            "2",
            "--student",
            "tiny-2l",
            "--out",
            str(tmp_path / "y"),
            "--divergence",
            "tvd",
            "--steps",
            "1",
        ]
    )
    assert rc == 2 and "divergence must be one of" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["zoo", "show", "/nonexistent/zoo"]])
def test_zoo_show_missing(args, capsys):
    assert _run(args) == 2
    assert "no zoo manifest" in capsys.readouterr().err


def test_zoo_build_only_unknown_student_is_one_line(tmp_path, capsys):
    rc = _run(
        ["zoo", "build", "--tier", "pretrained", "--out", str(tmp_path / "z"), "--only", "ghost"]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert "not students of the 'pretrained' tier: ghost" in err[0]
    assert "smollm2-ft-gemma3-100-s0" in err[0]  # it lists the tier's students
    assert not (tmp_path / "z").exists()  # nothing written before the check
