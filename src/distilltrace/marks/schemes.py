"""Watermarking schemes as logits processors, and the Watermark object that holds a key.

Two schemes, both keyed by the uniform u(window, token) of `marks.hashing`:

- ``greenlist`` (Kirchenbauer et al. 2023): token v is green under a window when
  u(window, v) < gamma; generation adds delta to the green tokens' scores. Under the
  null (text independent of the key) each unique (window, token) tuple is green with
  probability gamma, independently.
- ``gumbel`` (Aaronson's Gumbel-max / exponential scheme): the token is
  argmax_v u(window, v) ** (1 / p_v), with p the (temperature- and top-p-warped)
  next-token distribution. For a random key this picks v with probability p_v exactly
  (distortion-free); detection sums -log(1 - u) over scored tuples, Exp(1) each under
  the null.

Processors follow the transformers `LogitsProcessor` call convention
``(input_ids[B, T], scores[B, V]) -> scores`` and run after temperature/top-p warping
and before the token pick (see `distilltrace.models.sampling`).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from distilltrace.errors import CapabilityError, InputError
from distilltrace.marks.hashing import (
    SEEDING_SCHEMES,
    RowHasher,
    WindowHasher,
    bits_to_uniform,
    pair_bits,
    row_bits,
)
from distilltrace.marks.secret import Secret

SCHEMES = ("greenlist", "gumbel")


class TokenizerMismatchError(InputError):
    """Text or a model uses a different tokenizer from the one the key is bound to."""


@dataclass(frozen=True)
class SchemeParams:
    """Public parameters of a watermark scheme (everything but the secret)."""

    scheme: str = "greenlist"
    context_width: int = 2
    seeding: str = "lefthash"
    gamma: float = 0.25  # greenlist: fraction of the vocabulary that is green
    delta: float = 4.0  # greenlist: logit bias added to green tokens (see docs/marks.md)

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {self.scheme!r}; choose from {SCHEMES}")
        if self.seeding not in SEEDING_SCHEMES:
            raise ValueError(f"unknown seeding {self.seeding!r}; choose from {SEEDING_SCHEMES}")
        if not isinstance(self.context_width, int) or not 1 <= self.context_width <= 16:
            raise ValueError("context_width must be an integer in [1, 16]")
        if not 0.0 < float(self.gamma) < 1.0:
            raise ValueError("gamma must be in (0, 1)")
        if not 0.0 <= float(self.delta) < 100.0:
            raise ValueError("delta must be in [0, 100)")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.scheme != "greenlist":
            d.pop("gamma")
            d.pop("delta")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SchemeParams:
        known = {"scheme", "context_width", "seeding", "gamma", "delta"}
        extra = set(d) - known
        if extra:
            raise ValueError(f"unknown parameter(s) {sorted(extra)}")
        kw = dict(d)
        if "context_width" in kw:
            kw["context_width"] = int(kw["context_width"])
        for k in ("gamma", "delta"):
            if k in kw:
                kw[k] = float(kw[k])
        return cls(**kw)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A stable hash of a tokenizer's vocabulary (ids and pieces)."""
    try:
        vocab = tokenizer.get_vocab()
    except Exception as e:  # noqa: BLE001 - any tokenizer without a vocab is unusable here
        raise InputError(f"cannot read the tokenizer's vocabulary ({type(e).__name__})") from None
    h = hashlib.sha256()
    for tok, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        h.update(f"{i}\t{tok}\n".encode())
    return f"{len(vocab)}:{h.hexdigest()[:24]}"


@dataclass(frozen=True)
class TokenizerBinding:
    """The tokenizer a key is bound to: how to load it, and how to recognise it."""

    fingerprint: str
    spec: str | None = None  # a model spec whose tokenizer this is (for loading at detection)
    id: str | None = None  # the model interface's tokenizer_id, for display

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TokenizerBinding:
        if not d.get("fingerprint"):
            raise ValueError("the key names no tokenizer fingerprint")
        return cls(fingerprint=str(d["fingerprint"]), spec=d.get("spec"), id=d.get("id"))

    @classmethod
    def of_model(cls, model: Any) -> TokenizerBinding:
        """The binding of a local model's tokenizer."""
        tok = getattr(model, "tokenizer", None)
        if tok is None:
            raise CapabilityError(
                f"model {model.info.name!r} has no local tokenizer; a watermark key must be "
                "bound to a local model's tokenizer"
            )
        return cls(
            fingerprint=tokenizer_fingerprint(tok), spec=model.info.spec, id=model.info.tokenizer_id
        )


class Watermark:
    """A loaded watermark key: public id and parameters, and processors for generation.

    The secret stays inside; repr, str and to_dict never show it.
    """

    def __init__(
        self, *, key_id: str, params: SchemeParams, tokenizer: TokenizerBinding, secret: Secret
    ):
        if not isinstance(secret, Secret):
            raise TypeError("secret must be a Secret")
        self.key_id = key_id
        self.params = params
        self.tokenizer = tokenizer
        self._hasher = WindowHasher(secret.reveal(), params.seeding, params.context_width)
        self._green_limit = np.uint64(int(round(params.gamma * 2.0**53)))

    @property
    def scheme(self) -> str:
        return self.params.scheme

    @property
    def context_width(self) -> int:
        return self.params.context_width

    def __repr__(self) -> str:
        return f"Watermark(key_id={self.key_id!r}, params={self.params!r})"

    __str__ = __repr__

    def __reduce__(self):
        raise TypeError("a Watermark holds a secret and cannot be pickled")

    def to_dict(self) -> dict[str, Any]:
        """Public description: key id, scheme parameters, tokenizer binding."""
        return {
            "key_id": self.key_id,
            "scheme": self.scheme,
            "params": self.params.to_dict(),
            "tokenizer": self.tokenizer.to_dict(),
        }

    # ------------------------------------------------------------------ tokenizer
    def check_tokenizer(self, tokenizer: Any, what: str = "the tokenizer") -> None:
        """Raise TokenizerMismatchError unless tokenizer is the one the key is bound to."""
        fp = tokenizer_fingerprint(tokenizer)
        if fp != self.tokenizer.fingerprint:
            raise TokenizerMismatchError(
                f"{what} (vocabulary {fp}) is not the tokenizer key {self.key_id} is bound to "
                f"(vocabulary {self.tokenizer.fingerprint}, from {self.tokenizer.spec or 'unknown'})"
            )

    # ------------------------------------------------------------------ hashing
    def window_seed(self, window: list[int]) -> int:
        """The keyed seed of one context window (h token ids)."""
        return self._hasher.seed(window)

    def sequence_seeds(self, ids: list[int]) -> np.ndarray:
        """Seeds of the windows before positions h..len(ids)-1 of a token sequence."""
        return self._hasher.seeds_of_sequence(ids)

    def tuple_scores(self, seeds: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Per-(window, token) scores: green indicator (greenlist) or -log(1-u) (gumbel)."""
        bits = pair_bits(np.asarray(seeds, dtype=np.uint64), np.asarray(tokens))
        if self.scheme == "greenlist":
            return ((bits >> np.uint64(11)) < self._green_limit).astype(np.float64)
        return -np.log1p(-bits_to_uniform(bits))

    def green_mask(self, seed: int, vocab_size: int) -> np.ndarray:
        """Which tokens are green under one window seed (greenlist)."""
        return (row_bits(seed, vocab_size) >> np.uint64(11)) < self._green_limit

    def green_bits_limit(self) -> np.uint64:
        """Green iff a token's uint64 hash is below this (same rule as green_mask)."""
        return np.uint64(int(self._green_limit) << 11)

    def row_uniforms(self, seed: int, vocab_size: int) -> np.ndarray:
        """u(window, v) for every token v under one window seed."""
        return bits_to_uniform(row_bits(seed, vocab_size))

    # ------------------------------------------------------------------ generation
    def logits_processors(self, model: Any) -> list:
        """Processors that mark a local model's generations (checks the tokenizer first)."""
        tok = getattr(model, "tokenizer", None)
        if tok is None:
            raise CapabilityError(
                f"model {getattr(getattr(model, 'info', None), 'name', model)!r} has no local "
                "tokenizer and logits; watermarks need a local model"
            )
        self.check_tokenizer(tok, what=f"the tokenizer of model {model.info.name!r}")
        if self.scheme == "greenlist":
            return [GreenListProcessor(self)]
        return [GumbelProcessor(self)]


class _KeyedProcessor:
    def __init__(self, wm: Watermark):
        self._wm = wm

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key_id={self._wm.key_id!r}, params={self._wm.params!r})"

    def __reduce__(self):
        raise TypeError("a watermark processor holds a secret and cannot be pickled")

    def _seeds(self, input_ids: torch.Tensor) -> list[int] | None:
        h = self._wm.context_width
        if input_ids.shape[1] < h:
            return None
        return [self._wm.window_seed(w) for w in input_ids[:, -h:].tolist()]


class GreenListProcessor(_KeyedProcessor):
    """Adds delta to the scores of the green tokens of each row's context window."""

    def __init__(self, wm: Watermark):
        super().__init__(wm)
        self._rows = RowHasher()
        self._limit = wm.green_bits_limit()

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        seeds = self._seeds(input_ids)
        if seeds is None:
            return scores
        green = torch.from_numpy(self._rows(seeds, scores.shape[-1]) < self._limit)
        return torch.add(scores, green.to(scores.device), alpha=float(self._wm.params.delta))


class GumbelProcessor(_KeyedProcessor):
    """Decides each row's token as argmax_v u(window, v) ** (1 / p_v); others become -inf."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        seeds = self._seeds(input_ids)
        if seeds is None:
            return scores
        vocab = scores.shape[-1]
        out = torch.full_like(scores, float("-inf"))
        for i, s in enumerate(seeds):
            row = scores[i].double()
            if not torch.isfinite(row).any():
                out[i] = scores[i]
                continue
            probs = torch.softmax(row, dim=-1).cpu()
            logu = torch.from_numpy(np.log(self._wm.row_uniforms(s, vocab)))
            key = logu / probs  # log(u ** (1/p)); -inf where p == 0
            out[i, int(torch.argmax(key))] = 0.0
        return out
