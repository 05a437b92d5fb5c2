"""Control capability relative to the suspect: can each control stand in for "a model like
the suspect that does not derive from the reference"?

Three measurements per model, none of which involves the reference:
  fit     mean log-probability per character of a fixed set of neutral human texts
          (standard-library docstrings, distilltrace.distill.human_text), scored as raw
          text; higher is better.
  size    the parameter count, where the backend reports it.
  answers the share of degenerate greedy answers (empty, repetition, template echo) on the
          format pilot's prompts (prompts no test uses).

The rule, fixed in the config before any test runs: a control is mismatched when its fit
differs from the suspect's by more than `capability_fit_tol` nats per character, or its
parameter count is more than `capability_size_ratio` times larger or smaller, or its
degenerate-answer rate differs by more than `capability_degenerate_tol`.

`control_rule="matched"` runs the tests over the matched controls only. The selection reads
the suspect's and the controls' fit, size and answer quality on text and prompts no test
uses, never an answer of the reference, so every test's null holds conditionally on the
selected set: "for some capability-matched control C, ...". With fewer than 2 matched
controls the rule keeps what it can (one matched control; all controls when none match)
and says so.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from distilltrace.provenance.config import MIN_CONTROLS, ProvenanceConfig
from distilltrace.provenance.result import TestResult

NEUTRAL_CHARS = 360  # characters per neutral text (cut at a word boundary)
PROMPT_CHARS = 40  # the opening of a neutral text given as the prompt; the rest is scored


@functools.lru_cache(maxsize=4)
def neutral_texts(n: int) -> tuple[tuple[str, str], ...]:
    """n fixed (opening, rest) pairs of neutral human text (same for every run)."""
    from distilltrace.distill.human_text import human_corpus

    out = []
    for t in human_corpus(max_chars=None, seed=0, chunk_chars=NEUTRAL_CHARS):
        t = t[:NEUTRAL_CHARS].rsplit(" ", 1)[0] if len(t) > NEUTRAL_CHARS else t
        cut = t.find(" ", PROMPT_CHARS)
        if len(t) < 2 * PROMPT_CHARS or cut < 0:
            continue
        out.append((t[:cut], t[cut:]))
        if len(out) == n:
            break
    return tuple(out)


@dataclass
class Profile:
    """One model's capability measurements (None where not measurable)."""

    fit: float | None  # mean log-probability per character of the neutral texts
    n_parameters: int | None
    degenerate_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ControlCheck:
    """Per control: its profile, how it differs from the suspect's, and whether matched."""

    suspect: Profile
    controls: dict[str, Profile]
    mismatch: dict[str, list[str]]  # control -> reasons (empty: matched)
    rule: str
    thresholds: dict[str, float] = field(default_factory=dict)

    @property
    def matched(self) -> list[str]:
        return [c for c, why in self.mismatch.items() if not why]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["matched"] = self.matched
        return d


def profile(sess: Any, label: str, texts: Sequence[tuple[str, str]], answers: Any) -> Profile:
    """Fit (when the model can score), parameter count (when reported), degenerate rate."""
    fit = None
    if texts and sess.can_score(label):
        s = sess.scores(label, [a for a, _ in texts], [b for _, b in texts], chat=False)
        fit = float(np.mean(s))
    n_par = sess.models[label].info.extra.get("n_parameters")
    return Profile(fit, int(n_par) if n_par else None, answers)


def mismatch_reasons(s: Profile, c: Profile, cfg: ProvenanceConfig) -> list[str]:
    """Why control profile c is not matched to suspect profile s (the rule, see module)."""
    why = []
    if s.fit is not None and c.fit is not None and abs(c.fit - s.fit) > cfg.capability_fit_tol:
        better = "better" if c.fit > s.fit else "worse"
        why.append(
            f"fit to neutral text {abs(c.fit - s.fit):.2f} nats/char {better} than the "
            f"suspect's (per-character perplexity x{np.exp(s.fit - c.fit):.2g})"
        )
    if s.n_parameters and c.n_parameters:
        r = c.n_parameters / s.n_parameters
        if max(r, 1 / r) > cfg.capability_size_ratio:
            why.append(f"{r:.2g}x the suspect's parameters")
    if s.degenerate_rate is not None and c.degenerate_rate is not None:
        d = c.degenerate_rate - s.degenerate_rate
        if abs(d) > cfg.capability_degenerate_tol:
            why.append(
                f"degenerate answers {c.degenerate_rate:.0%} vs the suspect's {s.degenerate_rate:.0%}"
            )
    return why


def check_controls(
    sess: Any,
    suspect: str,
    controls: Sequence[str],
    answers: Mapping[str, float | None],
    cfg: ProvenanceConfig,
) -> ControlCheck:
    """Profiles of the suspect and every control, and the mismatched controls."""
    texts = neutral_texts(cfg.n_capability) if cfg.n_capability else ()
    s = profile(sess, suspect, texts, answers.get(suspect))
    prof = {c: profile(sess, c, texts, answers.get(c)) for c in controls}
    if s.fit is None:
        prof = {c: Profile(None, p.n_parameters, p.degenerate_rate) for c, p in prof.items()}
    return ControlCheck(
        suspect=s,
        controls=prof,
        mismatch={c: mismatch_reasons(s, p, cfg) for c, p in prof.items()},
        rule=(
            f"mismatched: fit differs by > {cfg.capability_fit_tol:g} nats/char, parameters "
            f"> {cfg.capability_size_ratio:g}x apart, or degenerate-answer rates > "
            f"{cfg.capability_degenerate_tol:g} apart (fixed before any test)"
        ),
        thresholds={
            "fit_nats_per_char": cfg.capability_fit_tol,
            "size_ratio": cfg.capability_size_ratio,
            "degenerate_rate": cfg.capability_degenerate_tol,
        },
    )


def matched_controls(check: ControlCheck, controls: Sequence[str]) -> tuple[list[str], str | None]:
    """The controls the "matched" rule keeps for one reference, and a warning if the rule
    could not keep MIN_CONTROLS of them."""
    keep = [c for c in controls if not check.mismatch.get(c)]
    if len(keep) >= MIN_CONTROLS:
        return keep, None
    if keep:
        return keep, (
            f"control rule 'matched': only {len(keep)} capability-matched control ({keep[0]}); "
            "the tests compare the suspect with it alone (the likelihood tests need more and "
            "are skipped)"
        )
    return list(controls), (
        "control rule 'matched': no control matches the suspect's capability; all controls "
        "are used and each verdict may be decided by a mismatched control"
    )


def deciding_controls(tests: Mapping[str, TestResult], check: ControlCheck) -> list[dict[str, Any]]:
    """For each test that ran with per-control p-values: the control with the largest p
    (the one its intersection-union verdict rests on), flagged when it is mismatched."""
    out = []
    for name, t in tests.items():
        per = {c: v.get("pvalue") for c, v in t.per_control.items() if v.get("pvalue") is not None}
        if not t.ran or not per:
            continue
        c = max(per, key=lambda k: per[k])
        why = check.mismatch.get(c, [])
        others = [per[k] for k in per if k != c]
        row = {"test": name, "control": c, "pvalue": per[c], "mismatched": bool(why)}
        row["pvalue_without_it"] = max(others) if others else None
        if why:
            row["message"] = (
                f"the {name} verdict (p = {per[c]:.2g}) is decided by control {c}, whose "
                f"{'; '.join(why)}" + (f"; without it p = {max(others):.2g}" if others else "")
            )
        out.append(row)
    return out
