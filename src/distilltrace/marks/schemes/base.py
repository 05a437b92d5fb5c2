"""What a watermark scheme is, and the registry of schemes.

A scheme is a frozen dataclass whose fields are its own parameters (validated in
``__post_init__``). It owns four things:

- its **per-tuple score** (`score`): from the keyed uint64 hash of each scored
  (window seed, token) tuple (see `marks.hashing`), a float;
- its **null distribution** (`null`): the mean, z-score and exact ln p-value of the summed
  score of n tuples under H0 (text independent of the key), and the words for it;
- its **logits processor** (`processor`): what marks generation;
- optionally a randomised p-value for discrete tests (`randomized_pvalue`).

The window hashing (context width, seeding) is shared by every scheme and lives in
`SchemeParams` / `Watermark`. Schemes are registered in the plain dict `SCHEMES` by
`register_scheme(cls)`: the built-ins (`marks/schemes/__init__.py`) and plugins alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

SCHEMES: dict[str, type[WatermarkScheme]] = {}


@dataclass(frozen=True)
class NullTest:
    """A statistic over n scored tuples against the scheme's null distribution."""

    expected: float  # mean of the statistic under H0
    z: float
    log_p: float  # ln P(statistic' >= statistic) under H0, exact


@dataclass(frozen=True)
class WatermarkScheme:
    """Base class of schemes: subclass as a frozen dataclass, set `name`, implement the
    four methods, and call `register_scheme` on the class."""

    name: ClassVar[str] = ""
    # each sample keeps the model's distribution: the mark moves a choice only where the
    # model was unsure (closed-mode radioactivity then scores those tokens: custody/claims.py)
    distortion_free: ClassVar[bool] = False

    def to_dict(self) -> dict[str, Any]:
        """The scheme's own parameters (key files store them; the key MAC covers them)."""
        return asdict(self)

    def score(self, bits: np.ndarray) -> np.ndarray:
        """Per-tuple scores from the uint64 hash of each (window seed, token) tuple."""
        raise NotImplementedError

    def null(self, n: int, statistic: float) -> NullTest:
        """The summed score of n distinct tuples against its exact null distribution."""
        raise NotImplementedError

    def null_text(self) -> str:
        """The null distribution in words, e.g. 'the green count is Binomial(n, gamma=0.25)'."""
        raise NotImplementedError

    def processor(self, wm: Any) -> Any:
        """A transformers-style logits processor that marks generation with key `wm`."""
        raise NotImplementedError

    def randomized_pvalue(self, test: Any, rng: np.random.Generator) -> float | None:
        """A p-value exactly uniform under H0 (differs from the reported one only for
        discrete statistics; diagnostic)."""
        return test.pvalue

    def masks_repeated_windows(self) -> bool:
        """Whether generation leaves a window unmarked when it already occurred earlier in
        the sequence (detection then skips such windows within each text too)."""
        return False

    # Weighted tests (`marks.weighted`): optional, for schemes whose tuple score has a known
    # null law. Without them a scheme still marks and detects; only weighted tests refuse.
    def tuple_mean(self) -> float:
        """The mean of one tuple's score under H0."""
        raise NotImplementedError

    def centred_cgf(self, t: np.ndarray) -> np.ndarray:
        """ln E exp(t (score - mean)) of one tuple's score under H0, element-wise in t
        (+inf where it diverges)."""
        raise NotImplementedError

    def weighted_log_sf(self, weights: np.ndarray, statistic: float) -> float:
        """An upper bound on ln P(sum_i w_i (score_i - mean) >= statistic) under H0, for
        fixed weights and independent tuples: Chernoff's, from `centred_cgf`."""
        from distilltrace.marks.weighted import chernoff_log_sf

        return chernoff_log_sf(np.asarray(weights, dtype=np.float64), statistic, self.centred_cgf)


def register_scheme(cls: type[WatermarkScheme], *, replace: bool = False) -> type:
    """Add a scheme class to `SCHEMES` under `cls.name` (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, WatermarkScheme)):
        raise TypeError("a watermark scheme is a WatermarkScheme subclass")
    name = cls.name
    if not name or not isinstance(name, str):
        raise ValueError(f"scheme class {cls.__name__} needs a non-empty `name`")
    if name in SCHEMES and SCHEMES[name] is not cls and not replace:
        raise ValueError(f"a watermark scheme named {name!r} is already registered")
    SCHEMES[name] = cls
    return cls


def unregister_scheme(name: str) -> None:
    """Remove a scheme from the registry (for plugins and tests)."""
    SCHEMES.pop(name, None)


def get_scheme(name: str) -> type[WatermarkScheme]:
    """The scheme class registered under `name` (ValueError naming the choices)."""
    cls = SCHEMES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"unknown scheme {name!r}; choose from {tuple(SCHEMES)}")
    return cls


def z_score(statistic: float, mean: float, var: float) -> float:
    return (statistic - mean) / math.sqrt(var) if var > 0 else 0.0


class KeyedProcessor:
    """Base of logits processors keyed by a Watermark: never printed with the secret,
    never pickled; `_seeds` gives each row's window seed (None before h tokens exist)."""

    def __init__(self, wm: Any):
        self._wm = wm

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_id={self._wm.key_id!r}, params={self._wm.params!r})"

    def __reduce__(self):
        raise TypeError("a watermark processor holds a secret and cannot be pickled")

    @property
    def cache_key(self) -> str:
        """How the query cache (models.cache) tells this processor's generations apart:
        the processor, the key id (a one-way hash of the secret: never the secret) and
        the scheme's parameters."""
        return f"{type(self).__name__}:{self._wm.key_id}:{self._wm.params!r}"

    def process_rows(self, seqs: Sequence[Sequence[int]], scores: Any) -> Any:
        """The processor on rows of different lengths at once (serve's running batch),
        each row as it would be processed alone on its own tokens.

        Rows shorter than the context width have no window yet and are left as they are.
        The others are left-padded with -1, which is no token: a row's seed comes from its
        own last tokens, and no window that includes padding equals a real one.
        """
        import torch

        h = self._wm.context_width
        live = [i for i, s in enumerate(seqs) if len(s) >= h]
        if not live:
            return scores
        width = max(len(seqs[i]) for i in live)
        ids = torch.full((len(live), width), -1, dtype=torch.long)
        for j, i in enumerate(live):
            ids[j, width - len(seqs[i]) :] = torch.as_tensor(seqs[i], dtype=torch.long)
        if len(live) == len(seqs):
            return self(ids.to(scores.device), scores)
        out = scores.clone()
        out[live] = self(ids.to(scores.device), scores[live])
        return out

    def _seeds(self, input_ids: Any) -> list[int] | None:
        h = self._wm.context_width
        if input_ids.shape[1] < h:
            return None
        return [self._wm.window_seed(w) for w in input_ids[:, -h:].tolist()]
