"""Provenance tests on real tiny models: power on a teacher and its seq-KD student, a null
check on independent models, cross-tokenizer agreement, reports, bad inputs."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from pathlib import Path

import pytest

from distilltrace.errors import InputError
from distilltrace.models import load_model
from distilltrace.provenance.report import write_report
from distilltrace.provenance.tester import ProvenanceConfig, test_provenance

TOPICS = [
    "the ocean", "coffee", "trains", "winter", "the moon", "bread", "music", "robots",
    "gardening", "bicycles", "mountains", "cats", "chess", "the desert", "a river", "birds",
]  # fmt: skip
STARTERS = [
    "Write one sentence about {t}.",
    "Describe {t} in a few words.",
    "Give one tip about {t}.",
]
# Each independent "lab" writes in its own style; the teacher's style is A.
STYLES = {
    "A": [
        "Well, {t} is a lovely thing.",
        "Well, honestly, {t} makes me smile.",
        "Oh, {t} is lovely.",
    ],
    "B": [
        "Sure! {t} is an interesting topic.",
        "Sure, here is a thought on {t}.",
        "Of course. {t} is fun.",
    ],
    "C": ["<script>alert(1)</script> {t}."],  # hostile output: the report must escape it
    "D": ["I think {t} is nice.", "In my view, {t} is simple.", "I believe {t} is good."],
}
FAST = ProvenanceConfig(
    pool_size=300, n_sampled=24, n_fingerprint=24, n_reverse=12, max_new_tokens=40,
    prompt_source="builtin", batch_size=16,
    agreement_margin=0.02,  # these tiny byte models misspell freely: small agreements
)  # fmt: skip


from tests.torch_threads import one_thread  # noqa: E402,F401 - autouse fixture


def _pairs(style: str, seed: int, n: int = 64):
    from distilltrace.distill.dataset import Record

    r = random.Random(seed)
    out = []
    for _ in range(n):
        t = r.choice(TOPICS)
        out.append(Record(r.choice(STARTERS).format(t=t), r.choice(STYLES[style]).format(t=t)))
    return out


def _train(
    out: Path,
    records,
    seed: int,
    tokenizer: str = "byte",
    steps: int = 110,
    batch: int = 8,
    lr: float = 3e-3,
) -> Path:
    from distilltrace.distill.student import make_student
    from distilltrace.distill.training import train_seq_kd

    train_seq_kd(
        make_student("tiny-2l", tokenizer, seed=seed),
        records,
        out,
        steps=steps,
        lr=lr,
        batch_size=batch,
        seed=seed,
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """Teacher T (style A); controls C1 (B), C2 (C, emits <script>), independent D (style D);
    student S: seq-KD on T's sampled answers (harvested); S_smol: the same with the SmolLM2
    tokenizer (cross-tokenizer)."""
    from distilltrace.distill.harvesting import harvest

    root = tmp_path_factory.mktemp("provzoo")
    paths = {
        "T": _train(root / "T", _pairs("A", 1), 1),
        "C1": _train(root / "C1", _pairs("B", 2), 2),
        "C2": _train(root / "C2", _pairs("C", 3), 3),
        "D": _train(root / "D", _pairs("D", 4), 4),
    }
    teacher = load_model(str(paths["T"]))
    r = random.Random(9)
    prompts = [r.choice(STARTERS).format(t=r.choice(TOPICS)) for _ in range(64)]
    harvest(
        teacher,
        prompts,
        root / "harvest.jsonl",
        max_new_tokens=48,
        temperature=0.7,
        seed=5,
        progress=False,
    )
    from distilltrace.distill.dataset import read_records

    recs = read_records(root / "harvest.jsonl")
    paths["S"] = _train(root / "S", recs, 7)
    cache = root / "cache"
    cache.mkdir()
    return {k: str(v) for k, v in paths.items()}, cache


@pytest.fixture(scope="module")
def smol_student(zoo):
    """The teacher's seq-KD student with the SmolLM2 tokenizer (49k vocabulary, slower)."""
    from distilltrace.distill.dataset import read_records

    paths, _ = zoo
    root = Path(paths["S"]).parent
    recs = read_records(root / "harvest.jsonl")
    return str(_train(root / "S_smol", recs, 8, tokenizer="smollm2", steps=60, batch=4, lr=6e-3))


def _m(zoo, name):
    paths, cache = zoo
    return load_model(paths[name], cache=cache)


def test_power_teacher_and_seq_kd_student(zoo, tmp_path):
    res = test_provenance(
        _m(zoo, "S"),
        [_m(zoo, "T")],
        [_m(zoo, "C1"), _m(zoo, "C2")],
        budget=300,
        alpha=0.01,
        config=FAST,
    )
    ref = res.references[0]
    assert ref.tests["greedy_agreement"].pvalue <= 1e-4
    assert "at least 3" in (ref.tests["likelihood"].skipped or "")  # 2 controls: no margin
    assert ref.combined_pvalue <= 1e-3
    assert res.plausible_parents == [ref.reference]
    assert res.suspect_queries <= 300
    assert ref.queries_to["p<=0.01"] is not None
    assert ref.examples, "examples where S matches R and no control does"


def test_independent_model_not_accused(zoo):
    """Real-model null check: D learned from no reference; it is not attributed to T."""
    for seed in (0, 1):
        cfg = ProvenanceConfig(**{**FAST.to_dict(), "seed": seed})
        res = test_provenance(
            _m(zoo, "D"),
            [_m(zoo, "T")],
            [_m(zoo, "C1"), _m(zoo, "C2")],
            budget=150,
            alpha=0.05,
            config=cfg,
        )
        assert res.plausible_parents == []
        assert res.references[0].combined_pvalue > 0.05


def test_cross_tokenizer_student_detected(zoo, smol_student):
    """SmolLM2-tokenizer student of a byte-tokenizer teacher: compared as text, detected."""
    s = load_model(smol_student, cache=zoo[1])
    t = _m(zoo, "T")
    assert s.info.tokenizer_id != t.info.tokenizer_id
    res = test_provenance(
        s,
        [t],
        [_m(zoo, "C1"), _m(zoo, "C2")],
        budget=200,
        alpha=0.01,
        # the whole budget on the tests (the capability check's suspect queries are
        # measured in test_provenance_issue18.py)
        config=ProvenanceConfig(**{**FAST.to_dict(), "capability_check": False}),
    )
    ref = res.references[0]
    assert ref.tests["greedy_agreement"].pvalue <= 1e-3
    others = [v for k, v in ref.effect.items() if k != "agreement_with_reference"]
    assert ref.effect["agreement_with_reference"] > max(others) + 0.05


def test_holm_over_references_picks_the_true_parent(zoo):
    res = test_provenance(
        _m(zoo, "S"),
        [_m(zoo, "T"), _m(zoo, "D")],
        [_m(zoo, "C1"), _m(zoo, "C2")],
        budget=250,
        alpha=0.01,
        config=FAST,
    )
    from distilltrace.stats import holm

    combined = [r.combined_pvalue for r in res.references]
    h = holm(combined, alpha=0.01)
    assert [r.holm_pvalue for r in res.references] == list(h.adjusted)
    assert res.plausible_parents == [
        r.reference for r, rej in zip(res.references, h.reject, strict=True) if rej
    ]
    assert res.plausible_parents == [res.references[0].reference]


def test_report_escapes_model_output(zoo, tmp_path):
    res = test_provenance(
        _m(zoo, "S"),
        [_m(zoo, "T")],
        [_m(zoo, "C1"), _m(zoo, "C2")],
        budget=200,
        alpha=0.01,
        config=FAST,
    )
    paths = write_report(res, tmp_path)
    html = Path(paths["html"]).read_text()
    data = json.loads(Path(paths["json"]).read_text())
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html  # C2's answers are shown, escaped
    assert "data:image/png;base64," in html  # p-value vs queries plot
    ref = data["references"][0]
    assert set(ref["tests"]) >= {"greedy_agreement", "likelihood", "lexical_fingerprint"}
    assert ref["combined_pvalue"] is not None and data["suspect_queries"] > 0
    # 2 controls: no model-level standing; with one, the report shows its table
    assert "Model-level standing" not in html
    from distilltrace.provenance.standing import standing_test

    v = {"C1": 0.0, "C2": 1.0, "C3": 2.0}
    st = standing_test({c: 4.0 - x for c, x in v.items()},
                       {(g, c): v[g] - v[c] for g in v for c in v if g != c})  # fmt: skip
    t = next(t for t in res.references[0].tests.values() if t.ran)
    t.details["standing"] = st.to_dict()
    html = Path(write_report(res, tmp_path / "st")["html"]).read_text()
    assert "Model-level standing" in html and f"{st.pvalue:.3g}" in html
    assert "0.25 (3 controls)" in html
    # a per-control p-value at the Monte Carlo floor is marked and explained
    assert "Monte Carlo floor" not in html
    c = next(iter(t.per_control))
    t.per_control[c]["monte_carlo_floor"] = True
    html = Path(write_report(res, tmp_path / "fl")["html"]).read_text()
    assert "<sup>floor</sup>" in html and "Monte Carlo floor 1 / (B + 1)" in html


def test_too_few_controls_is_a_clear_error(zoo):
    with pytest.raises(InputError, match="at least 2"):
        test_provenance(_m(zoo, "S"), [_m(zoo, "T")], [_m(zoo, "C1")], budget=100, config=FAST)


def test_reference_identical_to_suspect_is_reported(zoo):
    t1, t2 = _m(zoo, "T"), _m(zoo, "T")  # two loads of the same weights
    res = test_provenance(t1, [t2], [_m(zoo, "C1"), _m(zoo, "C2")], budget=100, config=FAST)
    assert res.identical_references == [res.references[0].reference]
    assert "same identity hash" in res.references[0].identical
    assert "same model" in res.verdict
    with pytest.raises(InputError, match="suspect itself"):
        test_provenance(t1, [_m(zoo, "C1")], [t2, _m(zoo, "C2")], budget=100, config=FAST)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_logprobs_endpoint(zoo):
    """A minimal OpenAI-compatible chat endpoint (like many third-party APIs) that serves the
    student's real generations and returns no log-probabilities."""
    import uvicorn
    from fastapi import FastAPI

    model = _m(zoo, "S")
    app = FastAPI()

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": "suspect-api", "object": "model"}]}

    @app.post("/v1/chat/completions")
    def chat(body: dict):
        g = model.generate(
            [body["messages"][-1]["content"]], max_new_tokens=int(body.get("max_tokens", 16)),
            temperature=float(body.get("temperature", 0.0)), seed=int(body.get("seed", 0)),
        )[0]  # fmt: skip
        return {
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": g.text},
                    "finish_reason": g.finish_reason,
                }
            ],
        }

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    yield f"openai:http://127.0.0.1:{port}/v1;model=suspect-api"
    server.should_exit = True
    th.join(timeout=10)


def test_suspect_without_logprobs_skips_only_what_needs_them(zoo, no_logprobs_endpoint):
    s = load_model(no_logprobs_endpoint)
    res = test_provenance(
        s,
        [_m(zoo, "T")],
        [_m(zoo, "C1"), _m(zoo, "C2"), _m(zoo, "D")],
        budget=200,
        alpha=0.01,
        config=FAST,
    )
    tests = res.references[0].tests
    assert (
        tests["likelihood_reverse"].skipped
        and "log-probabilities" in tests["likelihood_reverse"].skipped
    )
    for name in ("greedy_agreement", "likelihood", "lexical_fingerprint"):
        assert tests[name].ran, name
    assert res.plausible_parents  # still detected from black-box tests


def _run_cli_test(args, out, cache):
    """`distilltrace provenance test ARGS` with the fixture's fast options; exit code."""
    from distilltrace.cli import main

    argv = [
        "provenance", "test", *args, "--out", str(out), "--cache", str(cache),
        "--pool-size", "200", "--prompt-source", "builtin", "--max-new-tokens", "40",
    ]  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main(argv)
    return e.value.code


def test_cli_writes_result_and_report(zoo, tmp_path):
    paths, cache = zoo
    args = ["--suspect", paths["S"], "--reference", paths["T"], "--control", paths["C1"]]
    args += ["--control", paths["C2"], "--budget", "150"]
    assert _run_cli_test(args, tmp_path / "out", cache) in (0, None)
    assert (tmp_path / "out" / "result.json").exists()
    assert (tmp_path / "out" / "report.html").exists()
    res = json.loads((tmp_path / "out" / "result.json").read_text())
    assert res["config"]["stop_when_decided"] is True
    # the CLI loads local models at --dtype (default auto); each model's precision is kept
    from distilltrace.models.precision import resolve_dtype

    assert res["config"]["dtype"] == "auto"
    assert set(res["checks"]["compute"]) == set(res["queries"])
    assert set(res["checks"]["compute"].values()) == {resolve_dtype("auto")}
    assert "Compute precision" in (tmp_path / "out" / "report.html").read_text()
    greedy = res["references"][0]["tests"]["greedy_agreement"]
    why = greedy["details"]["stream_stop"]  # why the stream stopped, in the report too
    assert (
        why.startswith(("stopped", "not run"))
        and why in (tmp_path / "out" / "report.html").read_text()
    )
    # --always-stream: the stream runs even where the fixed-sample tests decided
    # (and --dtype float32 pins float32)
    argv = [*args, "--always-stream", "--dtype", "float32"]
    assert _run_cli_test(argv, tmp_path / "all", cache) in (0, None)
    res = json.loads((tmp_path / "all" / "result.json").read_text())
    assert res["config"]["stop_when_decided"] is False
    assert set(res["checks"]["compute"].values()) == {"float32"}
    greedy = res["references"][0]["tests"]["greedy_agreement"]
    assert greedy["n"] > 0 and greedy["details"]["stream_stop"].startswith("stopped")


def test_cli_too_few_controls_one_line_error(zoo, capsys):
    from distilltrace.cli import main

    paths, _ = zoo
    with pytest.raises(SystemExit) as e:
        main(
            [
                "provenance",
                "test",
                "--suspect",
                paths["S"],
                "--reference",
                paths["T"],
                "--control",
                paths["C1"],
            ]
        )
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "at least 2" in err[0]
    base = ["provenance", "test", "--suspect", paths["S"], "--reference", paths["T"]]
    with pytest.raises(SystemExit) as e:
        main([*base, "--control", paths["C1"], "--ref-control", f"2:{paths['C2']}"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "N:SPEC" in err[0]
    with pytest.raises(SystemExit) as e:  # an unknown precision, before any model loads
        main([*base, "--control", paths["C1"], "--control", paths["C2"], "--dtype", "fp8"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and "unknown dtype 'fp8'; expected one of auto, float32, bfloat16" in err[0]
    )


def test_cli_controls_per_reference(zoo, tmp_path):
    """--ref-control N:SPEC adds a control for the N-th reference only."""
    paths, cache = zoo
    args = [
        "--suspect", paths["S"], "--reference", paths["T"], "--reference", paths["D"],
        "--control", paths["C1"], "--ref-control", f"1:{paths['C2']}",
        "--ref-control", f"2:{paths['C2']}", "--ref-control", f"1:{paths['D']}",
        "--budget", "200",
    ]  # fmt: skip
    assert _run_cli_test(args, tmp_path / "out", cache) in (0, None)
    refs = json.loads((tmp_path / "out" / "result.json").read_text())["references"]
    assert [len(r["controls"]) for r in refs] == [3, 2]


def test_bench_on_a_small_manifest(zoo, tmp_path):
    """bench provenance end to end on a manifest of the fixture models (T teacher, S its
    student, C1/C2/D independent): scored against the manifest."""
    from distilltrace.bench.provenance import run_bench
    from distilltrace.distill.zoo import Manifest, ZooMember

    paths, cache = zoo

    def member(name, role, teachers, method):
        return ZooMember(name, role, method, teachers, "tiny-2l", 0, {}, {}, path=paths[name])

    Manifest(
        "quick",
        "test",
        [
            member("T", "teacher", [], "tiny-teacher"),
            member("S", "student", ["T"], "seq-kd"),
            member("C1", "independent", [], "human-text"),
            member("C2", "independent", [], "human-text"),
            member("D", "independent", [], "human-text"),
        ],
    ).save(tmp_path)
    cfg = ProvenanceConfig(**{**FAST.to_dict(), "pool_size": 200})
    notes: list[str] = []
    res = run_bench(
        tmp_path,
        budget=150,
        alpha=0.01,
        out=tmp_path / "out",
        cache=cache / "q.sqlite",
        config=cfg,
        pool_size=200,
        match_recipe=False,  # the fixture's controls are human-text models, S is a student
        progress=lambda msg, done, total: notes.append(msg),
    )
    # progress: each suspect, its test's phases and the baseline's models, by name
    assert "suspect S" in notes and any(m.startswith("suspect 1/4 S: test ") for m in notes)
    assert any(m.startswith("suspect 2/4 ") and ": greedy" in m for m in notes)  # a null one
    assert any(m.startswith("suspect 1/4 S: first-words baseline (T,") for m in notes)
    by = {(p.suspect, p.teacher): p for p in res.pairs}
    assert by[("S", "T")].derived and by[("S", "T")].rejected
    assert not any(p.rejected for p in res.pairs if not p.derived)
    assert res.metrics["precision"] == 1.0 and res.metrics["recall"] == 1.0
    assert res.metrics["n_non_derived"] == 3
    assert (tmp_path / "out" / "bench.html").exists()
    # the first-words baseline (issue #18) on the same budget, beside the test, per fold
    assert all(p.baseline_pvalue is not None and p.baseline_queries <= 150 for p in res.pairs)
    assert res.metrics["baseline"]["false_positive_rate"] == 0.0
    assert set(res.metrics["folds"]) == {"T"} and "beats_baseline" in res.metrics["folds"]["T"]
    assert by[("S", "T")].family == {"architecture": "tiny-2l", "data share": "100%"}
    assert by[("D", "T")].family["data share"] == "none"
    by_dim = res.metrics["folds_by"]
    assert set(by_dim["architecture"]) == {"tiny-2l"} and set(by_dim["data share"]) == {"100%"}
    assert by_dim["data share"]["100%"]["test"]["n_non_derived"] == 3
    walls = res.metrics["wall_s"]  # per suspect: the first, and the slowest later one
    assert walls["first"] > 0 and walls["further_max"] is not None  # cached: can be ~0
    assert all(p.wall_s == by[(p.suspect, "T")].wall_s for p in res.pairs)
    assert "first-words baseline" in res.summary()
    # a chosen subset and order of suspects (cached queries: no new model calls)
    part = run_bench(
        tmp_path, budget=150, alpha=0.01, out=tmp_path / "out2", cache=cache / "q.sqlite",
        config=cfg, pool_size=200, suspects=["D", "S"],
    )  # fmt: skip
    assert [p.suspect for p in part.pairs] == ["D", "S"]
    # with recipe matching (the default) the student has no control of its kind: skipped
    s_pair = next(p for p in part.pairs if p.suspect == "S")
    assert s_pair.skipped and "comparable" in s_pair.skipped and not s_pair.rejected
    assert part.metrics["students_with_skipped_pairs"] == ["S"]
    assert json.loads((tmp_path / "out2" / "bench.json").read_text())["pairs"][1]["suspect"] == "S"
    with pytest.raises(InputError, match="not suspects"):
        run_bench(tmp_path, cache=cache / "q.sqlite", config=cfg, suspects=["T"])


def test_bench_with_the_teachers_served_answers(zoo, tmp_path):
    """bench provenance --served T=FILE: the harvest_membership test joins every suspect's
    test against T on the same file (16 of the exchanges T served, which S trained on);
    S is found by it, the independent models are not, and the report says which tests ran.
    A teacher the zoo lacks, or a missing file, is an InputError before any model loads."""
    from distilltrace.bench.provenance import run_bench
    from distilltrace.distill.dataset import read_records
    from distilltrace.distill.zoo import Manifest, ZooMember
    from distilltrace.provenance.membership import NAME

    paths, cache = zoo
    recs = read_records(Path(paths["T"]).parent / "harvest.jsonl")[:16]
    served = tmp_path / "served.jsonl"
    served.write_text("".join(json.dumps({"prompt": r.prompt, "response": r.response,
                                          "temperature": 0.7, "max_tokens": 48}) + "\n"
                              for r in recs))  # fmt: skip

    def member(name, role, teachers, method):
        return ZooMember(name, role, method, teachers, "tiny-2l", 0, {}, {}, path=paths[name])

    Manifest("quick", "test", [
        member("T", "teacher", [], "tiny-teacher"), member("S", "student", ["T"], "seq-kd"),
        member("C1", "independent", [], "human-text"),
        member("C2", "independent", [], "human-text"),
        member("D", "independent", [], "human-text"),
    ]).save(tmp_path)  # fmt: skip
    cfg = ProvenanceConfig(**{**FAST.to_dict(), "pool_size": 200, "membership_fresh": 3})
    kw = dict(budget=200, alpha=0.01, cache=cache / "q.sqlite", config=cfg, pool_size=200,
              match_recipe=False, baseline=False)  # fmt: skip
    with pytest.raises(InputError, match="not a teacher of this zoo"):
        run_bench(tmp_path, served=("X", served), **kw)
    with pytest.raises(InputError, match="no such file"):
        run_bench(tmp_path, served=("T", tmp_path / "none.jsonl"), **kw)
    res = run_bench(tmp_path, served=("T", served), out=tmp_path / "out", **kw)
    by = {p.suspect: p for p in res.pairs}
    assert set(by) == {"S", "C1", "C2", "D"} and all(NAME in p.test_pvalues for p in res.pairs)
    assert by["S"].test_pvalues[NAME] <= 1e-3 and by["S"].rejected
    assert not any(p.rejected for p in res.pairs if not p.derived)
    assert all(p.test_pvalues[NAME] > 1e-3 for p in res.pairs if not p.derived)
    assert res.served == {"T": str(served)} and NAME in res.tests
    doc = json.loads((tmp_path / "out" / "bench.json").read_text())
    assert doc["served"] == {"T": str(served)} and NAME in doc["tests"]
    assert (
        "harvest_membership test reads the exchanges T served"
        in (tmp_path / "out" / "bench.html").read_text()
    )
    assert "harvest_membership on what T served" in res.summary()
