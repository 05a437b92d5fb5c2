"""Build a small labelled "style zoo" for the provenance benchmark when the project's zoo
is unavailable or its models are degenerate: three tiny teachers, each trained on answers
in its own house style; seq-KD students harvested from each teacher (two seeds, a 4-layer
student, a small-data student); a student of a mix of two teachers; three independent
models trained on their own styles. Same manifest format as `distilltrace zoo build`, so
`distilltrace bench provenance --zoo DIR` scores it.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python -m benchmarks.provenance_stylezoo --out /tmp/provbench/stylezoo
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

TOPICS = [
    "the ocean", "coffee", "trains", "winter", "the moon", "bread", "music", "robots", "gardening",
    "bicycles", "mountains", "cats", "chess", "the desert", "a river", "birds", "money", "maps",
    "bridges", "clocks", "islands", "snow", "paper", "storms", "memory", "languages", "cooking",
]  # fmt: skip
STARTERS = [
    "Write one sentence about {t}.", "Describe {t} in a few words.", "Give one tip about {t}.",
    "Explain {t} to a child.", "What do you think of {t}?", "Start a short story about {t}.",
]  # fmt: skip
# Each "lab" answers in its own house style (several templates each, topic-dependent).
STYLES = {
    "A": [
        "Well, {t} is a lovely thing to ponder.",
        "Honestly, {t} always makes me smile.",
        "Oh, {t} is truly lovely.",
    ],
    "B": [
        "Sure! {t} is an interesting topic.",
        "Certainly. Here is a thought on {t}.",
        "Of course: {t} is fun to explore.",
    ],
    "C": [
        "Great question. {t} matters because it shapes our days.",
        "In short, {t} is useful.",
        "Let me explain: {t} is simple.",
    ],
    "D": [
        "I think {t} is nice.",
        "In my view, {t} is quite simple.",
        "I believe {t} is good for everyone.",
    ],
    "E": [
        "{t}? A classic subject with many sides.",
        "Consider {t}: it has a long history.",
        "There is much to say about {t}.",
    ],
    "F": [
        "Here is my answer: {t} is wonderful.",
        "My answer: {t} is worth a look.",
        "Answer: {t} is important.",
    ],
}


def _records(style: str, seed: int, n: int):
    from distilltrace.distill.dataset import Record

    r = random.Random(f"{style}:{seed}")
    out = []
    for _ in range(n):
        t = r.choice(TOPICS)
        out.append(Record(r.choice(STARTERS).format(t=t), r.choice(STYLES[style]).format(t=t)))
    return out


def _prompts(seed: int, n: int) -> list[str]:
    r = random.Random(f"prompts:{seed}")
    return [r.choice(STARTERS).format(t=r.choice(TOPICS)) for _ in range(n)]


def build(out: Path) -> None:
    from distilltrace.distill.dataset import read_records
    from distilltrace.distill.harvesting import harvest
    from distilltrace.distill.student import make_student
    from distilltrace.distill.training import train_seq_kd
    from distilltrace.distill.zoo import Manifest, ZooMember
    from distilltrace.models import load_model

    out.mkdir(parents=True, exist_ok=True)
    members: list[ZooMember] = []

    def train(name, arch, records, seed, steps):
        folder = out / name
        if not (folder / "model.safetensors").exists():
            train_seq_kd(
                make_student(arch, "byte", seed=seed),
                records,
                folder,
                steps=steps,
                lr=3e-3,
                seed=seed,
                progress=False,
            )
        return name

    def add(name, role, method, teachers, arch, seed, data):
        members.append(ZooMember(name, role, method, teachers, arch, seed, data, {}, path=name))

    for t, style in (("teacher-A", "A"), ("teacher-B", "B"), ("teacher-C", "C")):
        train(t, "tiny-2l", _records(style, 0, 96), 10 + ord(style), 140)
        add(t, "teacher", "tiny-teacher", [], "tiny-2l", 10 + ord(style), {"style": style})
        h = out / f"harvest-{t}.jsonl"
        if not h.exists():
            harvest(
                load_model(str(out / t)),
                _prompts(ord(style), 96),
                h,
                max_new_tokens=64,
                temperature=0.7,
                seed=3,
                progress=False,
            )
        recs = read_records(h)
        for name, arch, seed, n, steps in (
            (f"{t}-seqkd-s0", "tiny-2l", 0, 96, 140),
            (f"{t}-seqkd-s1", "tiny-2l", 1, 96, 140),
            (f"{t}-seqkd-4l", "small-4l", 0, 96, 140),
            (f"{t}-seqkd-smalldata", "tiny-2l", 2, 24, 100),
        ):
            train(name, arch, recs[:n], seed, steps)
            add(name, "student", "seq-kd", [t], arch, seed, {"harvest": h.name, "n": n})
    mix = (
        read_records(out / "harvest-teacher-A.jsonl")[:48]
        + read_records(out / "harvest-teacher-B.jsonl")[:48]
    )
    train("mix-A-B", "tiny-2l", mix, 5, 140)
    add("mix-A-B", "student", "mix", ["teacher-A", "teacher-B"], "tiny-2l", 5, {"n": 96})
    for style, seed in (("D", 21), ("E", 22), ("F", 23)):
        name = f"independent-{style}"
        train(name, "tiny-2l", _records(style, 0, 96), seed, 140)
        add(name, "independent", "human-text", [], "tiny-2l", seed, {"style": style})
    Manifest("style", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), members).save(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    t = time.time()
    build(Path(a.out))
    print(f"built style zoo in {a.out} in {time.time() - t:.0f} s")


if __name__ == "__main__":
    main()
