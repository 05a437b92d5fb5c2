"""Turning prompts, responses and texts into training examples for a student's tokenizer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

# End-of-turn markers of common chat formats (the model layer stops generation on them too).
_END_OF_TURN = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|endoftext|>", "</s>")


@dataclass(frozen=True)
class Example:
    """Token ids and a 0/1 mask marking the tokens the loss is computed on (targets)."""

    ids: tuple[int, ...]
    targets: tuple[int, ...]

    @property
    def n_targets(self) -> int:
        return sum(self.targets)


def encode_prompt(tok: Any, prompt: str) -> list[int]:
    """The prompt as the model layer presents it: chat template with one user turn (no extra
    special tokens) where the tokenizer has one, else the raw prompt with special tokens."""
    if getattr(tok, "chat_template", None):
        text = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        ids = tok(text, add_special_tokens=False)["input_ids"]
    else:
        ids = tok(prompt, add_special_tokens=True)["input_ids"]
    if not ids:
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        ids = [start if start is not None else 0]
    return list(ids)


def end_of_turn_id(tok: Any) -> int | None:
    """The token that ends an assistant turn: the template's end marker, else EOS."""
    template = str(getattr(tok, "chat_template", "") or "")
    vocab = tok.get_vocab()
    for t in _END_OF_TURN:
        if t in vocab and t in template:
            return int(vocab[t])
    return int(tok.eos_token_id) if tok.eos_token_id is not None else None


def encode_pair(
    tok: Any, prompt: str, response: str, *, stopped: bool, max_len: int
) -> Example | None:
    """Chat-templated prompt (context, no loss) + response tokens (loss), plus the end-of-turn
    token when the response ended naturally; None if no response token fits in `max_len`."""
    p = encode_prompt(tok, prompt)
    r = list(tok(response, add_special_tokens=False)["input_ids"]) if response else []
    eot = end_of_turn_id(tok)
    if stopped and eot is not None:
        r.append(eot)
    if not r:
        return None
    if len(p) >= max_len:  # keep the end of an over-long prompt (nearest the response)
        p = p[-(max_len // 2) :]
    ids = (p + r)[:max_len]
    targets = ([0] * len(p) + [1] * len(r))[:max_len]
    if sum(targets) == 0:
        return None
    return Example(tuple(ids), tuple(targets))


def encode_text(tok: Any, text: str, *, max_len: int) -> list[Example]:
    """A plain text (BOS + text + EOS), split into windows of at most `max_len` tokens."""
    ids = list(tok(text, add_special_tokens=False)["input_ids"])
    if tok.bos_token_id is not None:
        ids = [int(tok.bos_token_id)] + ids
    if tok.eos_token_id is not None:
        ids.append(int(tok.eos_token_id))
    out = []
    for start in range(0, len(ids), max_len):
        w = ids[start : start + max_len]
        if len(w) >= 2:
            out.append(Example(tuple(w), (0,) + (1,) * (len(w) - 1)))
    return out


def examples_hash(examples: list[Example]) -> str:
    h = hashlib.sha256()
    for e in examples:
        h.update(repr((e.ids, e.targets)).encode())
    return h.hexdigest()[:16]
