"""Record every query to a model, and answer later from the record alone.

`RecordingModel` wraps any model (local, bundled or HTTP) and keeps each query with its
answer (generated text, or per-token log-probabilities). `ReplayModel` answers the same
queries from that transcript, with the same `info` (name, identity, capabilities), so a
test re-run on replay models recomputes its statistics without the model: it fails, one
line, on any query the transcript does not hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from distilltrace.custody.bundle import VerifyError
from distilltrace.models.base import (
    WEIGHTS,
    Generation,
    ModelInfo,
    NextTokenLogprobs,
    ScoredContinuation,
    TokenLogprob,
)


def _gen_key(p: str, max_new_tokens: int, temperature: float, top_p: float, seed: int, chat: bool):
    return (
        "generate",
        p,
        int(max_new_tokens),
        float(temperature),
        float(top_p),
        int(seed),
        bool(chat),
    )


def _score_key(p: str, c: str, chat: bool):
    return ("score", p, c, bool(chat))


def _ntl_key(p: str, top_k: int, chat: bool):
    return ("next_token_logprobs", p, int(top_k), bool(chat))


def _key_of(rec: dict[str, Any]) -> tuple:
    m = rec.get("method")
    a = rec.get("args") or {}
    if m == "generate":
        return _gen_key(
            a["prompt"], a["max_new_tokens"], a["temperature"], a["top_p"], a["seed"], a["chat"]
        )
    if m == "score":
        return _score_key(a["prompt"], a["continuation"], a["chat"])
    if m == "next_token_logprobs":
        return _ntl_key(a["prompt"], a["top_k"], a["chat"])
    raise VerifyError(f"transcript: unknown method {m!r}")


def _toks(rows: Sequence[Any]) -> tuple[TokenLogprob, ...]:
    return tuple(
        TokenLogprob(str(t), float(lp), None if i is None else int(i)) for t, lp, i in rows
    )


class RecordingModel:
    """A model wrapper that records each query and its answer under a label."""

    def __init__(self, model: Any, label: str):
        self.model = model
        self.label = label
        self.info: ModelInfo = model.info
        self.records: list[dict[str, Any]] = []

    def _add(self, method: str, args: dict[str, Any], result: dict[str, Any]) -> None:
        self.records.append({"model": self.label, "method": method, "args": args, "result": result})

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        logits_processors: Sequence[Any] | None = None,
        chat: bool = True,
        **kw: Any,
    ) -> list[Generation]:
        if logits_processors:
            raise VerifyError("recorded queries cannot carry logits processors")
        gens = self.model.generate(
            list(prompts), max_new_tokens=max_new_tokens, temperature=temperature,
            top_p=top_p, seed=seed, chat=chat, **kw,
        )  # fmt: skip
        for p, g in zip(prompts, gens, strict=True):
            args = {"prompt": p, "max_new_tokens": int(max_new_tokens), "temperature": float(temperature),
                    "top_p": float(top_p), "seed": int(seed), "chat": bool(chat)}  # fmt: skip
            self._add("generate", args, {"text": g.text, "finish_reason": g.finish_reason,
                                         "token_ids": list(g.token_ids)})  # fmt: skip
        return gens

    def score(
        self, prompts: Sequence[str], continuations: Sequence[str], chat: bool = True
    ) -> list[ScoredContinuation]:
        res = self.model.score(list(prompts), list(continuations), chat=chat)
        for p, c, r in zip(prompts, continuations, res, strict=True):
            toks = [[t.token, t.logprob, t.id] for t in r.tokens]
            self._add(
                "score", {"prompt": p, "continuation": c, "chat": bool(chat)}, {"tokens": toks}
            )
        return res

    def next_token_logprobs(
        self, prompts: Sequence[str], top_k: int = 5, chat: bool = True
    ) -> list[NextTokenLogprobs]:
        res = self.model.next_token_logprobs(list(prompts), top_k=top_k, chat=chat)
        for p, r in zip(prompts, res, strict=True):
            toks = [[t.token, t.logprob, t.id] for t in r.top]
            self._add("next_token_logprobs", {"prompt": p, "top_k": int(top_k), "chat": bool(chat)},
                      {"top": toks})  # fmt: skip
        return res


def model_info_dict(info: ModelInfo) -> dict[str, Any]:
    return info.to_dict()


def model_info_from_dict(d: dict[str, Any]) -> ModelInfo:
    try:
        return ModelInfo(
            name=str(d["name"]), spec=str(d["spec"]), backend=str(d["backend"]),
            tokenizer_id=str(d["tokenizer_id"]), vocab_size=int(d["vocab_size"]),
            identity=str(d["identity"]), supports=frozenset(d.get("supports") or ()) - {WEIGHTS},
            extra=dict(d.get("extra") or {}),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError) as e:
        raise VerifyError(f"models.json: malformed model identity ({e})") from None


class ReplayModel:
    """Answers recorded queries from a transcript (see module docstring)."""

    def __init__(self, info: ModelInfo, records: Sequence[dict[str, Any]]):
        self.info = info
        self.answers: dict[tuple, dict[str, Any]] = {}
        for r in records:
            try:
                self.answers[_key_of(r)] = r["result"]
            except (KeyError, TypeError):
                raise VerifyError(f"transcript: malformed record for model {info.name!r}") from None

    def _get(self, key: tuple) -> dict[str, Any]:
        if key not in self.answers:
            raise VerifyError(
                f"transcript holds no {key[0]} answer of model {self.info.name!r} for prompt "
                f"{key[1][:40]!r}...: the recomputation asks a query that was not recorded"
            )
        return self.answers[key]

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        logits_processors: Sequence[Any] | None = None,
        chat: bool = True,
        **kw: Any,
    ) -> list[Generation]:
        out = []
        for p in prompts:
            r = self._get(_gen_key(p, max_new_tokens, temperature, top_p, seed, chat))
            out.append(
                Generation(
                    p, str(r["text"]), tuple(r.get("token_ids") or ()), str(r["finish_reason"])
                )
            )
        return out

    def score(
        self, prompts: Sequence[str], continuations: Sequence[str], chat: bool = True
    ) -> list[ScoredContinuation]:
        return [
            ScoredContinuation(p, c, _toks(self._get(_score_key(p, c, chat))["tokens"]))
            for p, c in zip(prompts, continuations, strict=True)
        ]

    def next_token_logprobs(
        self, prompts: Sequence[str], top_k: int = 5, chat: bool = True
    ) -> list[NextTokenLogprobs]:
        return [
            NextTokenLogprobs(p, _toks(self._get(_ntl_key(p, top_k, chat))["top"])) for p in prompts
        ]
