"""The Watermark object (a loaded key), its public parameters and its tokenizer binding.

`SchemeParams` = the registered scheme's name, the window hashing shared by every scheme
(context width h, seeding), and the scheme object carrying the scheme's own parameters
(`impl`, e.g. ``GreenList(gamma=0.25, delta=4.0)``). Its dict form is what key files
store and the key MAC covers: ``{"scheme", "context_width", "seeding", **scheme params}``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from distilltrace.errors import CapabilityError, InputError
from distilltrace.marks.hashing import (
    SEEDING_SCHEMES,
    WindowHasher,
    bits_to_uniform,
    pair_bits,
    row_bits,
)
from distilltrace.marks.schemes.base import WatermarkScheme, get_scheme
from distilltrace.marks.secret import Secret
from distilltrace.models.identity import fingerprint_matches, tokenizer_fingerprint

_COMMON = ("scheme", "context_width", "seeding")


class TokenizerMismatchError(InputError):
    """Text or a model uses a different tokenizer from the one the key is bound to."""


@dataclass(frozen=True, init=False)
class SchemeParams:
    """Public parameters of a watermark (everything but the secret).

    ``SchemeParams(scheme="greenlist", context_width=2, seeding="lefthash", gamma=0.25,
    delta=4.0)``: the keyword arguments after the first three are the scheme's own
    parameters and are checked by the scheme class (ValueError when invalid or unknown).
    """

    scheme: str
    context_width: int
    seeding: str
    impl: WatermarkScheme

    def __init__(
        self,
        scheme: str | None = None,
        context_width: int = 2,
        seeding: str = "lefthash",
        **options: Any,
    ):
        if scheme is None:  # the default mark (late import: the registry module sets it)
            from distilltrace.marks.schemes import DEFAULT_SCHEME

            scheme = DEFAULT_SCHEME
        cls = get_scheme(scheme)
        if seeding not in SEEDING_SCHEMES:
            raise ValueError(f"unknown seeding {seeding!r}; choose from {SEEDING_SCHEMES}")
        if not isinstance(context_width, int) or not 1 <= context_width <= 16:
            raise ValueError("context_width must be an integer in [1, 16]")
        known = sorted(f.name for f in fields(cls))
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {unknown} for scheme {scheme!r} "
                f"(its parameters: {known or 'none'})"
            )
        try:
            impl = cls(**options)
        except TypeError as e:
            raise ValueError(f"bad parameter for scheme {scheme!r}: {e}") from None
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "context_width", context_width)
        object.__setattr__(self, "seeding", seeding)
        object.__setattr__(self, "impl", impl)

    def __getattr__(self, name: str) -> Any:
        # the scheme's own parameters read through: params.gamma, params.delta
        if name.startswith("_") or name == "impl":
            raise AttributeError(name)
        impl = self.__dict__.get("impl")
        if impl is not None and name in {f.name for f in fields(impl)}:
            return getattr(impl, name)
        raise AttributeError(f"scheme {self.__dict__.get('scheme')!r} has no parameter {name!r}")

    def __repr__(self) -> str:
        opts = "".join(f", {k}={v!r}" for k, v in self.impl.to_dict().items())
        return (
            f"SchemeParams(scheme={self.scheme!r}, context_width={self.context_width!r}, "
            f"seeding={self.seeding!r}{opts})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "context_width": self.context_width,
            "seeding": self.seeding,
            **self.impl.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SchemeParams:
        kw = dict(d)
        if not kw.get("scheme"):  # stored parameters always name their scheme: no default
            raise ValueError("the parameters name no scheme")
        if "context_width" in kw:
            kw["context_width"] = int(kw["context_width"])
        common = {k: kw.pop(k) for k in _COMMON if k in kw}
        return cls(**common, **kw)


@dataclass(frozen=True)
class TokenizerBinding:
    """The tokenizer a key is bound to: how to load it, and how to recognise it."""

    fingerprint: str  # models.identity.tokenizer_fingerprint (older keys: the legacy format)
    spec: str | None = None  # a model spec whose tokenizer this is (for loading at detection)
    id: str | None = None  # the model interface's tokenizer_id, for display

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def matches(self, tokenizer: Any) -> bool:
        """Whether `tokenizer` is the bound one (fingerprint in either recorded format)."""
        return fingerprint_matches(tokenizer, self.fingerprint)

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

    @property
    def scheme(self) -> str:
        return self.params.scheme

    @property
    def impl(self) -> WatermarkScheme:
        """The scheme object (its parameters, score, null distribution and processor)."""
        return self.params.impl

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

    def null_description(self) -> str:
        """The null hypothesis and null distribution of this key's detector, in words."""
        return (
            "H0: the scored tokens were produced independently of the key; each distinct "
            f"(window, token) tuple is scored once, so {self.impl.null_text()}."
        )

    # ------------------------------------------------------------------ tokenizer
    def check_tokenizer(self, tokenizer: Any, what: str = "the tokenizer") -> None:
        """Raise TokenizerMismatchError unless tokenizer is the one the key is bound to."""
        if not self.tokenizer.matches(tokenizer):
            raise TokenizerMismatchError(
                f"{what} (vocabulary {tokenizer_fingerprint(tokenizer)}) is not the tokenizer "
                f"key {self.key_id} is bound to (vocabulary {self.tokenizer.fingerprint}, "
                f"from {self.tokenizer.spec or 'unknown'})"
            )

    # ------------------------------------------------------------------ hashing
    def window_seed(self, window: list[int]) -> int:
        """The keyed seed of one context window (h token ids)."""
        return self._hasher.seed(window)

    def sequence_seeds(self, ids: list[int]) -> np.ndarray:
        """Seeds of the windows before positions h..len(ids)-1 of a token sequence."""
        return self._hasher.seeds_of_sequence(ids)

    def tuple_scores(self, seeds: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Per-(window, token) scores, by the scheme (green indicator, -log(1-u), ...)."""
        return self.impl.score(pair_bits(np.asarray(seeds, dtype=np.uint64), np.asarray(tokens)))

    def green_mask(self, seed: int, vocab_size: int) -> np.ndarray:
        """Which tokens are green under one window seed (green-list keys only)."""
        return self.impl.green_mask(seed, vocab_size)

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
        return [self.impl.processor(self)]
