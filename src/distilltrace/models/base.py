"""The model interface every backend implements, and its result types.

A backend takes a batch of prompts and returns one result per prompt, in order.
`chat=True` applies the model's chat template (where it has one) to each prompt as a
single user turn; `chat=False` treats the prompt as raw text to continue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

# Capability names a backend may list in ModelInfo.supports.
GENERATE = "generate"
LOGPROBS = "logprobs"  # next_token_logprobs
SCORE = "score"  # per-token log-probabilities of a given continuation
CHAT = "chat"  # has a chat template
LOGITS_PROCESSORS = "logits_processors"  # generate() accepts logits processors
WEIGHTS = "weights"  # local weights reachable (hf_model / tokenizer attributes)


@dataclass(frozen=True)
class ModelInfo:
    """What a model is and what its backend can do."""

    name: str
    spec: str
    backend: str
    tokenizer_id: str
    vocab_size: int
    identity: str  # stable content hash: the cache key and the "same model?" check
    supports: frozenset[str] = frozenset()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["supports"] = sorted(self.supports)
        return d


@dataclass(frozen=True)
class Generation:
    """One generated completion."""

    prompt: str
    text: str
    token_ids: tuple[int, ...] = ()
    finish_reason: str = "length"  # "stop" | "length"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TokenLogprob:
    """A token (its text piece and id, where known) with its log-probability."""

    token: str
    logprob: float
    id: int | None = None


@dataclass(frozen=True)
class TokenStep:
    """One generated token with its log-probability and the top alternatives."""

    chosen: TokenLogprob
    top: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class NextTokenLogprobs:
    """The top-k next tokens after a prompt, most likely first."""

    prompt: str
    top: tuple[TokenLogprob, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ScoredContinuation:
    """Per-token log-probabilities of a given continuation after a prompt."""

    prompt: str
    continuation: str
    tokens: tuple[TokenLogprob, ...]

    @property
    def total_logprob(self) -> float:
        return float(sum(t.logprob for t in self.tokens))

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["total_logprob"] = self.total_logprob
        return d


@runtime_checkable
class Model(Protocol):
    """The protocol every backend implements (local, bundled, HTTP, cached wrapper)."""

    info: ModelInfo

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        logits_processors: Sequence[Any] | None = None,
        chat: bool = True,
    ) -> list[Generation]:
        """Complete each prompt; temperature 0 is greedy. Same seed, same output per prompt."""
        ...

    def next_token_logprobs(
        self, prompts: Sequence[str], top_k: int = 5, chat: bool = True
    ) -> list[NextTokenLogprobs]:
        """The top-k next tokens after each prompt with their log-probabilities."""
        ...

    def score(
        self, prompts: Sequence[str], continuations: Sequence[str], chat: bool = True
    ) -> list[ScoredContinuation]:
        """Per-token log-probabilities of each continuation given its prompt."""
        ...
