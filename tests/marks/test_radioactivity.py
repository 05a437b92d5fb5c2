"""Radioactivity end to end on tiny models: marked teacher -> harvest -> distilled student."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from distilltrace.errors import CapabilityError, InputError
from distilltrace.marks.detect import MARKED
from distilltrace.marks.keys import make_watermark
from distilltrace.marks.radioactivity import radioactivity_closed, radioactivity_open
from distilltrace.marks.schemes import SchemeParams, TokenizerBinding, TokenizerMismatchError
from distilltrace.marks.secret import Secret


class PrintableAscii:
    """Keeps the byte teacher's outputs printable ASCII (so text round-trips exactly)."""

    def __call__(self, input_ids, scores):
        mask = torch.full_like(scores, float("-inf"))
        mask[:, 5 + 32 : 5 + 127] = 0.0
        return scores + mask


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from distilltrace.distill.harvesting import harvest
    from distilltrace.distill.prompts import generate_prompts
    from distilltrace.distill.student import make_student
    from distilltrace.distill.training import train_seq_kd
    from distilltrace.models import load_model
    from distilltrace.models.tiny import make_tiny_model

    d = tmp_path_factory.mktemp("radio")
    teacher = load_model(str(make_tiny_model(d / "teacher", seed=5)))
    wm = make_watermark(  # a fixed secret: the whole pipeline is then deterministic
        SchemeParams(scheme="greenlist", context_width=1, delta=5.0),
        TokenizerBinding.of_model(teacher),
        Secret(bytes(range(32))),
    )
    prompts = [p.text for p in generate_prompts(120, seed=0)]
    # 40 prompts a call (not 8): the same records byte for byte (each prompt's sampler is
    # seeded by the prompt), in about half the time
    kw = {"max_new_tokens": 100, "temperature": 1.0, "progress": False, "batch_size": 40}
    procs = [PrintableAscii(), *wm.logits_processors(teacher)]
    harvest(teacher, prompts, d / "marked.jsonl", logits_processors=procs, **kw)
    harvest(teacher, prompts, d / "plain.jsonl", logits_processors=[PrintableAscii()], **kw)
    students = {}
    for name in ("marked", "plain"):
        st = make_student("tiny-2l", tokenizer="byte", seed=1)
        train_seq_kd(
            st,
            d / f"{name}.jsonl",
            d / f"s_{name}",
            epochs=16,
            lr=2e-2,
            batch_size=32,
            progress=False,
        )
        students[name] = load_model(str(d / f"s_{name}"))
    rows = [json.loads(line) for line in (d / "marked.jsonl").read_text().splitlines()]
    return wm, students, rows, teacher


@pytest.mark.slow
def test_open_mode_detects_the_student_of_marked_data_and_not_the_other(setup):
    wm, students, rows, _ = setup
    texts, prompts = [r["response"] for r in rows], [r["prompt"] for r in rows]
    hit = radioactivity_open(wm, students["marked"], texts, marked_prompts=prompts)
    assert hit.test.verdict == MARKED and hit.test.pvalue < 1e-4, hit.test
    assert hit.test.n_repeated_window > 0 and hit.test.n_duplicate > 0
    clean = radioactivity_open(wm, students["plain"], texts, marked_prompts=prompts)
    assert clean.test.pvalue is not None and clean.test.pvalue > 1e-3, clean.test
    d = hit.to_dict()
    assert d["mode"] == "open" and d["key"]["key_id"] == wm.key_id


@pytest.mark.slow
def test_open_mode_with_prompts_is_calibrated_under_random_keys(setup, make_wm):
    """H0 (the suspect's weights do not depend on the key): open mode reading each response
    after its prompt (starts > 0, the custody build's reading), scored under 200 keys that
    marked nothing, with and without the supervised window filter. Both students qualify:
    the plain one saw no marked text, and the marked one was trained under another key, so
    its predictions are independent of every key drawn here. FPR at 1e-2 within binomial
    slack (mean 2, at most 6 of 200) and a one-sided KS test against uniform."""
    from scipy import stats

    from distilltrace.marks.radioactivity import frequent_window_seeds, read_open, score_open

    wm, students, rows, _ = setup
    texts, prompts = [r["response"] for r in rows], [r["prompt"] for r in rows]
    for name in ("plain", "marked"):
        s = students[name]
        reading = read_open(s, texts, marked_prompts=prompts)
        assert min(reading.starts) > 0  # the prompts are in the context, not scored
        for filtered in (False, True):
            ps = []
            for _ in range(200):
                key = make_wm(context_width=1)
                allowed = frequent_window_seeds(key, s.tokenizer, texts, 5) if filtered else None
                t = score_open(key, reading, allowed_seeds=allowed)
                assert t.n_scored >= 50, t  # the null is exercised, not skipped
                ps.append(t.pvalue)
            fp = sum(p <= 0.01 for p in ps)
            assert fp <= 6, (name, filtered, fp)
            # one-sided: too many small p-values (the exact binomial test's discrete
            # p-values sit above uniform, which a two-sided KS would also flag)
            ks = stats.kstest(ps, "uniform", alternative="greater")
            assert ks.pvalue > 1e-3, (name, filtered, ks)


@pytest.mark.slow
def test_closed_mode_runs_with_exclusion_and_filter(setup):
    wm, students, rows, _ = setup
    prompts = [r["prompt"] for r in rows[:10]]
    res = radioactivity_closed(
        wm,
        students["plain"],
        prompts,
        students["plain"].tokenizer,
        marked_texts=[r["response"] for r in rows],
        filter_min_count=5,
        max_new_tokens=40,
    )
    t = res.test
    assert t.n_tokens == t.n_scored + t.n_duplicate + t.n_excluded + t.n_filtered
    assert res.settings["n_allowed_windows"] > 0
    assert t.pvalue is None or t.pvalue > 1e-3
    with pytest.raises(InputError, match="marked texts"):
        radioactivity_closed(
            wm, students["plain"], prompts, students["plain"].tokenizer, filter_min_count=2
        )


@pytest.mark.slow
def test_open_mode_bad_inputs(setup, tmp_path):
    from distilltrace.models.local import TransformersModel
    from distilltrace.models.tiny import byte_tokenizer

    wm, students, rows, teacher = setup
    tok = byte_tokenizer()
    tok.add_tokens(["<x>"])
    other = TransformersModel.from_objects(teacher.hf_model, tok, name="other-tok")
    with pytest.raises(TokenizerMismatchError, match="suspect"):
        radioactivity_open(wm, other, ["some marked text"])
    with pytest.raises(InputError, match="needs marked texts"):
        radioactivity_open(wm, students["plain"], [])

    class Remote:  # a closed model: generate only, no weights
        info = teacher.info

    with pytest.raises(CapabilityError, match="local weights"):
        radioactivity_open(wm, Remote(), ["text"])
    few = radioactivity_open(wm, students["plain"], ["abc"])
    assert few.test.verdict == "not enough evidence" and few.test.pvalue is None


# ---- prefix mode: open mode through a text-completion interface ----------------------------


def _prefix_inputs(rows, n=30):
    return [r["response"] for r in rows[:n]], [r["prompt"] for r in rows[:n]]


@pytest.mark.slow
def test_prefix_mode_reads_what_open_mode_reads(setup):
    """Stride 1: the greedy next token after each prefix is the top-1 prediction that open
    mode reads from the weights (the same student, the same marked contexts)."""
    from distilltrace.marks.radioactivity import read_open
    from distilltrace.marks.radioactivity_prefix import read_prefix

    wm, students, rows, _ = setup
    texts, prompts = _prefix_inputs(rows, 8)
    s = students["marked"]
    pre = read_prefix(s, texts, prompts, s.tokenizer, context_width=wm.context_width, stride=1)
    assert pre.n_queries == len(pre.continuations) >= pre.n_usable > 0
    pre = pre.reading
    op = read_open(s, texts, marked_prompts=prompts)
    same = total = 0
    for seq, pp, start, po, oseq in zip(
        pre.seqs, pre.preds, op.starts, op.preds, op.seqs, strict=True
    ):
        assert tuple(oseq[start:]) == seq  # the same answer tokens
        for t in range(wm.context_width, len(seq)):
            if pp[t] >= 0:
                total += 1
                same += pp[t] == po[start + t]
    assert total > 0.9 * sum(len(q) - wm.context_width for q in pre.seqs)
    assert same >= 0.98 * total, (same, total)


@pytest.mark.slow
def test_prefix_mode_detects_the_marked_student_and_not_the_plain_one(setup):
    from distilltrace.marks.radioactivity_prefix import radioactivity_prefix

    wm, students, rows, _ = setup
    texts, prompts = _prefix_inputs(rows)
    s = students["marked"]
    hit = radioactivity_prefix(wm, s, texts, prompts, s.tokenizer, stride=2)
    assert hit.test.verdict == MARKED and hit.test.pvalue < 1e-4, hit.test
    assert hit.mode == "prefix" and hit.name == "radioactivity_prefix"
    assert hit.settings["n_queries"] >= hit.settings["n_usable_probes"] > 0
    plain = students["plain"]
    clean = radioactivity_prefix(wm, plain, texts, prompts, plain.tokenizer, stride=2)
    assert clean.test.pvalue is not None and clean.test.pvalue > 1e-3, clean.test


@pytest.mark.slow
def test_prefix_mode_null_under_random_keys_and_a_copying_suspect(setup, make_wm):
    """H0 (the suspect's weights do not depend on the key): the plain student's reading
    under 200 keys, and a suspect that copies what followed the same window earlier in its
    context, scored under the marking key itself (open mode's skip rule)."""
    from scipy import stats

    from distilltrace.marks.radioactivity import score_open
    from distilltrace.marks.radioactivity_prefix import radioactivity_prefix, read_prefix

    wm, students, rows, _ = setup
    texts, prompts = _prefix_inputs(rows)
    plain = students["plain"]
    reading = read_prefix(plain, texts, prompts, plain.tokenizer, context_width=1, stride=2).reading
    ps = [score_open(make_wm(context_width=1), reading).pvalue for _ in range(200)]
    assert sum(p <= 0.01 for p in ps) <= 6
    # one-sided: p-values no smaller than uniform (a discrete statistic may be conservative)
    assert stats.kstest(ps, "uniform", alternative="greater").pvalue > 1e-3

    class Copier:  # the token that followed the last window earlier in the text, else "e"
        info = plain.info

        def format_prompt(self, prompt, chat=True):
            return prompt + "\n"

        def generate(self, ps, **kw):
            from distilltrace.models.base import Generation

            out = []
            for p in ps:
                i = p[:-1].rfind(p[-1])
                out.append(Generation(p, p[i + 1] if i >= 0 else "e"))
            return out

    tok = plain.tokenizer
    cp = radioactivity_prefix(wm, Copier(), texts, prompts, tok, stride=1)
    assert cp.test.n_repeated_window > 0 and cp.test.pvalue > 1e-3, cp.test


@pytest.mark.slow
def test_prefix_mode_through_serve_equals_local(setup):
    """The same probes over HTTP (/v1/completions of a real `distilltrace serve`), with the
    prompt format given as a pattern, read the same tokens as the local model."""
    from distilltrace.marks.radioactivity_prefix import read_prefix
    from distilltrace.models import load_model
    from tests.serve_helpers import running_server

    wm, students, rows, _ = setup
    texts, prompts = _prefix_inputs(rows, 4)
    s = students["marked"]
    fmt = s.format_prompt("{prompt}")
    kw = dict(context_width=wm.context_width, stride=5, max_tokens=40)
    local = read_prefix(s, texts, prompts, s.tokenizer, **kw)
    with running_server(s.info.spec) as url:
        remote = load_model(f"openai:{url};model={s.info.name}")
        over = read_prefix(remote, texts, prompts, s.tokenizer, prompt_format=fmt, **kw)
    assert over.reading == local.reading and over.n_usable > 10
    assert over.continuations == local.continuations


@pytest.mark.slow
def test_prefix_mode_bad_inputs(setup):
    from distilltrace.marks.radioactivity_prefix import radioactivity_prefix

    wm, students, rows, teacher = setup
    s = students["plain"]
    texts, prompts = _prefix_inputs(rows, 2)
    with pytest.raises(InputError, match="stride and new_tokens must be >= 1"):
        radioactivity_prefix(wm, s, texts, prompts, s.tokenizer, stride=0)
    with pytest.raises(InputError, match="stride and new_tokens must be >= 1"):
        radioactivity_prefix(wm, s, texts, prompts, s.tokenizer, new_tokens=0)
    with pytest.raises(InputError, match="with their prompts"):
        radioactivity_prefix(wm, s, texts, prompts[:1], s.tokenizer)
    with pytest.raises(InputError, match="must contain"):
        radioactivity_prefix(wm, s, texts, prompts, s.tokenizer, prompt_format="Q: ")

    class Remote:  # an endpoint: generate only, its chat format unknown
        info = teacher.info

    with pytest.raises(InputError, match="--prefix-format"):
        radioactivity_prefix(wm, Remote(), texts, prompts, s.tokenizer)


@pytest.mark.slow
def test_logprobs_mode_runs_on_trained_students(setup):
    """Logprobs mode on the tiny students (harvested prompts asked again), with and without
    our model's q - p weights: the student that never saw the key is not flagged, and the
    counts add up. (These students' greedy answers are degenerate loops, so power is
    measured on SmolLM2 students: benchmarks/marks_closed_radio.py --logprobs.)"""
    from distilltrace.marks.radioactivity_logprobs import radioactivity_logprobs

    wm, students, rows, teacher = setup
    prompts = [r["prompt"] for r in rows[:60]]
    # a byte tokenizer with windows of one token: the prompts hold nearly every window, so
    # they are kept (these prompts carry no marked text)
    kw = dict(top_k=10, max_new_tokens=60, exclude_prompt_windows=False)
    for ref in (None, teacher):
        for name in ("marked", "plain"):
            res = radioactivity_logprobs(wm, students[name], prompts, teacher.tokenizer,
                                         reference=ref, **kw)  # fmt: skip
            t = res.test
            assert t.n_scored >= 10 and t.n_excluded == 0  # loops: few distinct windows
            # every step after the first window of each answer is a position
            assert 0 < t.n_tokens <= res.settings["n_steps"]
            if name == "plain":
                assert t.pvalue is None or t.pvalue > 1e-3, t
    d = res.to_dict()
    assert d["mode"] == "logprobs" and d["name"] == "radioactivity_logprobs"
    assert d["settings"]["weights"].startswith("q - p") and d["settings"]["top_k"] == 10
    assert d["settings"]["prompt_windows_excluded"] is False


@pytest.mark.slow
def test_logprobs_mode_through_serve_equals_local(setup):
    """The same reading over HTTP (/v1/chat/completions with logprobs and top_logprobs of a
    real `distilltrace serve`) as from the local weights: same tokens, same candidates."""
    from distilltrace.marks.radioactivity_logprobs import read_steps
    from distilltrace.models import load_model
    from tests.serve_helpers import running_server

    wm, students, rows, teacher = setup
    s = students["marked"]
    prompts = [r["prompt"] for r in rows[:6]]
    local = read_steps(wm, s, prompts, teacher.tokenizer, top_k=5, max_new_tokens=30)
    with running_server(s.info.spec) as url:
        remote = load_model(f"openai:{url};model={s.info.name}")
        over = read_steps(wm, remote, prompts, teacher.tokenizer, top_k=5, max_new_tokens=30)
    assert over.chosen == local.chosen and over.texts == local.texts and over.n_steps > 60
    for a, b, la, lb in zip(over.top_ids, local.top_ids, over.top_logprobs, local.top_logprobs,
                            strict=True):  # fmt: skip
        assert (a == b).all() and np.allclose(la, lb, atol=1e-4)
