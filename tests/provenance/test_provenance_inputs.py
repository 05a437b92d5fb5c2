"""Input checks of `provenance test` and test_provenance, before any model is loaded or
queried: repeated controls and references (however spelled), a control that is the suspect
or its reference, an unusable --out, and a budget error whose minimum is really enough."""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import pytest

from distilltrace.errors import InputError
from distilltrace.models.base import (
    GENERATE,
    SCORE,
    Generation,
    ModelInfo,
    ScoredContinuation,
    TokenLogprob,
)
from distilltrace.provenance.tester import ProvenanceConfig, test_provenance

WORDS = "the a cat dog sun moon tea bread river stone hill song bird tree rain wind".split()
FAST = ProvenanceConfig(
    pool_size=200, n_sampled=12, n_fingerprint=12, n_reverse=12, max_new_tokens=12,
    prompt_source="builtin",
)  # fmt: skip


class Fake:
    """A pure-Python model: deterministic words per (identity, prompt, temperature)."""

    def __init__(self, name: str, identity: str | None = None, scores: bool = True):
        sup = frozenset({GENERATE, SCORE} if scores else {GENERATE})
        self.info = ModelInfo(name, name, "fake", "fake", 256, identity or name, sup)

    def _text(self, prompt: str, temperature: float) -> str:
        h = hashlib.sha256(f"{self.info.identity}|{prompt}|{temperature}".encode()).digest()
        return " ".join(WORDS[b % len(WORDS)] for b in h[:8])

    def generate(self, prompts, max_new_tokens=64, temperature=0.0, seed=0, chat=True, **kw):
        return [Generation(p, self._text(p, temperature), (), "stop") for p in prompts]

    def score(self, prompts, continuations, chat=True):
        return [
            ScoredContinuation(p, c, tuple(TokenLogprob(w, -1.0 - len(w) / 10) for w in c.split()))
            for p, c in zip(prompts, continuations, strict=True)
        ]


class Passed(Exception):
    """Raised from the progress callback: the run got past every input check."""


def _stop(msg: str, done: int, total: int) -> None:
    raise Passed(msg)


# ---------------------------------------------------------------- CLI helpers -------------


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """Model folders s, t, c1, c2, c3 (empty: never loaded unless load_model is faked), with
    the working directory at their parent so that relative specs work."""
    for n in ("s", "t", "c1", "c2", "c3"):
        (tmp_path / n).mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def loads(monkeypatch):
    """Fake load_model: records each spec; a Fake whose identity is the folder's real path."""
    calls: list[str] = []

    def fake_load(spec, cache=None, status=None, dtype=None):
        calls.append(spec)
        p = os.path.realpath(spec.strip())
        return Fake(Path(p).name, identity=p)

    monkeypatch.setattr("distilltrace.models.load_model", fake_load)
    return calls


def _cli(argv, capsys):
    """Run `distilltrace ARGV`; (exit code, stderr lines)."""
    from distilltrace.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    return e.value.code, err


def _test_argv(*args, out="out", budget=200):
    return [
        "provenance", "test", *args, "--out", str(out), "--budget", str(budget),
        "--pool-size", "200", "--prompt-source", "builtin", "--max-new-tokens", "12",
    ]  # fmt: skip


# ---------------------------------------------------------------- 1. repeated models ------


@pytest.mark.parametrize(
    "second",
    ["c1", "./c1/", "link-to-c1", "{tmp}/c1"],
    ids=["same-string", "dot-slash", "symlink", "absolute"],
)
def test_cli_repeated_control_counted_once(folders, loads, capsys, second):
    """--control c1 twice (as typed, ./c1/, a symlink, an absolute path) is one control:
    with no other control that is too few, said before any model is loaded."""
    (folders / "link-to-c1").symlink_to(folders / "c1")
    second = second.format(tmp=folders)
    code, err = _cli(
        _test_argv("--suspect", "s", "--reference", "t", "--control", "c1", "--control", second),
        capsys,
    )
    assert code == 2 and loads == []
    assert any("counted once" in ln and "warning" in ln for ln in err), err
    assert err[-1].startswith("error:") and "1 control(s)" in err[-1] and "at least 2" in err[-1]


@pytest.mark.parametrize(
    "a,b",
    [
        ("gemma3-270m", " bundled:gemma3-270m "),
        ("openai:http://127.0.0.1:9/v1;model=m", "openai:http://127.0.0.1:9/v1/ ; model = m "),
    ],
    ids=["bundled", "http"],
)
def test_cli_same_spec_with_other_spelling_counted_once(folders, loads, capsys, a, b):
    code, err = _cli(
        _test_argv("--suspect", "s", "--reference", "t", "--control", a, "--control", b), capsys
    )
    assert code == 2 and loads == []
    assert "counted once" in " ".join(err) and "1 control(s)" in err[-1]


@pytest.mark.parametrize("ctrl", ["./s/", "link-to-s"])
def test_cli_control_that_is_the_suspect_is_a_one_line_error(folders, loads, capsys, ctrl):
    (folders / "link-to-s").symlink_to(folders / "s")
    code, err = _cli(
        _test_argv("--suspect", "s", "--reference", "t", "--control", ctrl, "--control", "c2"),
        capsys,
    )
    assert code == 2 and loads == [] and len(err) == 1
    assert "suspect" in err[0] and ctrl in err[0]


def test_cli_control_that_is_the_reference_is_a_one_line_error(folders, loads, capsys):
    code, err = _cli(
        _test_argv("--suspect", "s", "--reference", "t", "--control", "c1", "--control", "t/"),
        capsys,
    )
    assert code == 2 and loads == [] and len(err) == 1
    assert "reference" in err[0] and "t/" in err[0]


def test_cli_repeated_reference_counted_once_with_its_controls(folders, loads, capsys):
    """--reference t and ./t/ are one reference; --ref-control 2:c3 joins its controls; each
    distinct folder is loaded once."""
    argv = _test_argv(
        "--suspect", "s", "--reference", "t", "--reference", "./t/", "--control", "c1",
        "--control", "c2", "--control", "./c2", "--ref-control", "2:c3",
    )  # fmt: skip
    code, err = _cli(argv, capsys)
    assert code in (0, None), err
    refs = json.loads((folders / "out" / "result.json").read_text())["references"]
    assert len(refs) == 1 and sorted(refs[0]["controls"]) == ["c1", "c2", "c3"]
    assert sorted(os.path.realpath(x) for x in loads) == sorted(
        str(folders / n) for n in ("s", "t", "c1", "c2", "c3")
    )


def test_cli_loads_each_model_once(folders, loads, capsys):
    """c3 is reference 2 and, spelled ./c3/, a control of reference 1 only: loaded once."""
    argv = _test_argv(
        "--suspect", "s", "--reference", "t", "--reference", "c3", "--control", "c1",
        "--control", "c2", "--ref-control", "1:./c3/",
    )  # fmt: skip
    code, err = _cli(argv, capsys)
    assert code in (0, None), err
    assert sorted(os.path.realpath(x) for x in loads) == sorted(
        str(folders / n) for n in ("s", "t", "c1", "c2", "c3")
    )
    refs = json.loads((folders / "out" / "result.json").read_text())["references"]
    assert [sorted(r["controls"]) for r in refs] == [["c1", "c2", "c3"], ["c1", "c2"]]


def test_library_repeated_control_counted_once():
    """The same control object twice, or two loads of the same weights (same identity hash)."""
    s, r, c1, c2 = Fake("S"), Fake("R"), Fake("C1"), Fake("C2")
    with pytest.raises(InputError, match="at least 2"):
        test_provenance(s, [r], [c1, c1], budget=200, config=FAST)
    with pytest.raises(InputError, match="at least 2"), pytest.warns(UserWarning, match="C1-copy"):
        test_provenance(s, [r], [c1, Fake("C1-copy", identity="C1")], budget=200, config=FAST)
    with pytest.warns(UserWarning, match="counted once"):
        res = test_provenance(s, [r], [c1, c2, Fake("C1b", "C1")], budget=200, config=FAST)
    assert res.references[0].controls == ["C1", "C2"]


def test_library_repeated_reference_counted_once():
    s, r, c1, c2, c3 = Fake("S"), Fake("R"), Fake("C1"), Fake("C2"), Fake("C3")
    with pytest.warns(UserWarning, match="counted once"):
        res = test_provenance(
            s, [r, Fake("R2", "R")], [[c1, c2], [c2, c3]], budget=200, config=FAST
        )
    assert [x.reference for x in res.references] == ["R"]
    assert res.references[0].controls == ["C1", "C2", "C3"]


def test_library_control_that_is_the_suspect_or_reference_is_an_error():
    s, r, c2 = Fake("S"), Fake("R"), Fake("C2")
    with pytest.raises(InputError, match="suspect"):
        test_provenance(s, [r], [Fake("S2", "S"), c2], budget=200, config=FAST)
    with pytest.raises(InputError, match="reference"):
        test_provenance(s, [r], [Fake("R2", "R"), c2], budget=200, config=FAST)


# ---------------------------------------------------------------- 2. --out checked first --


def _out_cases(tmp: Path) -> dict[str, Path]:
    (tmp / "a-file").write_text("x")
    return {"file": tmp / "a-file", "under-a-file": tmp / "a-file" / "sub"}


@pytest.mark.parametrize("case", ["file", "under-a-file"])
def test_cli_unusable_out_fails_before_any_model_is_loaded(folders, loads, capsys, case):
    out = _out_cases(folders)[case]
    argv = _test_argv(
        "--suspect", "s", "--reference", "t", "--control", "c1", "--control", "c2", out=out
    )
    code, err = _cli(argv, capsys)
    assert code == 2 and loads == [] and len(err) == 1
    assert "--out" in err[0] and str(out) in err[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_cli_read_only_out_fails_before_any_model_is_loaded(folders, loads, capsys):
    ro = folders / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        argv = _test_argv(
            "--suspect", "s", "--reference", "t", "--control", "c1", "--control", "c2",
            out=ro / "out",
        )  # fmt: skip
        code, err = _cli(argv, capsys)
    finally:
        ro.chmod(0o700)
    assert code == 2 and loads == [] and "--out" in err[0]


@pytest.mark.parametrize("case", ["file", "under-a-file"])
def test_cli_bench_unusable_out_fails_first(tmp_path, capsys, case):
    out = _out_cases(tmp_path)[case]
    code, err = _cli(
        ["bench", "provenance", "--zoo", str(tmp_path / "zoo"), "--out", str(out)], capsys
    )
    assert code == 2 and len(err) == 1 and "--out" in err[0]


def test_check_out_dir_accepts_new_folders_and_leaves_nothing(tmp_path):
    from distilltrace.provenance.tester import check_out_dir

    check_out_dir(tmp_path / "new" / "deeper")
    assert not (tmp_path / "new").exists()
    check_out_dir(tmp_path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="a file"):
        check_out_dir(_out_cases(tmp_path)["file"])
    with pytest.raises(InputError, match="a file"):
        check_out_dir(_out_cases(tmp_path)["under-a-file"])


# ---------------------------------------------------------------- 3. budget minimum -------


@pytest.mark.parametrize("n_refs,n_ctrls", [(1, 2), (1, 3), (2, 2), (3, 5)])
@pytest.mark.parametrize("scores", [True, False])
@pytest.mark.parametrize("small", [-3, 1, 9])
def test_budget_error_names_a_minimum_that_is_accepted(n_refs, n_ctrls, scores, small):
    """The budget named in 'at least N' passes the check; N - 1 does not."""
    s = Fake("S", scores=scores)
    refs = [Fake(f"R{i}") for i in range(n_refs)]
    ctrls = [Fake(f"C{i}") for i in range(n_ctrls)]

    def run(budget):
        test_provenance(s, refs, ctrls, budget=budget, config=FAST, progress=_stop)

    with pytest.raises(InputError, match="too small") as e:
        run(small)
    n = int(re.search(r"at least (\d+) suspect queries", str(e.value)).group(1))
    with pytest.raises(Passed):
        run(n)
    with pytest.raises(InputError, match=f"at least {n} suspect"):
        run(n - 1)


def test_every_budget_from_the_minimum_up_is_accepted():
    from distilltrace.provenance.tester import budget_plan, min_budget

    for n_refs in (1, 2, 4):
        for n_union in (2, 3, 8):
            for scores in (True, False):
                for cfg in (ProvenanceConfig(), FAST, ProvenanceConfig(identity_probes=False)):
                    n = min_budget(cfg, n_refs, n_union, scores)
                    ok = [budget_plan(cfg, b, n_refs, n_union, scores).ok for b in range(n + 400)]
                    assert all(ok[n:]) and not ok[n - 1], (n_refs, n_union, scores, n)


def test_cli_budget_minimum_is_accepted(folders, loads, capsys):
    args = ["--suspect", "s", "--reference", "t", "--control", "c1", "--control", "c2"]
    code, err = _cli(_test_argv(*args, budget=3), capsys)
    assert code == 2 and len(err) == 1
    n = int(re.search(r"at least (\d+) suspect queries", err[0]).group(1))
    code, err = _cli(_test_argv(*args, budget=n), capsys)
    assert code in (0, None), err
    assert json.loads((folders / "out" / "result.json").read_text())["budget"] == n


def test_fake_models_run_end_to_end():
    """The fakes above carry a whole run (so the checks are tested on real code paths)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = test_provenance(
            Fake("S"), [Fake("R")], [Fake("C1"), Fake("C2"), Fake("C3")], budget=200, config=FAST
        )
    assert res.suspect_queries <= 200 and res.references[0].controls == ["C1", "C2", "C3"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Four random-weight tiny transformers folders (about a second each)."""
    from distilltrace.models.tiny import make_tiny_model

    root = tmp_path_factory.mktemp("tiny")
    for i, n in enumerate(("s", "t", "c1", "c2")):
        make_tiny_model(root / n, n_layers=1, hidden_size=16, seed=i)
    return root


def test_cli_on_real_tiny_models_counts_a_repeated_control_once(tiny, tmp_path, capsys):
    """End to end on real (tiny) models: c1 given as c1, ./c1/ and a symlink is one control."""
    (tmp_path / "link").symlink_to(tiny / "c1")
    args = [
        "--suspect", str(tiny / "s"), "--reference", str(tiny / "t"),
        "--control", str(tiny / "c1"), "--control", f"{tiny}/./c1/", "--control",
        str(tmp_path / "link"), "--control", str(tiny / "c2"),
    ]  # fmt: skip
    args += ["--max-new-tokens", "4", "--pool-size", "40"]  # (the last of a repeated option)
    code, err = _cli(_test_argv(*args, out=tmp_path / "out", budget=80), capsys)
    assert code in (0, None), err
    assert sum("counted once" in ln for ln in err) == 2
    ref = json.loads((tmp_path / "out" / "result.json").read_text())["references"][0]
    assert ref["controls"] == ["c1", "c2"]


def test_cli_bench_unknown_suspect_is_one_line(tmp_path, capsys):
    from distilltrace.distill.zoo import Manifest, ZooMember

    (tmp_path / "zoo").mkdir()
    Manifest(
        "quick", "t", [ZooMember("T", "teacher", "bundled", [], "x", 0, {}, {}, spec="t")]
    ).save(tmp_path / "zoo")
    code, err = _cli(
        ["bench", "provenance", "--zoo", str(tmp_path / "zoo"), "--out", str(tmp_path / "o"),
         "--suspect", "ghost"], capsys,
    )  # fmt: skip
    assert code == 2 and len(err) == 1 and "not suspects in this zoo: ghost" in err[0]


@pytest.mark.parametrize(
    "served,msg",
    [("T", "--served takes TEACHER=FILE"), ("ghost=x.jsonl", "not a teacher of this zoo"),
     ("T=none.jsonl", "no such file")],
)  # fmt: skip
def test_cli_bench_served_is_checked_first(tmp_path, capsys, loads, served, msg):
    """bench provenance --served TEACHER=FILE: a malformed value, a teacher the zoo lacks or
    a missing file is one readable line before any model is loaded."""
    from distilltrace.distill.zoo import Manifest, ZooMember

    (tmp_path / "zoo").mkdir()
    Manifest("quick", "t", [
        ZooMember("T", "teacher", "bundled", [], "x", 0, {}, {}, spec="t"),
        ZooMember("S", "student", "seq-kd", ["T"], "x", 0, {}, {}, spec="s"),
    ]).save(tmp_path / "zoo")  # fmt: skip
    code, err = _cli(
        ["bench", "provenance", "--zoo", str(tmp_path / "zoo"), "--out", str(tmp_path / "o"),
         "--served", served], capsys,
    )  # fmt: skip
    assert code == 2 and len(err) == 1 and msg in err[0] and loads == []
