"""Probe prompts: the pool, user prompt files, and adaptive (query-free) prompt selection.

The pool is an i.i.d. sample from a prompt generator (the project's instruction-prompt
generator, or prompts written here for provenance probing), plus user-supplied prompts.
Adaptive selection accepts each pool prompt with a probability w(x) computed from the
reference's and the controls' greedy outputs only; the accepted prompts are then an
i.i.d. sample from the reweighted distribution D_w (proportional to w times the pool
distribution), chosen before any suspect query, so the tests' nulls are stated over D_w.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from distilltrace.errors import InputError
from distilltrace.prompts import generate_prompts, load_prompts

# Open-ended starters written for provenance probing: short answers whose first words
# differ between models (phrasing, not facts), so agreement reflects learned style.
_STARTERS = (
    "Write one sentence about {t}.",
    "Describe {t} in a few words.",
    "Complete the sentence: The most important thing about {t} is",
    "Give a short definition of {t}.",
    "What is the first thing you think of when you hear '{t}'?",
    "Start a short story about {t}.",
    "Give one tip about {t}.",
    "Explain {t} to a child in one sentence.",
    "Write a title for an article about {t}.",
    "List three words related to {t}.",
)
_TOPICS = (
    "the ocean",
    "coffee",
    "trains",
    "a rainy day",
    "mathematics",
    "friendship",
    "winter",
    "the moon",
    "bread",
    "music",
    "a small village",
    "robots",
    "gardening",
    "history",
    "bicycles",
    "the internet",
    "a library",
    "mountains",
    "cats",
    "sleep",
    "volcanoes",
    "money",
    "a lighthouse",
    "chess",
    "the desert",
    "time",
    "a river",
    "birds",
    "cooking",
    "electricity",
    "maps",
    "a city at night",
    "languages",
    "the forest",
    "memory",
    "storms",
    "paper",
    "bridges",
    "the stars",
    "learning",
    "a market",
    "clocks",
    "islands",
    "snow",
)


def builtin_prompts(n: int, seed: int = 0) -> list[str]:
    """n prompts drawn i.i.d. (with replacement) from the provenance starters x topics."""
    r = random.Random(f"distilltrace-provenance-probes:{seed}")
    return [r.choice(_STARTERS).format(t=r.choice(_TOPICS)) for _ in range(n)]


def probe_pool(
    n: int, seed: int = 0, source: str = "auto", files: Sequence[str | Path] = ()
) -> list[str]:
    """The probe pool: user files first (in file order), then n generated prompts.

    source: "distill" (the project's instruction-prompt generator, `distilltrace.prompts`,
    the one the distillation sets are drawn from, at another seed), "builtin" (the
    starters above), "auto" (the same as "distill"), or "none".
    """
    out: list[str] = []
    for f in files:
        out.extend(load_prompts(f))
    if source == "none" or n <= 0:
        pass
    elif source in ("distill", "auto"):
        out.extend(p.text for p in generate_prompts(n, seed=seed + 7919))
    elif source == "builtin":
        out.extend(builtin_prompts(n, seed))
    else:
        raise InputError(f"unknown prompt source {source!r}: use auto, distill, builtin or none")
    if not out:
        raise InputError("the probe pool is empty: give prompt files or a generated pool size")
    return out


def disagreement_weight(
    agree_ref_controls: Mapping[str, float] | Sequence[float], floor: float = 0.1
) -> float:
    """Acceptance probability of a prompt: floor + (1 - floor) * mean control disagreement
    with the reference. Prompts where the controls answer unlike the reference carry the
    most information; a prompt where only one control deviates gets a small weight, so
    selection favours the reference's idiosyncrasies (conservative for non-derived suspects)."""
    vals = (
        list(agree_ref_controls.values())
        if isinstance(agree_ref_controls, Mapping)
        else list(agree_ref_controls)
    )
    if not vals:
        return 1.0
    dis = 1.0 - float(np.mean(vals))
    return float(floor + (1.0 - floor) * min(1.0, max(0.0, dis)))


def prompt_families(cfg) -> dict[str, str]:
    """prompt -> family for the generated part of the probe pool (the instruction
    generator's families: explain, math, code, ...; "builtin" for the provenance starters;
    prompts from files are "file")."""
    out = {p: "file" for f in cfg.prompt_files for p in load_prompts(f)}
    if cfg.prompt_source in ("distill", "auto") and cfg.pool_size > 0:
        out.update(
            {p.text: p.family for p in generate_prompts(cfg.pool_size, seed=cfg.seed + 7919)}
        )
    elif cfg.prompt_source == "builtin":
        out.update({p: "builtin" for p in builtin_prompts(cfg.pool_size, cfg.seed)})
    return out


def family_table(rec, families: Mapping[str, str]) -> dict[str, dict]:
    """Per probe family of a greedy stream: prompts, mean agreement of the suspect with the
    reference and with its closest control (descriptive; the test is over all families)."""
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(rec.prompts):
        groups.setdefault(families.get(p, "other"), []).append(i)
    out = {}
    for fam, idx in sorted(groups.items()):
        a_r = float(np.mean([rec.agree_r[i] for i in idx]))
        a_c = float(np.mean([max((v[i] for v in rec.agree_c.values()), default=0.0) for i in idx]))
        out[fam] = {"n": len(idx), "agreement_with_reference": a_r, "closest_control": a_c}
    return out
