"""How the suspect is prompted: its declared chat template, raw text, or a user pattern
such as "Question: {prompt}\\nAnswer: ". With "auto", a pilot on prompts used by no test
(the end of the probe pool) tries the template and raw text and keeps the one with the
fewest degenerate answers (degenerate.py): the choice reads the suspect's answers alone,
never a reference's or a control's, so every test's null holds for the format chosen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from distilltrace.errors import InputError
from distilltrace.models.base import CHAT, Generation, Model
from distilltrace.provenance.degenerate import Degeneracy, degeneracy

FIXED = ("chat", "raw")
AUTO_CANDIDATES = ("chat", "raw")  # tried in this order; a tie keeps the earlier one
MOSTLY_DEGENERATE = 0.5  # a chosen format with more degenerate answers is warned about


def check_format(fmt: str, extra: Sequence[str] = ()) -> None:
    """InputError unless `fmt` is chat, raw, auto or a pattern containing {prompt} (and
    every extra candidate of "auto" is a pattern)."""
    for f in extra:
        if "{prompt}" not in f:
            raise InputError(f"format candidate {f!r} is not a pattern containing {{prompt}}")
    if fmt in (*FIXED, "auto"):
        return
    if "{prompt}" not in fmt:
        raise InputError(
            f"--suspect-format {fmt!r}: use chat, raw, auto or a pattern containing {{prompt}} "
            "(e.g. 'Question: {prompt}\\nAnswer: ')"
        )


def candidates(fmt: str, model: Model, extra: Sequence[str] = ()) -> list[str]:
    """The formats the pilot tries (one for a fixed format; for "auto": chat, raw, then
    the `extra` patterns). A model without a chat template offers raw text for chat."""
    if fmt != "auto":
        return [fmt]
    has_chat = CHAT in getattr(model.info, "supports", frozenset())
    base = list(AUTO_CANDIDATES) if has_chat else ["raw"]
    return list(dict.fromkeys([*base, *extra]))


def base_identity(m: Model) -> str:
    """The identity of the model under a format wrapper (its own identity otherwise)."""
    return m.info.extra.get("base_identity", m.info.identity)


class FormattedModel:
    """A model prompted in a given format. `chat=True` calls (the tests' queries) use the
    format; `chat=False` calls (neutral text) pass through as raw text. Its identity is the
    model's plus the format, so memoised answers of one format never stand for another's."""

    def __init__(self, model: Model, fmt: str):
        self.inner, self.fmt = model, fmt
        ident = model.info.identity if fmt == "chat" else f"{model.info.identity}|fmt={fmt}"
        extra = {**model.info.extra, "base_identity": model.info.identity, "prompt_format": fmt}
        self.info = replace(model.info, identity=ident, extra=extra)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _wrap(self, prompts: Sequence[str], chat: bool) -> tuple[list[str], bool]:
        if not chat or self.fmt == "chat":
            return list(prompts), chat
        if self.fmt == "raw":
            return list(prompts), False
        return [self.fmt.replace("{prompt}", p) for p in prompts], False

    def generate(self, prompts: Sequence[str], *args: Any, chat: bool = True, **kw: Any):
        ps, c = self._wrap(prompts, chat)
        out = self.inner.generate(ps, *args, chat=c, **kw)
        return [Generation(p, g.text, g.token_ids, g.finish_reason) for p, g in zip(prompts, out, strict=True)]  # fmt: skip

    def score(self, prompts: Sequence[str], continuations: Sequence[str], chat: bool = True):
        ps, c = self._wrap(prompts, chat)
        return self.inner.score(ps, continuations, chat=c)

    def next_token_logprobs(self, prompts: Sequence[str], top_k: int = 5, chat: bool = True):
        ps, c = self._wrap(prompts, chat)
        return self.inner.next_token_logprobs(ps, top_k=top_k, chat=c)


def pilot(
    model: Model, fmt: str, prompts: Sequence[str], max_new_tokens: int, extra: Sequence[str] = ()
) -> tuple[Model, dict[str, Degeneracy], list[str]]:
    """The suspect in the format chosen (see module), every candidate's degeneracy on the
    pilot prompts, and warnings. The pilot's queries are the caller's to count."""
    check_format(fmt, extra)
    cands = candidates(fmt, model, extra)
    found: dict[str, Degeneracy] = {}
    wrapped: dict[str, Model] = {}
    for f in cands:
        wrapped[f] = FormattedModel(model, f)
        gens = wrapped[f].generate(list(prompts), max_new_tokens=max_new_tokens, temperature=0.0)
        found[f] = degeneracy([g.text for g in gens], list(prompts))
    best = min(cands, key=lambda f: (found[f].rate, cands.index(f)))
    warns = []
    if fmt == "auto" and found[best].rate < found[cands[0]].rate:
        warns.append(
            f"the suspect answers degenerately as {cands[0]!r} text "
            f"({found[cands[0]].rate:.0%} of {found[cands[0]].n} pilot answers: "
            f"{_reasons(found[cands[0]])}); it is queried as {best!r} text instead "
            f"({found[best].rate:.0%} degenerate)"
        )
    if found[best].rate > MOSTLY_DEGENERATE:
        warns.append(
            f"the suspect's answers are mostly degenerate in format {best!r} "
            f"({found[best].rate:.0%} of {found[best].n} pilot answers: {_reasons(found[best])}): "
            "the tests will have little to compare; try --suspect-format raw, auto or a pattern"
        )
    return wrapped[best], found, warns


def _reasons(d: Degeneracy) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(d.reasons.items())) or "none"
