"""A score simulator for the provenance tests' calibration and power checks.

Models "R" (the reference), "S" (the suspect) and the controls score each other's answers
to n prompts; the score of scorer a on generator g's answers is a's skill + g's fluency + a
pairwise affinity + noise. With `derived` > 0 the R-S affinity is raised (S was distilled
from R); `affinity_sd` adds a random model-level part to every pair, as seeds and data
order give real models. Used by the tests (`tests/provenance`) and by
`benchmarks/provenance_standing.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def simulated_scores(
    rng: np.random.Generator,
    n: int,
    controls: Sequence[str],
    derived: float = 0.0,
    skill_sd: float = 0.2,
    affinity_sd: float = 0.0,
    skill: dict[str, float] | None = None,
) -> dict[tuple[str, str], np.ndarray]:
    """Per-char scores s(scorer, generator): scorer skill + generator fluency + a pairwise
    affinity (a random model-level part with sd `affinity_sd`, as seeds and data order give
    real models) + noise; models are exchangeable except an added R-S affinity when
    derived > 0. `skill` fixes the scorers' skills (default: normal with sd `skill_sd`)."""
    models = ["R", "S", *controls]
    fluency = {g: rng.normal(0, 0.2) for g in models}
    skill = skill or {m: rng.normal(0, skill_sd) for m in models}
    per_prompt = rng.normal(0, 0.3, n)
    scores = {}
    for a in models:
        for g in models:
            aff = 0.8 if a == g else (derived if {a, g} == {"R", "S"} else 0.0)
            aff += rng.normal(0, affinity_sd) if a != g else 0.0
            scores[(a, g)] = -2 + skill[a] + fluency[g] + per_prompt + aff + rng.normal(0, 0.3, n)
    return scores
