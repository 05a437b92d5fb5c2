"""The quick zoo builds, its manifest matches what was built, and reruns skip built members."""

from __future__ import annotations

import json

import pytest

from distilltrace.distill.dataset import read_records
from distilltrace.distill.zoo import MEMBER_FILE, build_zoo, load_manifest, zoo_plan
from distilltrace.errors import InputError
from distilltrace.models import load_model

# The quick tier at its floor sizes (16 prompts, 16 teacher pairs, 40 teacher steps): every
# member is still built; the manifest, layout and ground truth are what is tested.
SCALE = 0.1


from tests.torch_threads import one_thread  # noqa: E402,F401 - autouse fixture


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    out = tmp_path_factory.mktemp("zoo")
    return out, build_zoo(out, "quick", scale=SCALE, progress=False)


@pytest.mark.slow
def test_manifest_matches_what_was_built(zoo):
    out, m = zoo
    plan = zoo_plan("quick", SCALE)
    assert m.tier == "quick"
    assert m.names() == [t.name for t in plan.teachers] + [s.name for s in plan.students]
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk["models"] == [x.to_dict() for x in m.models]
    assert {"tier", "created", "models"} <= set(on_disk)
    again = load_manifest(out)
    assert again.models == m.models and again.tier == "quick"
    roles = {x.role for x in m.models}
    assert roles == {"teacher", "student", "independent"}
    methods = {x.method for x in m.models}
    assert methods == {"tiny-teacher", "seq-kd", "logit-kd", "human-text", "mix"}
    for x in m.models:
        folder = out / x.path
        assert json.loads((folder / MEMBER_FILE).read_text()) == x.to_dict()
        train = json.loads((folder / "train.json").read_text())["result"]
        assert train["steps"] == x.train["steps"] and train["seed"] == x.seed
        assert x.data["tokens"] == train["data_tokens"] > 0
        assert (x.teachers == []) == (x.role in ("teacher", "independent"))
        assert not (folder / "checkpoints").exists()
    # harvests: one per teacher, every prompt, tagged with the teacher's identity
    for t in m.names("teacher"):
        recs = read_records(out / "data" / f"{t}.jsonl")
        assert len(recs) == plan.n_prompts
        ident = load_model(m.spec(t)).info.identity
        assert {r.meta["teacher_identity"] for r in recs} == {ident}


@pytest.mark.slow
def test_ground_truth_and_members_load(zoo):
    out, m = zoo
    a, b = "tiny-teacher-a", "tiny-teacher-b"
    for x in m.models:
        if x.method == "seq-kd":
            assert m.derives_from(x.name, x.teachers[0])
            assert not m.derives_from(x.name, b if x.teachers[0] == a else a)
        if x.method == "mix":
            assert m.derives_from(x.name, a) and m.derives_from(x.name, b)
        if x.role in ("teacher", "independent"):
            assert not m.derives_from(x.name, a) and not m.derives_from(x.name, b)
    assert set(m.students_of(a)) >= {n for n in m.names() if n.startswith(f"{a}-")}
    student = m.names("student")[0]
    gen = load_model(m.spec(student)).generate(["Explain gravity."], max_new_tokens=8)
    assert len(gen) == 1


@pytest.mark.slow
def test_rerun_skips_built_members(zoo):
    out, m = zoo
    stamps = {x.name: (out / x.path / "model.safetensors").stat().st_mtime_ns for x in m.models}
    m2 = build_zoo(out, "quick", scale=SCALE, progress=False)
    assert m2.models == m.models and m2.created == m.created
    assert stamps == {
        x.name: (out / x.path / "model.safetensors").stat().st_mtime_ns for x in m2.models
    }
    with pytest.raises(InputError, match="different plan"):
        build_zoo(out, "quick", scale=SCALE * 2, progress=False)


def test_load_manifest_errors(tmp_path):
    with pytest.raises(InputError, match="no zoo manifest"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"tier": "quick",\n "models": [}')
    with pytest.raises(InputError, match="line 2: malformed JSON"):
        load_manifest(tmp_path)
    entry = {
        "name": "s",
        "role": "student",
        "method": "seq-kd",
        "teachers": ["ghost"],
        "arch": "tiny-2l",
        "seed": 0,
        "data": {},
        "train": {},
        "path": "s",
    }
    (tmp_path / "manifest.json").write_text(json.dumps({"tier": "quick", "models": [entry]}))
    with pytest.raises(InputError, match="unknown teacher 'ghost'"):
        load_manifest(tmp_path)
    with pytest.raises(InputError, match="tier must be"):
        zoo_plan("huge")


def test_bad_training_precision_refused_before_any_work(tmp_path):
    from distilltrace.distill.zoo import build_zoo

    with pytest.raises(InputError, match="precision must be one of float32, bf16-mixed, auto"):
        build_zoo(tmp_path / "z", "quick", precision="fp16", progress=False)
    assert not (tmp_path / "z").exists()  # nothing harvested, trained or written
