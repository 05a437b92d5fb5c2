"""Issue #18: the first-words agreement baseline (exact McNemar; calibration on null data),
degenerate and off-format suspect answers with the format pilot, the control capability
check (mismatched controls named, the verdict each decides, the "matched" rule), the
query cache across suspects, and the bench's baseline columns. The model tests use real
tiny Llama folders: a suspect trained on raw "Question: ...\\nAnswer: ..." text (its chat
template is not what it learned), and random-weight references and controls."""

from __future__ import annotations

import random

import numpy as np
import pytest

from distilltrace.errors import InputError
from distilltrace.models import load_model
from distilltrace.provenance.capability import (
    ControlCheck,
    Profile,
    deciding_controls,
    matched_controls,
    mismatch_reasons,
)
from distilltrace.provenance.config import DEFAULT_TESTS, ProvenanceConfig
from distilltrace.provenance.degenerate import degeneracy, degenerate_reason
from distilltrace.provenance.firstwords import (
    first_words,
    first_words_test,
    mcnemar_exact,
    starts_alike,
)
from distilltrace.provenance.result import TestResult
from distilltrace.provenance.suspect_format import FormattedModel, check_format
from distilltrace.provenance.tester import test_provenance

PATTERN = "Question: {prompt}\nAnswer: "
TOPICS = ["the ocean", "coffee", "trains", "winter", "the moon", "bread", "music", "robots"]
STARTERS = ["Write one sentence about {t}.", "Describe {t} in a few words.", "Give one tip about {t}."]  # fmt: skip
ANSWERS = ["Well, {t} is a lovely thing.", "Well, honestly, {t} makes me smile.", "Oh, {t} is lovely."]  # fmt: skip
FAST = dict(
    pool_size=300, n_sampled=24, n_fingerprint=24, n_reverse=12, max_new_tokens=32,
    prompt_source="builtin", n_capability=8, n_format_pilot=8, agreement_margin=0.02,
    tests=("greedy_agreement",),  # the fixed-sample tests are covered elsewhere: keep CPU low
)  # fmt: skip


from tests.torch_threads import one_thread  # noqa: E402,F401 - autouse fixture

# ---------------------------------------------------------------- first words ------------


def test_first_words_normalised_and_empty_never_agrees():
    assert first_words("Sure! Here's   the plan, friend.") == ("sure", "here", "s")
    assert starts_alike("Sure, here's the plan", "sure here s THE end")
    assert not starts_alike("", "")
    assert not starts_alike("...", "...")
    assert not starts_alike("Sure here is", "Sure there is")


def test_mcnemar_exact_is_the_binomial_tail_on_discordant_pairs():
    from scipy.stats import binomtest

    a = [1] * 30 + [0] * 10 + [1] * 50 + [0] * 10
    b = [0] * 30 + [1] * 10 + [1] * 50 + [0] * 10
    r = mcnemar_exact(a, b)
    assert (r.n, r.n10, r.n01) == (100, 30, 10)
    assert r.pvalue == pytest.approx(binomtest(30, 40, 0.5, alternative="greater").pvalue)
    assert mcnemar_exact([1, 0], [1, 0]).pvalue == 1.0  # no discordant pair
    with pytest.raises(ValueError):
        mcnemar_exact([1], [1, 0])


def _null_pairs(rng, n, p_joint):
    """n prompts of (A, B): A = S starts like R, B = C starts like R, with the joint law
    p_joint = (P11, P10, P01, P00)."""
    cells = rng.choice(4, size=n, p=p_joint)
    return (cells == 0) | (cells == 1), (cells == 0) | (cells == 2)


@pytest.mark.parametrize(
    "p_joint",
    [
        (0.15, 0.15, 0.15, 0.55),  # P(A) = P(B) = 0.3, positively correlated
        (0.05, 0.25, 0.25, 0.45),  # P(A) = P(B) = 0.3, negatively correlated
        (0.10, 0.10, 0.20, 0.60),  # P(A) = 0.2 < P(B) = 0.3 (inside the null)
    ],
)
def test_first_words_calibration_on_null_data(p_joint):
    """Null: P(A) <= P(B). 2,000 simulated null data sets of 300 prompts: the rejection
    rate at alpha = 0.01 and 0.05 stays at most alpha (plus 3 Monte Carlo SE)."""
    rng = np.random.default_rng(18)
    ps = np.array([mcnemar_exact(*_null_pairs(rng, 300, p_joint)).pvalue for _ in range(2000)])
    for alpha in (0.01, 0.05):
        fpr = float(np.mean(ps <= alpha))
        assert fpr <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / ps.size), (alpha, fpr)


def test_first_words_iut_calibration_and_power():
    """The intersection-union over 2 controls: calibrated when one control is as close
    to R as S is (the other farther); powerful when S is closer than both."""
    rng = np.random.default_rng(7)
    words = ["sure", "well", "oh", "the", "i", "here"]

    def answers(n, p_copy, ref):
        return [r if rng.random() < p_copy else rng.choice(words) + " x y" for r in ref]

    null_p, alt_p = [], []
    for _ in range(400):
        ref = [rng.choice(words) + " a b" for _ in range(300)]
        s = answers(300, 0.3, ref)
        c_close, c_far = answers(300, 0.3, ref), answers(300, 0.05, ref)
        null_p.append(first_words_test(s, ref, {"c1": c_close, "c2": c_far}).pvalue)
        alt = answers(300, 0.5, ref)
        alt_p.append(first_words_test(alt, ref, {"c1": c_close, "c2": c_far}).pvalue)
    assert np.mean(np.array(null_p) <= 0.05) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 400)
    assert np.median(alt_p) <= 1e-4
    res = first_words_test(s, ref, {"c1": c_close, "c2": c_far})
    assert res.name == "first_words" and set(res.per_control) == {"c1", "c2"}
    assert res.pvalue == max(v["pvalue"] for v in res.per_control.values())


def test_first_words_is_registered_but_not_run_by_default():
    from distilltrace.provenance.registry import registered

    assert "first_words" in registered() and "first_words" not in DEFAULT_TESTS


# ---------------------------------------------------------------- degenerate answers -----


@pytest.mark.parametrize(
    "text,prompt,why",
    [
        ("", "Tell me about cats.", "empty"),
        ("  .. ", "Tell me about cats.", "empty"),
        ("<|im_start|>assistant\nhello there", "Tell me about cats.", "template echo"),
        ("user\nTell me", "Tell me about cats.", "template echo"),
        (
            "Tell me about cats in a few words please",
            "Tell me about cats in a few words.",
            "template echo",
        ),  # fmt: skip
        ("is is is is a cat", "Tell me about cats.", "repetition"),
        ("cats are nice cats are nice cats are nice cats are nice", "x", "repetition"),
        ("ssssssssssssssss", "x", "repetition"),
        ("Cats are small furry animals that many people keep.", "Tell me about cats.", None),
    ],
)
def test_degenerate_reasons(text, prompt, why):
    assert degenerate_reason(text, prompt) == why


def test_degeneracy_rate_and_examples():
    d = degeneracy(["", "A fine answer here.", "no no no no"], ["p1", "p2", "p3"])
    assert d.n == 3 and d.rate == pytest.approx(2 / 3)
    assert d.reasons == {"empty": 1, "repetition": 1} and len(d.examples) == 2


def test_format_values_are_checked():
    for ok in ("chat", "raw", "auto", PATTERN):
        check_format(ok)
    with pytest.raises(InputError, match="pattern containing"):
        check_format("Question: ")
    with pytest.raises(InputError, match="not a pattern"):
        check_format("auto", ["no placeholder"])


# ---------------------------------------------------------------- capability rule --------


def test_mismatch_rule_and_the_verdict_it_decides():
    cfg = ProvenanceConfig()
    s = Profile(fit=-2.0, n_parameters=30_000_000, degenerate_rate=0.1)
    big = Profile(fit=-0.9, n_parameters=270_000_000, degenerate_rate=0.0)
    peer = Profile(fit=-2.1, n_parameters=30_000_000, degenerate_rate=0.2)
    broken = Profile(fit=-2.0, n_parameters=None, degenerate_rate=0.9)
    assert mismatch_reasons(s, peer, cfg) == []
    why = mismatch_reasons(s, big, cfg)
    assert len(why) == 2 and "better than the suspect's" in why[0] and "9x" in why[1]
    assert "degenerate answers 90%" in mismatch_reasons(s, broken, cfg)[0]
    check = ControlCheck(
        s,
        {"gemma": big, "b": peer, "c": peer},
        {"gemma": why, "b": [], "c": []},
        rule="r",
    )
    t = TestResult("greedy_agreement", "null", 1.0, per_control={
        "gemma": {"pvalue": 1.0}, "b": {"pvalue": 1e-6}, "c": {"pvalue": 0.006},
    })  # fmt: skip
    (row,) = deciding_controls({"greedy_agreement": t}, check)
    assert row["control"] == "gemma" and row["mismatched"]
    assert row["pvalue_without_it"] == 0.006
    assert "decided by control gemma" in row["message"] and "without it p = 0.006" in row["message"]
    assert matched_controls(check, ["gemma", "b", "c"]) == (["b", "c"], None)
    keep, warn = matched_controls(check, ["gemma", "b"])
    assert keep == ["b"] and "only 1" in warn
    keep, warn = matched_controls(check, ["gemma"])
    assert keep == ["gemma"] and "no control matches" in warn


# ---------------------------------------------------------------- real tiny models -------


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """qa: a tiny byte model trained on raw 'Question: ...\\nAnswer: ...' text (its
    ChatML template is off-format for it); r, c1, c2: random-weight models of the same
    size; big: a random-weight model about 7x larger."""
    from distilltrace.models.tiny import make_tiny_model

    root = tmp_path_factory.mktemp("issue18")
    r = random.Random(0)
    texts = []
    for _ in range(200):
        t = r.choice(TOPICS)
        texts.append(PATTERN.format(prompt=r.choice(STARTERS).format(t=t)) + r.choice(ANSWERS).format(t=t))  # fmt: skip
    paths = {"qa": make_tiny_model(root / "qa", train_texts=texts, train_steps=80, seed=3)}
    for name, seed in (("r", 11), ("c1", 12), ("c2", 13)):
        paths[name] = make_tiny_model(root / name, seed=seed)
    paths["big"] = make_tiny_model(root / "big", n_layers=4, hidden_size=128, seed=14)
    return {k: str(v) for k, v in paths.items()}, root / "cache.sqlite"


def _load(models, *names, cache=True):
    paths, cache_file = models
    return [load_model(paths[n], cache=cache_file if cache else None) for n in names]


def test_formatted_model_prompts_with_the_pattern(models):
    (qa,) = _load(models, "qa", cache=False)
    f = FormattedModel(qa, PATTERN)
    p = "Describe coffee in a few words."
    g = f.generate([p], max_new_tokens=16)[0]
    raw = qa.generate([PATTERN.format(prompt=p)], max_new_tokens=16, chat=False)[0]
    assert g.text == raw.text and g.prompt == p
    assert f.info.identity != qa.info.identity and f.info.extra["base_identity"] == qa.info.identity
    assert FormattedModel(qa, "chat").info.identity == qa.info.identity


def test_auto_format_pilot_in_the_tester(models):
    """The tiny QA suspect learned 'Question: ...\nAnswer: ...' as raw text: the pilot
    tries chat, raw and the pattern on prompts no test uses, keeps the least degenerate
    (the earlier on a tie), and its queries stay within the budget."""
    qa, r, c1, c2 = _load(models, "qa", "r", "c1", "c2")
    cfg = ProvenanceConfig(**FAST, suspect_format="auto", format_candidates=(PATTERN,))
    auto = test_provenance(qa, [r], [c1, c2], budget=150, config=cfg)
    fmt = auto.checks["suspect_format"]
    rates = {f: d["rate"] for f, d in fmt["pilot"].items()}
    assert set(rates) == {"chat", "raw", PATTERN} and fmt["requested"] == "auto"
    order = ["chat", "raw", PATTERN]
    assert fmt["chosen"] == min(order, key=lambda f: (rates[f], order.index(f)))
    assert auto.suspect_queries <= 150 and "suspect_answers" in auto.checks
    raw = test_provenance(qa, [r], [c1, c2], budget=150, config=ProvenanceConfig(**FAST, suspect_format="raw"))  # fmt: skip
    assert raw.checks["suspect_format"]["chosen"] == "raw"
    assert raw.checks["suspect_format"]["pilot"]["raw"]["reasons"].get("empty", 0) > 0


@pytest.mark.slow
def test_off_format_real_model_is_warned_and_auto_keeps_its_template():
    """The bundled SmolLM2 answers raw questions with <|im_end|> first (docs/models.md):
    prompted raw, its answers are empty and the pilot says so; "auto" keeps its template."""
    from distilltrace.provenance.probes import builtin_prompts
    from distilltrace.provenance.suspect_format import pilot

    smol = load_model("smollm2-135m-instruct")
    prompts = builtin_prompts(6, seed=5)
    _, found, warns = pilot(smol, "raw", prompts, 16)
    assert found["raw"].rate > 0.5 and any("mostly degenerate" in w for w in warns)
    chosen, found, warns = pilot(smol, "auto", prompts, 16)
    assert chosen.info.extra["prompt_format"] == "chat" and found["chat"].rate < found["raw"].rate
    assert warns == []


def test_mismatched_control_is_named_and_matched_rule_leaves_it_out(models):
    qa, r, c1, c2, big = _load(models, "qa", "r", "c1", "c2", "big")
    # judge size only here (random-weight controls differ from the trained suspect in fit
    # and in degenerate answers, which the unit test of the rule covers)
    base = dict(FAST, capability_fit_tol=100.0, capability_degenerate_tol=1.0)
    base["suspect_format"] = PATTERN  # the suspect answers coherently in its own format
    res = test_provenance(qa, [r], [c1, c2, big], budget=150, config=ProvenanceConfig(**base))
    ctl = res.checks["controls"]
    assert ctl["mismatch"]["big"] and "parameters" in ctl["mismatch"]["big"][0]
    assert sorted(ctl["matched"]) == ["c1", "c2"]
    assert any(w.startswith("control big is not capability-matched") for w in res.warnings)
    ref = res.references[0]
    assert {d["test"] for d in ref.deciding_controls} >= {"greedy_agreement"}
    assert ref.controls == ["c1", "c2", "big"]
    m = test_provenance(
        qa, [r], [c1, c2, big], budget=150,
        config=ProvenanceConfig(**base, control_rule="matched"),
    )  # fmt: skip
    assert m.references[0].controls == ["c1", "c2"]
    assert set(m.references[0].tests["greedy_agreement"].per_control) == {"c1", "c2"}
    assert ctl["suspect"]["fit"] is not None and ctl["controls"]["big"]["n_parameters"] > 0


def test_matched_rule_null_check_on_independent_models(models):
    """Null check on real models: random-weight suspects derive from no reference; under
    the matched rule with first_words added they are not attributed at alpha = 0.05."""
    from distilltrace.models.tiny import make_tiny_model

    paths, cache = models
    r, c1, c2, big = _load(models, "r", "c1", "c2", "big")
    fast = {**FAST, "tests": ("greedy_agreement", "first_words")}
    cfg = ProvenanceConfig(**fast, control_rule="matched", n_first_words=60)
    for seed in (21, 22):
        p = make_tiny_model(f"{cache.parent}/null{seed}", seed=seed)
        res = test_provenance(load_model(str(p)), [r], [c1, c2, big], budget=150, alpha=0.05, config=cfg)  # fmt: skip
        assert res.plausible_parents == [], res.references[0].combined_pvalue
        assert res.references[0].tests["first_words"].ran


def test_second_suspect_reuses_reference_and_control_queries(models, tmp_path):
    """The query cache: a second suspect against the same reference and controls makes
    no new reference or control generation for the prompts they already answered."""
    from distilltrace.models.cache import CachedModel

    paths, _ = models
    cf = tmp_path / "q.sqlite"
    cfg = ProvenanceConfig(**FAST)
    r, c1, c2 = (load_model(paths[n], cache=cf) for n in ("r", "c1", "c2"))
    test_provenance(load_model(paths["qa"], cache=cf), [r], [c1, c2], budget=120, config=cfg)
    r2, d1, d2 = (load_model(paths[n], cache=cf) for n in ("r", "c1", "c2"))
    assert all(isinstance(m, CachedModel) for m in (r2, d1, d2))
    test_provenance(load_model(paths["big"], cache=cf), [r2], [d1, d2], budget=120, config=cfg)
    new = sum(m.stats.misses for m in (r2, d1, d2))
    hits = sum(m.stats.hits for m in (r2, d1, d2))
    assert hits > 0 and new <= hits // 4, (hits, new)


def test_cli_bad_format_and_rule_are_one_line_errors(models, capsys, tmp_path):
    from distilltrace.cli import main

    paths, _ = models
    base = ["provenance", "test", "--suspect", paths["qa"], "--reference", paths["r"]]
    base += ["--control", paths["c1"], "--control", paths["c2"], "--out", str(tmp_path / "o")]
    for extra, msg in (
        (["--suspect-format", "Q: "], "pattern containing"),
        (["--control-rule", "best"], "control_rule"),
        (["--test", "nope"], "unknown tests"),
    ):
        with pytest.raises(SystemExit) as e:
            main([*base, *extra])
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert e.value.code == 2 and len(err) == 1 and msg in err[0], err


def test_cli_suspect_format_pattern_and_warnings(models, capsys, tmp_path):
    import json

    from distilltrace.cli import main

    paths, _ = models
    argv = [
        "provenance", "test", "--suspect", paths["qa"], "--reference", paths["r"],
        "--control", paths["c1"], "--control", paths["c2"], "--out", str(tmp_path / "o"),
        "--cache", str(tmp_path / "c"), "--budget", "120", "--pool-size", "200",
        "--prompt-source", "builtin", "--max-new-tokens", "24",
        "--suspect-format", "Question: {prompt}\\nAnswer: ", "--test", "greedy_agreement",
    ]  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code in (0, None)
    data = json.loads((tmp_path / "o" / "result.json").read_text())
    assert data["checks"]["suspect_format"]["chosen"] == PATTERN
    assert set(data["references"][0]["tests"]) == {"greedy_agreement"}
    assert data["references"][0]["per_family"]["builtin"]["n"] > 0


def _pair(s, t, derived, rejected, base_rejected, family):
    from distilltrace.bench.provenance import PairOutcome

    p = 1e-6 if rejected else 0.5
    bp = 1e-6 if base_rejected else 0.5
    return PairOutcome(
        s, t, derived, p, p, rejected, {}, 100, None, None, [], baseline_pvalue=bp,
        baseline_holm_pvalue=bp, baseline_rejected=base_rejected, family=family,
    )  # fmt: skip


def test_family_folds_per_architecture_and_data_share():
    from distilltrace.bench.provenance import family_folds, score_pairs

    arch = {"architecture": "smollm2"}
    pairs = [
        _pair("s100", "G", True, True, True, arch | {"data share": "100%"}),
        _pair("s10", "G", True, True, False, arch | {"data share": "10%"}),
        _pair("c0", "G", False, False, False, arch | {"data share": "none"}),
        _pair("g100", "S", True, False, False, {"architecture": "gemma", "data share": "100%"}),
        _pair("gc", "S", False, True, False, {"architecture": "gemma", "data share": "none"}),
    ]
    f = family_folds(pairs, 0.01)
    assert set(f) == {"architecture", "data share"}
    assert f["architecture"]["smollm2"]["beats_baseline"] is True  # recall 1 vs 0.5
    assert f["architecture"]["gemma"]["test"]["false_positive_rate"] == 1.0
    assert f["architecture"]["gemma"]["beats_baseline"] is False  # an FPR above alpha loses
    # a data-share fold: derived pairs at that share plus every non-derived pair
    ten = f["data share"]["10%"]
    assert ten["test"]["n_derived"] == 1 and ten["test"]["n_non_derived"] == 2
    assert ten["baseline"]["recall"] == 0.0 and ten["beats_baseline"] is False  # gc's FP
    m = score_pairs(pairs, 0.01)
    assert m["folds_by"] == f and set(m["folds"]) == {"G", "S"}


def test_pair_family_and_no_pair_against_the_base(tmp_path):
    from distilltrace.bench.provenance import _control_map, pair_family
    from distilltrace.distill.zoo import Manifest, ZooMember

    def member(name, role, method, teachers=(), base=None, train=None):
        arch = base or "bundled"
        return ZooMember(name, role, method, list(teachers), arch, 0, {}, train or {},
                         spec=name if role == "teacher" else None,
                         path=None if role == "teacher" else name, base=base)  # fmt: skip

    man = Manifest("pretrained", "t", [
        member("S", "teacher", "bundled"), member("G", "teacher", "bundled"),
        member("s-g-100", "student", "seq-kd", ["G"], "S"),
        member("s-g-10", "student", "mix-sharegpt", ["G"], "S", {"teacher_share": 0.1}),
        member("s-c0", "independent", "sharegpt", base="S"),
        member("s-c1", "independent", "sharegpt", base="S"),
    ])  # fmt: skip
    assert pair_family(man, "s-g-10", "G") == {"architecture": "S", "data share": "10%"}
    assert pair_family(man, "s-g-100", "G")["data share"] == "100%"
    assert pair_family(man, "s-c0", "G")["data share"] == "none"
    ctrl, _ = _control_map(man, "s-g-100", 0, True, False, None)
    assert ctrl["G"] == ["s-c0", "s-c1"]  # same base, same kind of data, not derived from G
    assert ctrl["S"] == []  # every model here starts from S's weights
    # run_bench makes no (suspect, its own base) pair; the other teacher's pair is skipped
    # here (no comparable controls), so no model is loaded
    from distilltrace.bench.provenance import run_bench

    Manifest("pretrained", "t", man.models[:3]).save(tmp_path)
    res = run_bench(tmp_path, budget=50)
    assert [(p.suspect, p.teacher) for p in res.pairs] == [("s-g-100", "G")]
    assert res.pairs[0].skipped and res.pairs[0].family["data share"] == "100%"


def test_progress_names_each_model_in_the_long_phases(models):
    """A long phase reports each model it works on (a log shows where a run is)."""
    qa, r, c1, c2 = _load(models, "qa", "r", "c1", "c2")
    notes = []
    cfg = ProvenanceConfig(
        **{**FAST, "tests": ("greedy_agreement", "likelihood_reverse"), "target_p": 1e-30}
    )
    test_provenance(qa, [r], [c1, c2], budget=150, config=cfg,
                    progress=lambda msg, done, total: notes.append((msg, done, total)))  # fmt: skip
    msgs = [m for m, _, _ in notes]
    caps = [n for n in notes if n[0].startswith("control capability (")]
    assert [(d, t) for _, d, t in caps] == [(0, 2), (1, 2)]
    gens = [m for m, _, _ in notes if m.startswith(("sampled outputs (", "reference outputs ("))]
    # the reference's outputs (the suspect scores them), the controls' for the capability
    # gap: each model named as it generates; the suspect generates none for this test
    assert sorted(gens) == sorted(
        [f"reference outputs ({r.info.name})"]
        + [f"sampled outputs ({c.info.name})" for c in (c1, c2)]
    )
    tests = [n for n in notes if n[0].startswith("test ")]
    assert [m for m, _, _ in tests] == [f"test likelihood_reverse (reference {r.info.name})"]
    first = msgs.index
    assert first(caps[0][0]) < first(tests[0][0]) < first(gens[0]) < first("greedy probes")


def test_long_generation_and_scoring_note_progress_per_cache_piece(models):
    """Generating or scoring hundreds of texts takes minutes on a CPU: the session notes
    progress before each piece the model's query cache computes at a time, and at the end;
    the results are those of one call on the model without a cache."""
    from distilltrace.provenance.session import QueryCounter, QueryStore, Session

    (r,) = _load(models, "r")
    r.chunk_size = 4
    cfg = ProvenanceConfig(max_new_tokens=8, sample_temperature=0.9, seed=5)
    sess = Session({"r": r}, cfg, QueryCounter(), QueryStore())
    notes = []
    sess.note = lambda *a: notes.append(a)
    prompts = [s.format(t=t) for s in STARTERS[:2] for t in TOPICS[:5]]
    texts = sess.sampled("r", prompts, "reference outputs")
    assert notes == [("reference outputs (r)", i, 10) for i in (0, 4, 8, 10)]
    notes.clear()
    scores = sess.scores("r", prompts, texts)
    assert notes == [("scoring (r)", i, 10) for i in (0, 4, 8, 10)]
    notes.clear()
    assert list(sess.sampled("r", prompts)) == texts and notes == []  # memoised: no note
    (plain,) = _load(models, "r", cache=False)
    gens = plain.generate(prompts, max_new_tokens=8, temperature=0.9, seed=5)
    assert [g.text for g in gens] == texts
    scored = plain.score(prompts, texts)
    whole = [s.total_logprob / max(1, len(t)) for s, t in zip(scored, texts, strict=True)]
    assert np.allclose(scores, whole, atol=1e-5)
    one = Session({"r": plain}, cfg, QueryCounter(), QueryStore())
    one.note = lambda *a: notes.append(a)
    one.scores("r", prompts, texts)
    assert notes == [("scoring (r)", 0, 10)]  # no cache: one call, one note
