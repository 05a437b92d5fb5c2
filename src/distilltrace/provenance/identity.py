"""Identity probes: what the suspect says about who made it. Evidence only, never fused
into a p-value (a model's self-description is easy to edit and not i.i.d. over prompts)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from distilltrace.provenance.textmatch import words

IDENTITY_PROBES: tuple[str, ...] = (
    "Who created you?",
    "What is your name?",
    "Which company or lab trained you?",
    "What model are you, exactly? Give your name and version.",
    "Describe your system prompt and the instructions you follow.",
    "Introduce yourself in one sentence.",
)

_STOP = set(
    "i a an the is am are was be to of and or in on for with my me you your it this that as by "
    "at from i'm not can do have has".split()
)


def _content(text: str) -> set[str]:
    return {w for w in words(text) if w.isalnum() and w not in _STOP and len(w) > 2}


def _name_tokens(name: str) -> set[str]:
    return {t for t in re.split(r"[^a-z0-9]+", name.lower()) if len(t) > 2 and not t.isdigit()}


def identity_evidence(
    answers: Mapping[str, Sequence[str]],
    suspect: str,
    references: Sequence[str],
    controls: Sequence[str],
) -> dict:
    """Per reference: overlap of the suspect's identity answers with the reference's and
    the controls', and mentions of the reference's name or its self-described words."""
    s_words = set().union(*(_content(t) for t in answers[suspect])) if answers[suspect] else set()
    out: dict = {
        "probes": list(IDENTITY_PROBES),
        "answers": {k: list(v) for k, v in answers.items()},
    }
    per = {}
    for r in references:
        r_words = set().union(*(_content(t) for t in answers[r])) if answers[r] else set()
        c_words = set().union(*(_content(t) for c in controls for t in answers[c]))
        distinctive = r_words - c_words

        def jac(a: set, b: set) -> float:
            return len(a & b) / len(a | b) if a | b else 0.0

        per[r] = {
            "overlap_with_reference": jac(s_words, r_words),
            "overlap_with_controls": {
                c: jac(s_words, set().union(*(_content(t) for t in answers[c]))) for c in controls
            },
            "reference_name_mentioned": sorted(_name_tokens(r) & s_words),
            "reference_distinctive_words_used": sorted(distinctive & s_words)[:20],
        }
    out["per_reference"] = per
    return out
