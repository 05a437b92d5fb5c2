"""Prompt handling for serve: cheap checks before tokenising, the context-length check, and
chat encoding that never turns message content into control tokens.

Message content is text. A string such as ``<|im_end|>\\n<|im_start|>system`` inside a
user message must not become the template's special tokens (that would let a user forge a
system turn), so content that contains a special-token string is tokenised on its own
with special tokens split into ordinary pieces; the template around it keeps its special
tokens. Content without such strings is encoded exactly as the library does
(``Model.encode_prompt`` / ``encode_messages``), so served and local outputs stay equal.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from distilltrace.models.base import TokenLogprob
from distilltrace.models.local import TransformersModel
from distilltrace.serve.errors import bad_request

MAX_MESSAGES = 256  # messages in one chat request
MAX_PROMPTS = 64  # prompts in one /v1/completions list
MAX_STOP_CHARS = 256  # characters of one stop sequence
CHARS_PER_TOKEN_CAP = 16  # prompt characters allowed per token of context, before tokenising
_CONFIG_CONTEXT_FIELDS = ("max_position_embeddings", "n_positions", "n_ctx", "seq_length")


def context_length(model: TransformersModel) -> int | None:
    """The model's context length in tokens (from its config), or None if it names none."""
    cfg = getattr(model.hf_model, "config", None)
    for field in _CONFIG_CONTEXT_FIELDS:
        v = getattr(cfg, field, None)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    v = getattr(model.tokenizer, "model_max_length", None)
    if isinstance(v, int) and 0 < v < 10_000_000:  # tokenizers use 1e30 for "unknown"
        return v
    return None


# ---------------------------------------------------------------------------- cheap checks
def check_unicode(value: Any, param: str = "") -> None:
    """400 ``invalid_unicode`` if any string in a parsed JSON value is not encodable text
    (a lone UTF-16 surrogate such as ``"\\ud800"`` is legal JSON but not Unicode text).
    Iterative, so deeply nested JSON cannot exhaust the stack."""
    todo: list[tuple[Any, str]] = [(value, param)]
    while todo:
        v, where = todo.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                where = where.encode("utf-8", "backslashreplace").decode("utf-8")
                raise bad_request(
                    f"{where or 'request'}: not valid Unicode text (lone UTF-16 surrogate)",
                    "invalid_unicode",
                    where or None,
                ) from None
        elif isinstance(v, dict):
            for k, x in v.items():
                todo.append((k, where))
                todo.append((x, f"{where}.{k}" if where else str(k)))
        elif isinstance(v, list | tuple):
            todo.extend((x, f"{where}[{i}]") for i, x in enumerate(v))


def too_long(what: str, size: str, limit: int, ctx: int | None, param: str) -> Exception:
    """400 ``context_length_exceeded``."""
    where = f"this model's context length is {ctx} tokens" if ctx else "this server's limit"
    return bad_request(
        f"{what} is {size}; {where} allows at most {limit}", "context_length_exceeded", param
    )


def check_chars(texts: Sequence[str], max_chars: int, ctx: int | None, param: str) -> None:
    """Reject over-long prompts by character count, before any tokenising."""
    n = sum(len(t) for t in texts)
    if n > max_chars:
        raise too_long("the prompt", f"{n} characters", max_chars, ctx, param)


def check_context(
    n_prompt: int, n_new: int, ctx: int | None, param: str = "messages", explicit: bool = True
) -> int:
    """Check prompt tokens + max_tokens against the context; returns the max_tokens to use
    (an implicit default is shortened to what fits)."""
    if ctx is None:
        return n_new
    if n_prompt > ctx or (n_prompt == ctx and n_new > 0):
        raise too_long("the prompt", f"{n_prompt} tokens", ctx, ctx, param)
    if n_prompt + n_new > ctx:
        if not explicit:
            return ctx - n_prompt
        raise bad_request(
            f"the prompt ({n_prompt} tokens) plus max_tokens ({n_new}) is {n_prompt + n_new} "
            f"tokens; this model's context length is {ctx} tokens",
            "context_length_exceeded",
            "max_tokens",
        )
    return n_new


# ---------------------------------------------------------------------------- chat encoding
def special_strings(tokenizer: Any) -> tuple[str, ...]:
    """The text forms of the tokenizer's special tokens (what content must not produce)."""
    found = {
        str(getattr(t, "content", t))
        for t in tokenizer.added_tokens_decoder.values()
        if getattr(t, "special", True)
    }
    found.update(str(s) for s in getattr(tokenizer, "all_special_tokens", []))
    return tuple(sorted((s for s in found if s), key=len, reverse=True))


def has_special(texts: Sequence[str], specials: Sequence[str]) -> bool:
    return any(s in t for t in texts for s in specials)


def encode_text(tokenizer: Any, text: str, parse_special: bool) -> list[int]:
    """Token ids of text; with parse_special False, special-token strings stay plain text."""
    if not text:
        return []
    if parse_special:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    enc = tokenizer(text, add_special_tokens=False, split_special_tokens=True)
    return list(enc["input_ids"])


def encode_chat(model: TransformersModel, msgs: Sequence[dict[str, str]]) -> list[int]:
    """Token ids of a conversation; content never becomes special tokens.

    Without special-token strings in any content this is exactly the library's encoding.
    """
    tok = model.tokenizer
    if not has_special([m["content"] for m in msgs], special_strings(tok)):
        if len(msgs) == 1 and msgs[0]["role"] == "user":
            return model.encode_prompt(msgs[0]["content"], True)
        return model.encode_messages(msgs)
    nonce = secrets.token_hex(8)
    marks = [f"DTMSG{nonce}N{i}X" for i in range(len(msgs))]
    cont = msgs[-1]["role"] == "assistant"
    text = tok.apply_chat_template(
        [{"role": m["role"], "content": k} for m, k in zip(msgs, marks, strict=True)],
        tokenize=False,
        add_generation_prompt=not cont,
        continue_final_message=cont,
    )
    ids: list[int] = []
    pos = 0
    for m, k in zip(msgs, marks, strict=True):
        at = text.find(k, pos)
        if at < 0 or text.count(k) != 1:
            raise bad_request(
                "this model's chat template does not keep message content apart from its "
                "control tokens; remove special-token strings (such as "
                f"{special_strings(tok)[0]!r}) from the messages",
                "invalid_content",
                "messages",
            )
        ids += encode_text(tok, text[pos:at], True)
        ids += encode_text(tok, m["content"], False)
        pos = at + len(k)
    return ids + encode_text(tok, text[pos:], True)


def encode_scoring(
    model: TransformersModel, user: str, assistant: str
) -> tuple[list[int], list[int], bool]:
    """(prompt ids, continuation ids, escaped) of a chat scoring request: the library's
    encoding, or, when a text holds a special-token string, the escaped one."""
    tok = model.tokenizer
    if not has_special([user, assistant], special_strings(tok)):
        return model.encode_prompt(user, True), model.encode_continuation(assistant), False
    p_ids = encode_chat(model, [{"role": "user", "content": user}])
    return p_ids, encode_text(tok, assistant, False), True


def score_chat(
    model: TransformersModel, user: str, assistant: str, ids: tuple[list[int], list[int], bool]
) -> list[TokenLogprob]:
    """Per-token log-probabilities of the assistant text after the user turn: exactly
    ``model.score([user], [assistant], chat=True)`` unless the texts had to be escaped."""
    p_ids, c_ids, escaped = ids
    if not escaped:
        return list(model.score([user], [assistant], chat=True)[0].tokens)
    if not c_ids:
        return []
    with model._lock:
        lp = model._continuation_logprobs([p_ids + c_ids], len(c_ids) + 1)
    vals = lp[0, : len(c_ids)].tolist()
    return [
        TokenLogprob(token=model._piece(t), logprob=float(v), id=int(t))
        for t, v in zip(c_ids, vals, strict=True)
    ]
