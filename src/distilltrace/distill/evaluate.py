"""How close a student is to a teacher: token-level KL on responses, and perplexity of
texts (e.g. each teacher's outputs) under any model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from distilltrace.distill.dataset import Record
from distilltrace.distill.encoding import encode_pair
from distilltrace.distill.training import _collate, check_same_tokenizer, placed_on, unpack_student
from distilltrace.errors import InputError


@dataclass(frozen=True)
class Perplexity:
    """Mean negative log-likelihood of texts under a model, per token and per byte."""

    nll_per_token: float
    perplexity: float
    bits_per_byte: float
    n_tokens: int
    n_bytes: int
    n_texts: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def response_kl(
    student: Any,
    teacher: Any,
    records: Sequence[Record],
    *,
    max_len: int = 256,
    batch_size: int = 8,
) -> float:
    """Mean per-token forward KL(teacher || student), in nats, over the response tokens of
    `records` (chat-templated prompt as context). Both must share a tokenizer."""
    s_model, s_tok = unpack_student(student)
    t_model, t_tok = unpack_student(teacher)
    check_same_tokenizer(t_tok, s_tok)
    ex = [
        e
        for r in records
        if (
            e := encode_pair(
                s_tok,
                r.prompt,
                r.response,
                stopped=r.meta.get("finish_reason", "stop") == "stop",
                max_len=max_len,
            )
        )
        is not None
    ]
    if not ex:
        raise InputError("no response tokens to measure the KL on")
    vocab = len(s_tok)
    dev = next(s_model.parameters()).device
    pad = s_tok.pad_token_id if s_tok.pad_token_id is not None else 0
    total, n = 0.0, 0
    s_model.eval()
    t_model.eval()
    with torch.inference_mode(), placed_on(t_model, dev):
        for start in range(0, len(ex), batch_size):
            b = _collate(ex, list(range(start, min(len(ex), start + batch_size))), pad, dev)
            tl = torch.log_softmax(
                t_model(input_ids=b.ids, attention_mask=b.attn).logits[:, :-1, :vocab].float(), -1
            )
            sl = torch.log_softmax(
                s_model(input_ids=b.ids, attention_mask=b.attn).logits[:, :-1, :vocab].float(), -1
            )
            kl = (tl.exp() * (tl - sl)).sum(-1)
            mask = b.targets[:, 1:].bool()
            total += float(kl[mask].sum())
            n += int(mask.sum())
    return total / max(n, 1)


def perplexity(model: Any, records: Sequence[Record], *, chat: bool = True) -> Perplexity:
    """Perplexity of each record's response given its prompt under `model` (any Model with
    `score`); bits per byte make models with different tokenizers comparable."""
    recs = [r for r in records if r.response]
    if not recs:
        raise InputError("no non-empty responses to score")
    scored = model.score([r.prompt for r in recs], [r.response for r in recs], chat=chat)
    nll = -sum(s.total_logprob for s in scored)
    n_tok = sum(s.n_tokens for s in scored)
    n_bytes = sum(len(r.response.encode("utf-8")) for r in recs)
    per_tok = nll / max(n_tok, 1)
    return Perplexity(
        nll_per_token=per_tok,
        perplexity=math.exp(min(per_tok, 700.0)),
        bits_per_byte=nll / math.log(2) / max(n_bytes, 1),
        n_tokens=n_tok,
        n_bytes=n_bytes,
        n_texts=len(recs),
    )
