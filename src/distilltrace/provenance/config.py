"""Parameters of a provenance test, and the library defaults (the one place they live).

Standard library only, so that the CLI can show the defaults without loading numpy.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

MIN_CONTROLS = 2  # controls per reference, at the least (distinct models)
WHY_CONTROLS = (
    "the likelihood and lexical tests compare the suspect with one control using a baseline "
    "built from the other controls (so at least 2 are needed for any control to be compared), "
    "and the greedy test asks the suspect to beat every control: with a single control the "
    "false-accusation rate rests entirely on that one model being as close to the reference "
    "as an innocent suspect would be"
)
DEFAULT_REVERSE_MARGIN = 0.05  # nats per character (likelihood_reverse null)
# The built-in tests (registered in distilltrace.provenance.builtin_tests), run by default.
# A test registered by a plugin runs when named in ProvenanceConfig.tests: each test that
# runs multiplies the Bonferroni factor, so adding one must be a choice, not a side effect.
DEFAULT_TESTS = ("greedy_agreement", "likelihood", "likelihood_reverse", "lexical_fingerprint")


@dataclass
class ProvenanceConfig:
    """Parameters of a provenance test (all seeded; the same config gives the same result)."""

    budget: int = 1000  # suspect queries in all (generate + score calls, one per prompt)
    alpha: float = 0.01  # family-wise error rate over references
    target_p: float = 1e-4  # stop querying a reference once its evidence reaches this
    # Stop testing a reference once its tests so far reach the stopping level (target_p
    # over its tests and references): the tests not run, and the greedy stream, count as
    # p = 1 in the Bonferroni, so the combined p-value stays valid
    stop_when_decided: bool = True
    # The fixed-sample tests run in this order (cheapest evidence first: the reverse test
    # needs the reference's outputs and suspect scores only); the others follow. The
    # served answers' test, when selected, goes first: the sharpest question, no controls
    fixed_order: tuple[str, ...] = (
        "harvest_membership", "likelihood_reverse", "likelihood", "lexical_fingerprint"
    )  # fmt: skip
    max_new_tokens: int = 48
    agreement_unit: str = "char"  # greedy test compares normalised "char"s or "word"s
    k_units: int = 40  # units (characters or words) compared by the greedy test
    agreement_margin: float = 0.05  # S must beat each control's agreement by more than this
    n_sampled: int = 100  # prompts with sampled outputs (likelihood, lexical), at most
    n_reverse: int = 150  # reference outputs the suspect scores per reference, at most
    n_gap: int = 30  # outputs per control the suspect scores (capability gap), at most
    reverse_margin: float = DEFAULT_REVERSE_MARGIN  # nats/char, part of its null
    n_fingerprint: int = 100  # prompts for the reference's lexical fingerprint (no suspect)
    sample_temperature: float = 0.7
    pool_size: int = 3000
    prompt_source: str = "auto"
    prompt_files: tuple[str, ...] = ()
    batch_size: int = 16
    adaptive: bool = True
    weight_floor: float = 0.1
    futility_level: float = 0.01
    identity_probes: bool = True
    tests: tuple[str, ...] = DEFAULT_TESTS
    seed: int = 0
    # first_words test (registered, not run by default; the baseline of bench provenance)
    n_first_words: int = 300  # greedy answers compared, per suspect (shared by references)
    first_words_k: int = 3  # words compared at the start of each answer
    # harvest_membership test (registered, not run by default): the exchanges we served
    # (JSON Lines, prompt and response, as `provenance membership --served`), the key they
    # were served under, and the reference that served them (needed with several)
    served: str = ""
    served_key: str = ""
    served_by: str = ""
    served_temperature: float | None = None  # serving settings for rows without them
    served_max_tokens: int | None = None
    served_top_p: float = 1.0
    membership_fresh: int = 1  # fresh answers from our model per exchange (k)
    membership_max: int = 128  # exchanges tested at most (a seeded sample)
    # How the suspect is prompted: "chat" (its declared template), "raw" (plain text),
    # "auto" (a control-free pilot picks chat or raw), or a pattern with "{prompt}".
    suspect_format: str = "chat"
    format_candidates: tuple[str, ...] = ()  # patterns "auto" tries after chat and raw
    n_format_pilot: int = 12  # suspect queries per candidate format in the "auto" pilot
    # Controls: "all" (the intersection-union runs over every control) or "matched" (only
    # over controls whose capability matches the suspect's, chosen before any test).
    control_rule: str = "all"
    capability_check: bool = True  # measure each control's capability against the suspect's
    n_capability: int = 16  # neutral human texts scored per model (capability check)
    capability_fit_tol: float = 0.25  # nats/char of fit a matched control may differ by
    capability_size_ratio: float = 4.0  # parameter-count ratio a matched control may have
    capability_degenerate_tol: float = 0.25  # difference in degenerate-answer rates
    # Compute precision of local models, set where they are loaded (CLI, bench): "auto"
    # (bfloat16 where the hardware runs it natively, else float32), "float32", "bfloat16".
    # See distilltrace.models.precision; each model's precision is in result.checks.
    dtype: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_options(self, **options: Any) -> ProvenanceConfig:
        """A copy with the options that are not None set (None: keep this config's value,
        so a caller passes what the user gave and the defaults stay here)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"unknown ProvenanceConfig options {unknown}")
        return replace(self, **{k: v for k, v in options.items() if v is not None})


DEFAULTS = ProvenanceConfig()
