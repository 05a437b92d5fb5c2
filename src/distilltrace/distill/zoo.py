"""The model zoo: teachers, their distilled students and independent models, with a manifest
that records exactly how each was made. The manifest is the ground truth ("which model
derives from which") that the provenance and radioactivity benchmarks are scored against.

Tiers: `quick` (two tiny teachers trained on disjoint standard-library text, a few
students of each, human-text and mixed students; minutes on 2 CPU cores, for tests) and
`full` (the bundled SmolLM2-135M-Instruct and Gemma-3-270M as teachers). `scale`
multiplies prompts and training length, so the full tier can be built small on a laptop or
large on a GPU machine with the same manifest format. Building is cached and resumable:
each finished member leaves `zoo_member.json` in its folder and is skipped on a rerun.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from distilltrace.errors import InputError

MANIFEST = "manifest.json"
MEMBER_FILE = "zoo_member.json"
ROLES = ("teacher", "student", "independent")
TIERS = ("quick", "full", "pretrained")
BUNDLED_SHORT = {"smollm2-135m-instruct": "smollm2", "gemma3-270m": "gemma3"}


# ----------------------------------------------------------------------- manifest


@dataclass
class ZooMember:
    """One zoo model and how it was made (see docs/distill.md for the schema)."""

    name: str
    role: str
    method: str
    teachers: list[str]
    arch: str
    seed: int
    data: dict[str, Any]
    train: dict[str, Any]
    path: str | None = None  # relative to the zoo folder (a transformers folder)
    spec: str | None = None  # a bundled model name
    base: str | None = None  # the member whose pretrained weights it was fine-tuned from

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("path", "spec", "base"):
            if d[k] is None:
                del d[k]
        return d


@dataclass
class Manifest:
    """The zoo's ground truth: its tier, when it was built, and every member."""

    tier: str
    created: str
    models: list[ZooMember]
    root: Path | None = field(default=None, compare=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "tier": self.tier,
            "created": self.created,
            "models": [m.to_dict() for m in self.models],
        }
        if self.extra:
            d["build"] = self.extra
        return d

    def get(self, name: str) -> ZooMember:
        for m in self.models:
            if m.name == name:
                return m
        raise InputError(f"no model {name!r} in the zoo (models: {', '.join(self.names())})")

    def names(self, role: str | None = None) -> list[str]:
        return [m.name for m in self.models if role is None or m.role == role]

    def spec(self, name: str) -> str:
        """The model spec to pass to load_model: the member's folder, or its bundled name."""
        m = self.get(name)
        if m.spec:
            return m.spec
        if self.root is None:
            raise InputError("this manifest was not loaded from a folder; paths are relative")
        return str((self.root / str(m.path)).resolve())

    def students_of(self, teacher: str) -> list[str]:
        return [m.name for m in self.models if self.derives_from(m.name, teacher)]

    def derives_from(self, model_name: str, teacher_name: str) -> bool:
        """True when `model_name` was trained (directly, or through a chain of students) on
        `teacher_name`'s outputs or distribution, or fine-tuned from its weights (its
        `base`). A model does not derive from itself."""
        self.get(teacher_name)
        seen: set[str] = set()
        frontier = self._parents(model_name)
        while frontier:
            t = frontier.pop()
            if t == teacher_name:
                return True
            if t in seen:
                continue
            seen.add(t)
            frontier.extend(self._parents(t))
        return False

    def _parents(self, name: str) -> list[str]:
        m = self.get(name)
        return [*m.teachers, *([m.base] if m.base else [])]

    def save(self, out_dir: str | Path) -> Path:
        p = Path(out_dir) / MANIFEST
        tmp = p.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2))
        os.replace(tmp, p)
        return p


def _member_from(d: Any, where: str) -> ZooMember:
    if not isinstance(d, dict):
        raise InputError(f"{where}: expected an object")
    need = ("name", "role", "method", "teachers", "arch", "seed", "data", "train")
    missing = [k for k in need if k not in d]
    if missing:
        raise InputError(f"{where}: missing fields {missing}")
    if d["role"] not in ROLES:
        raise InputError(f"{where}: role {d['role']!r} is not one of {ROLES}")
    if not (d.get("path") or d.get("spec")):
        raise InputError(f"{where}: needs a 'path' or a 'spec'")
    return ZooMember(
        name=str(d["name"]),
        role=d["role"],
        method=str(d["method"]),
        teachers=[str(t) for t in d["teachers"]],
        arch=str(d["arch"]),
        seed=int(d["seed"]),
        data=dict(d["data"]),
        train=dict(d["train"]),
        path=d.get("path"),
        spec=d.get("spec"),
        base=str(d["base"]) if d.get("base") is not None else None,
    )


def load_manifest(zoo_dir: str | Path) -> Manifest:
    """Read and check `zoo_dir/manifest.json` (paths resolve against `zoo_dir`)."""
    root = Path(zoo_dir)
    p = root / MANIFEST if root.is_dir() or not root.name.endswith(".json") else root
    if p.name == MANIFEST or p.suffix == ".json":
        root = p.parent
    if not p.is_file():
        raise InputError(f"no zoo manifest at {p} (build one with `distilltrace zoo build`)")
    try:
        raw = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{p}: line {e.lineno}: malformed JSON ({e.msg})") from None
    if not isinstance(raw, dict) or "models" not in raw or "tier" not in raw:
        raise InputError(f"{p}: not a zoo manifest (needs 'tier' and 'models')")
    models = [_member_from(m, f"{p}: models[{i}]") for i, m in enumerate(raw["models"])]
    names = [m.name for m in models]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise InputError(f"{p}: duplicate model names {sorted(dup)}")
    for m in models:
        for t in m.teachers:
            if t not in names:
                raise InputError(f"{p}: {m.name} names unknown teacher {t!r}")
        if m.base is not None and m.base not in names:
            raise InputError(f"{p}: {m.name} names unknown base {m.base!r}")
    return Manifest(
        tier=str(raw["tier"]),
        created=str(raw.get("created", "")),
        models=models,
        root=root,
        extra=dict(raw.get("build") or {}),
    )


# ----------------------------------------------------------------------- plans


@dataclass(frozen=True)
class TeacherPlan:
    """A teacher: a bundled model, or a tiny model trained (with the same trainer as the
    students) on chat pairs whose answers come from one part of the human corpus."""

    name: str
    spec: str | None = None  # bundled name
    arch: str = "tiny-2l"
    seed: int = 0
    corpus_part: int = 0
    n_pairs: int = 160
    pool: int = 24  # distinct answers (corpus chunks) the teacher is taught
    answer_chars: int = 96
    steps: int = 250
    lr: float = 5e-3
    style: str = "plain"  # answer style of a tiny teacher: "plain", "preamble" or "bullets"


@dataclass(frozen=True)
class StudentPlan:
    """A student: its method, teachers, architecture, seed and share of the harvest."""

    name: str
    method: str  # "seq-kd" | "logit-kd" | "human-text" | "mix"
    teachers: tuple[str, ...]
    arch: str
    seed: int
    data_fraction: float = 1.0
    divergence: str = "fkl"
    epochs: float | None = None  # default: the plan's
    base: str | None = None  # a teacher whose pretrained weights are fine-tuned (arch = it)


@dataclass(frozen=True)
class ZooPlan:
    """Everything a tier builds, and with which sizes."""

    tier: str
    teachers: tuple[TeacherPlan, ...]
    students: tuple[StudentPlan, ...]
    tokenizer: str  # students' tokenizer: "byte", "smollm2", or "base" (each base's own)
    n_prompts: int
    max_new_tokens: int
    temperature: float = 0.7
    top_p: float = 0.95
    harvest_seed: int = 0
    batch_size: int = 8
    lr: float = 3e-3
    max_len: int = 256
    human_chars: int = 60_000
    epochs: float = 3.0
    topk: int = 32
    logit_source: str = "online"  # "online" (teacher forward passes) or "topk" (stored file)
    answer_chars: int = 400  # third-source (ShareGPT) answers are clipped to this length

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _students(
    teachers: list[str], logit_teacher: str, small: str, big: str, controls: bool = False
) -> tuple[StudentPlan, ...]:
    """The students of a tier. With `controls`, also the models that give the students
    controls of their own recipe (see distilltrace.bench.provenance.comparable: data kind,
    architecture, loss, training amount): the small recipes in 4 or more seeds (so a
    student has 3 same-recipe controls even on the teacher it does not derive from, which
    the forward-likelihood and lexical tests need), the big seq-KD students in 2 per
    teacher (enough for the pairs with a true teacher)."""
    a, b = teachers
    out: list[StudentPlan] = []
    for t in teachers:
        out += [
            StudentPlan(f"{t}-seqkd-{small}-s0", "seq-kd", (t,), small, 0),
            StudentPlan(f"{t}-seqkd-{small}-s1", "seq-kd", (t,), small, 1),
            StudentPlan(f"{t}-seqkd-{big}-s0", "seq-kd", (t,), big, 0),
            StudentPlan(
                f"{t}-seqkd-{small}-smalldata-s2", "seq-kd", (t,), small, 2, data_fraction=0.25
            ),
        ]
    out += [
        StudentPlan(
            f"{logit_teacher}-logitkd-fkl-{small}-s0",
            "logit-kd",
            (logit_teacher,),
            small,
            0,
            divergence="fkl",
        ),
        StudentPlan(
            f"{logit_teacher}-logitkd-jsd-{small}-s1",
            "logit-kd",
            (logit_teacher,),
            small,
            1,
            divergence="jsd",
        ),
        StudentPlan(f"human-{small}-s0", "human-text", (), small, 0),
        StudentPlan(f"human-{big}-s1", "human-text", (), big, 1),
        StudentPlan(f"human-{small}-s2", "human-text", (), small, 2),
        StudentPlan(f"mix-{a}-{b}-{small}-s0", "mix", (a, b), small, 0),
        StudentPlan(f"mix-{a}-{b}-{small}-s1", "mix", (a, b), small, 1),
    ]
    if controls:
        for t in teachers:
            out += [
                StudentPlan(f"{t}-seqkd-{small}-s3", "seq-kd", (t,), small, 3),
                StudentPlan(f"{t}-seqkd-{big}-s1", "seq-kd", (t,), big, 1),
                StudentPlan(f"{t}-seqkd-{small}-smalldata-s3", "seq-kd", (t,), small, 3, 0.25),
                StudentPlan(f"{t}-seqkd-{small}-smalldata-s4", "seq-kd", (t,), small, 4, 0.25),
                StudentPlan(f"{t}-seqkd-{small}-s4", "seq-kd", (t,), small, 4),
                StudentPlan(f"{t}-seqkd-{small}-smalldata-s5", "seq-kd", (t,), small, 5, 0.25),
            ]
        out += [
            StudentPlan(f"human-{small}-s6", "human-text", (), small, 6),
            StudentPlan(f"human-{big}-s3", "human-text", (), big, 3),
            StudentPlan(f"human-{big}-s7", "human-text", (), big, 7),
            StudentPlan(f"human-{small}-smalldata-s4", "human-text", (), small, 4, 0.25),
            StudentPlan(f"human-{small}-smalldata-s5", "human-text", (), small, 5, 0.25),
            StudentPlan(f"human-{small}-smalldata-s8", "human-text", (), small, 8, 0.25),
            StudentPlan(f"human-{small}-s9", "human-text", (), small, 9),
            StudentPlan(f"human-{small}-smalldata-s10", "human-text", (), small, 10, 0.25),
        ]
        for div in ("fkl", "jsd"):
            out += [
                StudentPlan(
                    f"{logit_teacher}-logitkd-{div}-{small}-s{seed}",
                    "logit-kd",
                    (logit_teacher,),
                    small,
                    seed,
                    divergence=div,
                )
                for seed in (2, 3)
            ]
    return tuple(out)


def _pretrained_students(teachers: list[str]) -> tuple[StudentPlan, ...]:
    """Each bundled model fine-tuned as its own base: on the other model's answers (100%,
    10% and 1% of the data, the rest ShareGPT's ChatGPT answers), and, as the controls
    (same base, same recipe, other data), on ShareGPT's answers alone (three seeds) and on
    human text (two seeds). Most informative first, so a partial build (`only`) is useful."""
    out: list[StudentPlan] = []
    for base in teachers:
        b = BUNDLED_SHORT.get(base, base)
        (t,) = [x for x in teachers if x != base]
        tt = BUNDLED_SHORT.get(t, t)
        out += [
            StudentPlan(f"{b}-ft-{tt}-100-s0", "seq-kd", (t,), base, 0, base=base),
            StudentPlan(f"{b}-ft-sharegpt-s0", "sharegpt", (), base, 0, base=base),
            StudentPlan(f"{b}-ft-sharegpt-s1", "sharegpt", (), base, 1, base=base),
            StudentPlan(f"{b}-ft-{tt}-10-s0", "mix-sharegpt", (t,), base, 0, 0.1, base=base),
            StudentPlan(f"{b}-ft-sharegpt-s2", "sharegpt", (), base, 2, base=base),
            StudentPlan(f"{b}-ft-{tt}-1-s0", "mix-sharegpt", (t,), base, 0, 0.01, base=base),
            StudentPlan(f"{b}-ft-human-s0", "human-text", (), base, 0, base=base),
            StudentPlan(f"{b}-ft-human-s1", "human-text", (), base, 1, base=base),
        ]
    return tuple(out)


def zoo_plan(tier: str, scale: float = 1.0) -> ZooPlan:
    """The members and sizes of a tier; `scale` multiplies prompts, corpus and teacher data."""
    if tier not in TIERS:
        raise InputError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
    if not 0 < scale <= 100:
        raise InputError(f"scale must be in (0, 100], got {scale}")
    if tier == "quick":
        teachers = (
            TeacherPlan(
                "tiny-teacher-a",
                arch="tiny-2l",
                seed=11,
                corpus_part=0,
                n_pairs=max(16, int(160 * scale)),
                steps=max(40, int(250 * scale)),
                style="preamble",
            ),
            TeacherPlan(
                "tiny-teacher-b",
                arch="tiny-2l",
                seed=22,
                corpus_part=1,
                n_pairs=max(16, int(160 * scale)),
                steps=max(40, int(250 * scale)),
                style="bullets",
            ),
        )
        students = _students(
            ["tiny-teacher-a", "tiny-teacher-b"], "tiny-teacher-a", "tiny-2l", "tiny-4l"
        )
        return ZooPlan(
            tier="quick",
            teachers=teachers,
            students=students,
            tokenizer="byte",
            n_prompts=max(16, int(80 * scale)),
            max_new_tokens=48,
            lr=5e-3,
            epochs=6.0,
            max_len=160,
            human_chars=max(2000, int(10_000 * scale)),
            batch_size=8,
        )
    teachers = (
        TeacherPlan("smollm2-135m-instruct", spec="smollm2-135m-instruct"),
        TeacherPlan("gemma3-270m", spec="gemma3-270m"),
    )
    if tier == "pretrained":
        return ZooPlan(
            tier="pretrained",
            teachers=teachers,
            students=_pretrained_students([t.name for t in teachers]),
            tokenizer="base",
            n_prompts=max(16, int(400 * scale)),
            max_new_tokens=96,
            lr=1e-4,
            epochs=2.0,
            max_len=256,
            human_chars=max(20_000, int(240_000 * scale)),
            batch_size=16,
        )
    return ZooPlan(
        tier="full",
        teachers=teachers,
        students=_students(
            ["smollm2-135m-instruct", "gemma3-270m"],
            "smollm2-135m-instruct",
            "small-4l",
            "base-8l",
            controls=True,
        ),
        tokenizer="smollm2",
        n_prompts=max(16, int(400 * scale)),
        max_new_tokens=96,
        lr=3e-3,
        epochs=4.0,
        max_len=256,
        human_chars=max(20_000, int(150_000 * scale)),
        batch_size=8,
        logit_source="topk",
    )


# ----------------------------------------------------------------------- building


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def _write_member(folder: Path, member: ZooMember) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (MEMBER_FILE + ".tmp")
    tmp.write_text(json.dumps(member.to_dict(), indent=2))
    os.replace(tmp, folder / MEMBER_FILE)


def _read_member(folder: Path) -> ZooMember | None:
    p = folder / MEMBER_FILE
    if not p.is_file():
        return None
    try:
        return _member_from(json.loads(p.read_text()), str(p))
    except (json.JSONDecodeError, InputError):
        return None


def _corpus_parts() -> list[list[str]]:
    from distilltrace.distill.human_text import human_corpus

    chunks = human_corpus(seed=0)
    return [chunks[i::3] for i in range(3)]


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "."


def styled_answer(text: str, style: str, limit: int = 160) -> str:
    """A tiny teacher's answer in its house style, so the two tiny teachers behave
    differently the way real models do (signature openers, list formatting)."""
    if style == "plain":
        return _clip(text, limit)
    if style == "preamble":
        return "Sure! " + _clip(text, limit)
    if style == "bullets":
        sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", _clip(text, limit)) if s.strip()]
        return "\n".join(f"- {s}" for s in sentences)
    raise InputError(f"unknown teacher style {style!r}")


def _train_summary(res: Any, **extra: Any) -> dict[str, Any]:
    return {
        "steps": res.steps,
        "epochs": res.epochs,
        "final_loss": round(res.final_loss, 5),
        "first_loss": round(res.first_loss, 5),
        "wall_s": res.wall_s,
        "tokens_per_s": res.tokens_per_s,
        "lr": res.config.get("lr"),
        "batch_size": res.config.get("batch_size"),
        "precision": res.config.get("precision", "float32"),
        **extra,
    }


def build_zoo(
    out_dir: str | Path,
    tier: str = "quick",
    *,
    scale: float = 1.0,
    plan: ZooPlan | None = None,
    device: str = "auto",
    progress: bool = True,
    only: Sequence[str] | None = None,
    precision: str = "float32",
) -> Manifest:
    """Build (or finish building) a zoo tier in `out_dir` and write its manifest.json.
    Members already built are skipped; harvests resume where they stopped. `only` names
    the students to build now (with the teachers and harvests they need); the others are
    left for a later call, and the manifest lists what exists. `precision` is the
    training precision of the students built now (TrainConfig.precision; each member's
    training record keeps its own)."""
    from distilltrace.distill.config import TrainConfig

    TrainConfig(precision=precision).check()  # before any harvest or training
    b = _ZooBuild(plan or zoo_plan(tier, scale), Path(out_dir), scale, device, progress, precision)
    students = _chosen(b.plan, only)
    b.start()
    for tp in b.plan.teachers:
        b.teacher(tp)
    b.harvests(students)
    for sp in students:
        b.student(sp)
    manifest = b.save()
    manifest.extra["last_build_wall_s"] = round(time.perf_counter() - b.t_start, 1)
    manifest.save(b.out)
    return manifest


def _chosen(plan: ZooPlan, only: Sequence[str] | None) -> list[StudentPlan]:
    if only is None:
        return list(plan.students)
    names = [s.name for s in plan.students]
    unknown = [n for n in only if n not in names]
    if unknown:
        raise InputError(
            f"not students of the {plan.tier!r} tier: {', '.join(unknown)} (its students: "
            f"{', '.join(names)})"
        )
    return [s for s in plan.students if s.name in set(only)]


# A student method trains one student: (build, plan, student, folder, train config) ->
# (training result, data source description, number of prompts, role, extra train info).
StudentMethod = Callable[
    ["_ZooBuild", StudentPlan, Any, Path, Any], tuple[Any, str, int, str, dict[str, Any]]
]


class _ZooBuild:
    """One build of a zoo: the steps of `build_zoo` and what they share."""

    def __init__(
        self,
        plan: ZooPlan,
        out: Path,
        scale: float,
        device: str,
        progress: bool,
        precision: str = "float32",
    ):
        self.plan, self.out, self.scale = plan, out, scale
        self.device, self.progress, self.precision = device, progress, precision
        self.t_start = time.perf_counter()
        self.created = _now()
        self.members: dict[str, ZooMember] = {}
        self.order = [t.name for t in plan.teachers] + [s.name for s in plan.students]
        self.records: dict[str, list[Any]] = {}
        self._parts: list[list[str]] | None = None
        self._loaded: dict[str, Any] = {}
        self._student_tok: Any = None

    # ------------------------------------------------------------------- setup
    def start(self) -> None:
        """Check the folder holds nothing of another tier or plan; write plan.json."""
        out, plan = self.out, self.plan
        out.mkdir(parents=True, exist_ok=True)
        if (out / MANIFEST).is_file():
            try:
                old = load_manifest(out)
                if old.tier != plan.tier:
                    raise InputError(
                        f"{out} holds a {old.tier!r} zoo; build the {plan.tier!r} tier in "
                        "another folder"
                    )
                self.created = old.created
            except InputError as e:
                if "holds a" in str(e):
                    raise
        plan_file = out / "plan.json"
        plan_json = json.dumps(plan.to_dict(), sort_keys=True, indent=1)
        if plan_file.is_file() and plan_file.read_text() != plan_json:
            raise InputError(
                f"{out} was built with a different plan (tier, scale or sizes); build into a "
                "new folder, or delete it to start over"
            )
        plan_file.write_text(plan_json)
        from distilltrace.distill.student import resolve_tokenizer

        if plan.tokenizer != "base":
            self._student_tok = resolve_tokenizer(plan.tokenizer)
        for sp in plan.students:  # built by an earlier call (e.g. with another `only`)
            done = _read_member(out / sp.name)
            if done is not None:
                self.members[sp.name] = done

    def save(self) -> Manifest:
        m = Manifest(
            tier=self.plan.tier,
            created=self.created,
            models=[self.members[n] for n in self.order if n in self.members],
            root=self.out,
            extra={"scale": self.scale, "plan": self.plan.to_dict()},
        )
        m.save(self.out)
        return m

    def corpus(self) -> list[list[str]]:
        if self._parts is None:
            self._parts = _corpus_parts()
        return self._parts

    def teacher_model(self, name: str) -> Any:
        if name not in self._loaded:
            from distilltrace.models import load_model

            self._loaded[name] = load_model(self.teacher_spec(name))
        return self._loaded[name]

    def train_config(self, **settings: Any) -> Any:
        from distilltrace.distill.config import TrainConfig

        return TrainConfig(
            device=self.device, progress=self.progress, precision=self.precision, **settings
        )

    def new_student(self, arch: str, seed: int, base: str | None = None) -> Any:
        """A fresh student: the architecture with seeded random weights, or a copy of its
        base's pretrained weights (and tokenizer) to fine-tune."""
        from distilltrace.distill.student import make_student

        if base is not None:
            return make_student(self.teacher_spec(base))
        if self._student_tok is None:
            raise InputError(
                f"{arch}: the plan's tokenizer 'base' applies only to fine-tuned bases; a "
                "new architecture needs 'byte' or 'smollm2'"
            )
        return make_student(arch, self._student_tok, seed)

    def teacher_spec(self, name: str) -> str:
        m = self.members[name]
        return m.spec or str(self.out / str(m.path))

    # ------------------------------------------------------------------- 1. teachers
    def teacher(self, tp: TeacherPlan) -> None:
        if tp.spec:
            self.members[tp.name] = ZooMember(
                name=tp.name,
                role="teacher",
                method="bundled",
                teachers=[],
                arch=tp.spec,
                seed=0,
                data={"prompts": 0, "tokens": 0, "source": "pretrained (bundled model)"},
                train={},
                spec=tp.spec,
            )
            return
        folder = self.out / tp.name
        done = _read_member(folder)
        if done is None:
            done = self._train_tiny_teacher(tp, folder)
            _write_member(folder, done)
        self.members[tp.name] = done
        self.save()

    def _train_tiny_teacher(self, tp: TeacherPlan, folder: Path) -> ZooMember:
        from distilltrace.distill.dataset import Record
        from distilltrace.distill.prompts import generate_prompts
        from distilltrace.distill.training import train_seq_kd

        chunks = self.corpus()[tp.corpus_part]
        prompts = generate_prompts(tp.n_pairs, seed=1000 + tp.corpus_part)
        pool = [styled_answer(c, tp.style, tp.answer_chars) for c in chunks[: tp.pool]]
        recs = [
            Record(p.text, pool[i % len(pool)], {"finish_reason": "stop"})
            for i, p in enumerate(prompts)
        ]
        cfg = self.train_config(
            steps=tp.steps,
            lr=tp.lr,
            batch_size=self.plan.batch_size,
            seed=tp.seed,
            max_len=self.plan.max_len,
        )
        res = train_seq_kd(self.new_student(tp.arch, tp.seed), recs, folder, cfg)
        return ZooMember(
            name=tp.name,
            role="teacher",
            method="tiny-teacher",
            teachers=[],
            arch=tp.arch,
            seed=tp.seed,
            data={
                "prompts": len(recs),
                "tokens": res.data_tokens,
                "source": (
                    f"{len(pool)} stdlib docstring chunks (part {tp.corpus_part}) as chat "
                    f"answers, {tp.style} style"
                ),
            },
            train=_train_summary(res),
            path=tp.name,
        )

    # ------------------------------------------------------------------- 2. harvests
    def harvests(self, students: Sequence[StudentPlan]) -> None:
        """One harvest per teacher that has students, on the same prompts (resumable)."""
        from distilltrace.distill.dataset import read_records
        from distilltrace.distill.harvesting import harvest
        from distilltrace.distill.prompts import generate_prompts

        plan = self.plan
        prompts = generate_prompts(plan.n_prompts, seed=plan.harvest_seed)
        needed = {t for s in students for t in s.teachers}
        for tp in plan.teachers:
            if tp.name not in needed:
                continue
            path = self.out / "data" / f"{tp.name}.jsonl"
            have = (
                {r.prompt for r in read_records(path, allow_partial_tail=True)}
                if path.exists() and path.stat().st_size
                else set()
            )
            if not {p.text for p in prompts} <= have:
                harvest(
                    self.teacher_model(tp.name),
                    prompts,
                    path,
                    max_new_tokens=plan.max_new_tokens,
                    temperature=plan.temperature,
                    top_p=plan.top_p,
                    seed=plan.harvest_seed,
                    batch_size=16,
                    progress=self.progress,
                )
            by_prompt = {r.prompt: r for r in read_records(path)}
            self.records[tp.name] = [by_prompt[p.text] for p in prompts]
        self._loaded.clear()  # the students' training needs the memory (reloaded if asked)

    # ------------------------------------------------------------------- 3. students
    def student(self, sp: StudentPlan) -> None:
        from distilltrace.distill.student import ARCHS

        folder = self.out / sp.name
        done = _read_member(folder)
        if done is None:
            if sp.arch not in ARCHS and sp.base not in self.members:
                raise InputError(f"unknown student architecture {sp.arch!r}")
            method = STUDENT_METHODS.get(sp.method)
            if method is None:
                raise InputError(f"unknown zoo method {sp.method!r}")
            st = self.new_student(sp.arch, sp.seed, sp.base)
            plan = self.plan
            cfg = self.train_config(
                epochs=sp.epochs or plan.epochs,
                lr=plan.lr,
                batch_size=plan.batch_size,
                seed=sp.seed,
                max_len=plan.max_len,
            )
            res, source, n_prompts, role, extra = method(self, sp, st, folder, cfg)
            done = ZooMember(
                name=sp.name,
                role=role,
                method=sp.method,
                teachers=list(sp.teachers),
                arch=sp.arch,
                seed=sp.seed,
                data={"prompts": n_prompts, "tokens": res.data_tokens, "source": source},
                train=_train_summary(res, **extra),
                path=sp.name,
                base=sp.base,
            )
            _write_member(folder, done)
            self.members[sp.name] = done
            self.save()
        else:
            self.members[sp.name] = done

    def n_take(self, sp: StudentPlan) -> int:
        return max(4, int(round(sp.data_fraction * self.plan.n_prompts)))


def _seq_kd_student(b: _ZooBuild, sp: StudentPlan, st: Any, folder: Path, cfg: Any):
    from distilltrace.distill.training import train_seq_kd

    t = sp.teachers[0]
    recs = b.records[t][: b.n_take(sp)]
    res = train_seq_kd(st, recs, folder, cfg)
    source = f"harvest of {t} (data/{t}.jsonl, first {len(recs)} prompts)"
    return res, source, len(recs), "student", {}


def _mix_student(b: _ZooBuild, sp: StudentPlan, st: Any, folder: Path, cfg: Any):
    from distilltrace.distill.training import train_seq_kd

    a, c = sp.teachers
    n = min(b.n_take(sp), b.plan.n_prompts)
    recs = [(b.records[a] if i % 2 == 0 else b.records[c])[i] for i in range(n)]
    res = train_seq_kd(st, recs, folder, cfg)
    return res, f"harvests of {a} (even prompts) and {c} (odd prompts)", len(recs), "student", {}


def _logit_kd_student(b: _ZooBuild, sp: StudentPlan, st: Any, folder: Path, cfg: Any):
    from dataclasses import replace

    from distilltrace.distill.training import train_logit_kd, write_topk_file

    plan, t = b.plan, sp.teachers[0]
    recs = b.records[t][: b.n_take(sp)]
    cfg = replace(cfg, divergence=sp.divergence)
    if plan.logit_source == "topk":
        topk = b.out / "data" / f"{t}.top{plan.topk}.n{len(recs)}.safetensors"
        if not topk.is_file():
            write_topk_file(
                b.teacher_model(t), recs, topk, k=plan.topk, max_len=plan.max_len, device=b.device
            )
        res = train_logit_kd(st, None, None, folder, cfg, topk_file=topk)
        extra = {"divergence": sp.divergence, "teacher_probs": f"top-{plan.topk} file"}
    else:
        res = train_logit_kd(st, b.teacher_model(t), recs, folder, cfg)
        extra = {"divergence": sp.divergence, "teacher_probs": "full distribution, on the fly"}
    source = f"harvest of {t} (first {len(recs)} prompts), teacher next-token distributions"
    return res, source, len(recs), "student", extra


def _human_text_student(b: _ZooBuild, sp: StudentPlan, st: Any, folder: Path, cfg: Any):
    import random

    from distilltrace.distill.training import train_lm

    texts = list(b.corpus()[2])
    random.Random(f"zoo-human:{sp.seed}").shuffle(texts)
    take, total = [], 0
    for c in texts:
        if total + len(c) > b.plan.human_chars * sp.data_fraction:
            break
        take.append(c)
        total += len(c)
    res = train_lm(st, take, folder, cfg)
    source = f"stdlib docstrings part 2 ({total} characters, {len(take)} chunks)"
    return res, source, 0, "independent", {}


def _sharegpt_records(b: _ZooBuild, n: int, seed: int) -> list[Any]:
    """`n` ShareGPT (prompt, ChatGPT answer) pairs, answers clipped like a teacher's."""
    from distilltrace.distill.dataset import sharegpt_records

    return sharegpt_records(n, seed, b.plan.answer_chars, clip=_clip)


def _sharegpt_student(b: _ZooBuild, sp: StudentPlan, st: Any, folder: Path, cfg: Any):
    from distilltrace.distill.training import train_seq_kd

    recs = _sharegpt_records(b, b.n_take(sp), sp.seed)
    res = train_seq_kd(st, recs, folder, cfg)
    source = f"ShareGPT first turns with ChatGPT's answers ({len(recs)} pairs, seed {sp.seed})"
    return res, source, len(recs), "independent", {}


def _mix_sharegpt_student(b: _ZooBuild, sp: StudentPlan, st: Any, folder: Path, cfg: Any):
    """A teacher's answers for a share (`data_fraction`) of the prompts, ShareGPT pairs
    (the same sample as the `sharegpt` control of this seed) for the rest."""
    from distilltrace.distill.training import train_seq_kd

    n, t = b.plan.n_prompts, sp.teachers[0]
    k = max(1, int(round(sp.data_fraction * n)))
    recs = b.records[t][:k] + _sharegpt_records(b, n - k, sp.seed)
    res = train_seq_kd(st, recs, folder, cfg)
    source = f"harvest of {t} (first {k} prompts) + {n - k} ShareGPT pairs (seed {sp.seed})"
    return res, source, n, "student", {"teacher_share": k / n}


# How each zoo method trains a student: adding a method is adding an entry here.
STUDENT_METHODS: dict[str, StudentMethod] = {
    "seq-kd": _seq_kd_student,
    "mix": _mix_student,
    "logit-kd": _logit_kd_student,
    "human-text": _human_text_student,
    "sharegpt": _sharegpt_student,
    "mix-sharegpt": _mix_sharegpt_student,
}
