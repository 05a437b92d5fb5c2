"""Language packs for campaign wording families (one module per language, written by hand).

A pack holds, in one language: capability items (math problems, coding tasks, agentic goals,
with numeric slots), the pieces that some families quote (final answers, candidate answers,
rubric criteria), casual lead-ins, student phrasings for a university course, and the
templates of every wording family. Templates are `str.format` strings; literal braces are
doubled. Slots:

- every family: `{item}` (the task being asked);
- `reconstruct`: `{answer}`; `preference_ab`: `{resp_a}`, `{resp_b}`;
  `grader_rubric`: `{response}`, `{rubric}`, `{scale}`;
  `agentic_think`: `{tools}` (tool schemas), `{open}` and `{close}` (thinking tags);
- items: `{a}` 2-39, `{b}` 2-59, `{c}` 3-96, `{d}` 1-199, `{big}` 100-99998, `{angle}`
  15-164, `{city}`, `{product}`; code frames `{language}`, `{task}`, `{constraint}`;
  agent frames `{goal}`, `{toolnames}`; candidates and student phrasings `{n}`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from functools import cache

WORDINGS = (
    "show_work",
    "agentic_think",
    "reconstruct",
    "complete_cot",
    "preference_ab",
    "grader_rubric",
    "structured_trace",
)
LANGUAGES = ("en", "zh", "ru", "es", "ko", "ja", "ar", "de", "fr")


@dataclass(frozen=True)
class LangPack:
    """Everything a campaign (or a course) writes in one language."""

    code: str
    math: list[str]
    code_frames: list[str]
    code_tasks: list[str]
    code_constraints: list[str]
    agent_goals: list[str]
    agent_frames: list[str]
    cities: list[str]
    products: list[str]
    approaches: list[str]
    candidates: list[str]
    criteria: list[str]
    leads: list[str]
    student: list[str]
    backref: str = "(see above)"  # stands for the item when a prompt puts the item first
    families: dict[str, list[str]] = field(default_factory=dict)

    def check(self) -> None:
        missing = [w for w in WORDINGS if not self.families.get(w)]
        if missing:
            raise ValueError(f"language pack {self.code!r} lacks wording families {missing}")


@cache
def pack(code: str) -> LangPack:
    """The pack of one language code (see LANGUAGES)."""
    if code not in LANGUAGES:
        raise ValueError(f"unknown language {code!r}; choose from {list(LANGUAGES)}")
    p = importlib.import_module(f"{__name__}.{code}").PACK
    p.check()
    return p
