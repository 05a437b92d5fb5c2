"""Radioactivity end to end on tiny models: marked teacher -> harvest -> distilled student."""

from __future__ import annotations

import json

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
