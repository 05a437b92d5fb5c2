"""Watermarking schemes as logits processors, and the Watermark object that holds a key.

Every scheme is keyed by the uniform u(window, token) of `marks.hashing` and is a class
in the registry `SCHEMES` (see `schemes.base.WatermarkScheme`):

- ``greenlist`` (`GreenList`, Kirchenbauer et al. 2023): adds delta to the logits of the
  tokens with u < gamma; the green count is Binomial(n, gamma) under the null.
- ``gumbel`` (`Gumbel`, Aaronson's Gumbel-max): picks argmax_v u ** (1 / p_v),
  distortion-free; the sum of -log(1 - u) is Gamma(n, 1) under the null.
- ``tournament`` (`Tournament`, SynthID-Text's tournament sampling; the default,
  `DEFAULT_SCHEME`): samples the winner of a keyed m-layer tournament, distortion-free per
  sample and diverse across seeds; the count of 1-valued g-bits is Binomial(n m, 1/2).

Adding a scheme: one new module with a `WatermarkScheme` subclass, and one
`register_scheme(...)` line below (a plugin calls `register_scheme` itself).

Processors follow the transformers `LogitsProcessor` call convention
``(input_ids[B, T], scores[B, V]) -> scores`` and run after temperature/top-p warping
and before the token pick (see `distilltrace.models.sampling`).
"""

from __future__ import annotations

from distilltrace.marks.schemes.base import (
    SCHEMES,
    KeyedProcessor,
    NullTest,
    WatermarkScheme,
    get_scheme,
    register_scheme,
    unregister_scheme,
)
from distilltrace.marks.schemes.greenlist import GreenList, GreenListProcessor
from distilltrace.marks.schemes.gumbel import Gumbel, GumbelProcessor
from distilltrace.marks.schemes.tournament import Tournament, TournamentProcessor

register_scheme(GreenList)
register_scheme(Gumbel)
register_scheme(Tournament)

DEFAULT_SCHEME = "tournament"  # what keygen, SchemeParams() and the benchmarks use by default

from distilltrace.marks.schemes.watermark import (  # noqa: E402 - after the registrations
    SchemeParams,
    TokenizerBinding,
    TokenizerMismatchError,
    Watermark,
)
from distilltrace.models.identity import tokenizer_fingerprint  # noqa: E402

__all__ = [
    "DEFAULT_SCHEME",
    "SCHEMES",
    "GreenList",
    "GreenListProcessor",
    "Gumbel",
    "GumbelProcessor",
    "KeyedProcessor",
    "NullTest",
    "SchemeParams",
    "TokenizerBinding",
    "TokenizerMismatchError",
    "Tournament",
    "TournamentProcessor",
    "Watermark",
    "WatermarkScheme",
    "get_scheme",
    "register_scheme",
    "tokenizer_fingerprint",
    "unregister_scheme",
]
