"""The marks CLI: keygen, detect, radioactivity; errors as one line; secrets never printed."""

from __future__ import annotations

import json

import pytest

from distilltrace.cli import main
from distilltrace.marks.keys import load_watermark


def run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from distilltrace.models.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("cli") / "tiny", seed=6)


@pytest.mark.slow
def test_keygen_detect_radioactivity(tmp_path, tiny_folder, capsys):
    from distilltrace.models import load_model

    key = tmp_path / "key.json"
    code, out, err = run(
        [
            "marks",
            "keygen",
            "--out",
            str(key),
            "--model",
            str(tiny_folder),
            "--scheme",
            "greenlist",
            "--delta",
            "4",
            "--context-width",
            "2",
        ],
        capsys,
    )
    assert code == 0, err
    secret = json.loads(key.read_text())["secret"]
    wm = load_watermark(key)
    assert wm.key_id in out and secret not in out + err
    code, _, err = run(["marks", "keygen", "--out", str(key), "--model", str(tiny_folder)], capsys)
    assert code == 2 and "refusing to overwrite" in err and "Traceback" not in err

    model = load_model(str(tiny_folder))
    prompts = [f"Question {i}?" for i in range(6)]
    gens = model.generate(
        prompts, 120, temperature=1.0, logits_processors=wm.logits_processors(model)
    )
    marked = tmp_path / "marked.jsonl"
    rows = [{"prompt": p, "response": g.text} for p, g in zip(prompts, gens, strict=True)]
    rows.append({"prompt": "x", "response": "<script>a"})  # too short to test
    marked.write_text("".join(json.dumps(r) + "\n" for r in rows))

    code, out, err = run(
        [
            "marks",
            "detect",
            "--key",
            str(key),
            str(marked),
            "--prompt-column",
            "prompt",
            "--out",
            str(tmp_path / "det"),
        ],
        capsys,
    )
    assert code == 0, err
    assert "marked" in out and secret not in out + err
    res = json.loads((tmp_path / "det" / "result.json").read_text())
    assert res["pooled"]["verdict"] == "marked" and res["n_texts"] == 7
    assert res["texts"][-1]["test"]["verdict"] == "not enough evidence"
    html = (tmp_path / "det" / "report.html").read_text()
    assert "<script>a" not in html and "&lt;script&gt;a" in html and secret not in html

    txt = tmp_path / "plain.txt"
    txt.write_text("A human wrote this sentence, and nothing about it is marked at all. " * 3)
    code, out, err = run(["marks", "detect", "--key", str(key), str(txt)], capsys)
    assert code == 0 and "no evidence" in out

    code, out, err = run(
        [
            "marks",
            "radioactivity",
            "--key",
            str(key),
            "--suspect",
            str(tiny_folder),
            "--mode",
            "both",
            "--marked",
            str(marked),
            "--max-new-tokens",
            "30",
            "--out",
            str(tmp_path / "radio"),
        ],
        capsys,
    )
    assert code == 0, err
    res = json.loads((tmp_path / "radio" / "result.json").read_text())
    assert [r["mode"] for r in res["results"]] == ["closed", "open"]
    assert res["holm_across_modes"] is not None
    html = (tmp_path / "radio" / "report.html").read_text()
    assert "<script>a" not in html and secret not in html + json.dumps(res)

    # closed mode with our own model: only tokens it was unsure of are scored
    args = ["marks", "radioactivity", "--key", str(key), "--suspect", str(tiny_folder)]
    args += ["--marked", str(marked), "--reference", str(tiny_folder), "--max-new-tokens", "30"]
    args += ["--max-reference-prob", "0.001"]  # a random byte model gives every token ~1/260
    code, out, err = run([*args, "--out", str(tmp_path / "radio-ref")], capsys)
    assert code == 0, err
    assert "our model sure" in out
    (closed,) = json.loads((tmp_path / "radio-ref" / "result.json").read_text())["results"]
    assert closed["settings"]["max_reference_prob"] == 0.001
    t = closed["test"]
    assert t["n_unselected"] > 0
    assert t["n_tokens"] == sum(t[k] for k in ("n_scored", "n_duplicate", "n_excluded",
                                               "n_filtered", "n_unselected"))  # fmt: skip

    # prefix mode: our marked answers cut every 3 tokens, the suspect's prompt format given
    args = ["marks", "radioactivity", "--key", str(key), "--suspect", str(tiny_folder)]
    args += ["--mode", "prefix", "--marked", str(marked), "--stride", "3", "--prefix-tokens", "2"]
    code, out, err = run([*args, "--prefix-format", r"Q: {prompt}\nA: ", "--out",
                          str(tmp_path / "radio-prefix")], capsys)  # fmt: skip
    assert code == 0, err
    (pre,) = json.loads((tmp_path / "radio-prefix" / "result.json").read_text())["results"]
    assert pre["mode"] == "prefix" and pre["settings"]["prompt_format"] == "Q: {prompt}\nA: "
    assert pre["settings"]["stride"] == 3 and pre["test"]["n_scored"] > 0
    assert pre["settings"]["new_tokens"] == 2 and "not probed or dropped" in out
    assert "not probed or dropped" in (tmp_path / "radio-prefix" / "report.html").read_text()
    code, out, err = run([*args[:-6], "--out", str(tmp_path / "x")], capsys)
    assert code != 0 and "prefix mode needs --marked" in err

    # logprobs mode: the suspect's top-k log-probabilities along its answers, q - p weights
    args = ["marks", "radioactivity", "--key", str(key), "--suspect", str(tiny_folder)]
    args += ["--mode", "logprobs", "--marked", str(marked), "--reference", str(tiny_folder)]
    args += ["--top-logprobs", "4", "--max-new-tokens", "20", "--keep-prompt-windows"]
    code, out, err = run([*args, "--out", str(tmp_path / "radio-lp")], capsys)
    assert code == 0, err
    (lp,) = json.loads((tmp_path / "radio-lp" / "result.json").read_text())["results"]
    assert lp["mode"] == "logprobs" and lp["settings"]["top_k"] == 4
    assert lp["settings"]["weights"].startswith("q - p") and lp["test"]["n_scored"] > 0
    assert lp["settings"]["prompt_windows_excluded"] is False and "logprobs:" in out
    html = (tmp_path / "radio-lp" / "report.html").read_text()
    assert "logprobs" in html and "<script>a" not in html and secret not in html


def test_cli_bad_inputs(tmp_path, capsys, byte_binding):
    from distilltrace.marks.keys import make_watermark, new_secret, write_key_file
    from distilltrace.marks.schemes import SchemeParams

    secret = new_secret()
    key = write_key_file(
        tmp_path / "k.json", make_watermark(SchemeParams(), byte_binding, secret), secret
    )
    f = tmp_path / "t.jsonl"
    f.write_text('{"response": "hello"}\n')
    code, _, err = run(["marks", "detect", "--key", str(key), str(f), "--column", "nope"], capsys)
    assert code == 2 and "no column 'nope'" in err
    code, _, err = run(["marks", "detect", "--key", str(key), str(f)], capsys)
    assert code == 2 and "--tokenizer" in err  # the key names no loadable tokenizer
    code, _, err = run(["marks", "detect", "--key", str(tmp_path / "none.json"), str(f)], capsys)
    assert code == 2 and "not found" in err
    (tmp_path / "bad.jsonl").write_text("{oops\n")
    code, _, err = run(["marks", "detect", "--key", str(key), str(tmp_path / "bad.jsonl")], capsys)
    assert code == 2 and "bad.jsonl:1" in err
    code, _, err = run(
        [
            "marks",
            "radioactivity",
            "--key",
            str(key),
            "--suspect",
            "x",
            "--mode",
            "sideways",
            "--out",
            str(tmp_path / "o"),
        ],
        capsys,
    )
    assert code == 2 and "--mode" in err
    for text in (err,):
        assert secret.hex() not in text
