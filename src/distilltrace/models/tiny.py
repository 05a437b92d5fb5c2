"""Tiny Llama-style models for tests: built in seconds, random or briefly trained weights."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from distilltrace.errors import InputError

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
BYTE_SPECIALS = ("<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>")


def _bytes_to_unicode() -> dict[int, str]:
    """The GPT-2 byte -> printable-character table used by byte-level BPE."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def byte_tokenizer() -> Any:
    """A byte-level tokenizer (5 specials + 256 bytes) with a ChatML-style chat template."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {s: i for i, s in enumerate(BYTE_SPECIALS)}
    b2u = _bytes_to_unicode()
    for b in range(256):
        vocab[b2u[b]] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in BYTE_SPECIALS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        chat_template=CHAT_TEMPLATE,
    )


def untrained_model(model_cls: type, config_cls: type, *, seed: int = 0, **config: Any) -> Any:
    """An untrained in-memory model over :func:`byte_tokenizer` (hidden size 32, MLP 64,
    plus ``config``: layers, heads, context...), wrapped as a ``TransformersModel``: a
    fast stand-in upstream for demos and tests."""
    import torch

    from distilltrace.models.local import TransformersModel

    tok = byte_tokenizer()
    cfg = config_cls(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        **config,
    )
    torch.manual_seed(seed)
    return TransformersModel.from_objects(model_cls(cfg), tok, name="tiny")


def smollm2_tokenizer() -> Any:
    """The bundled SmolLM2 tokenizer (converted from its GGUF once, then cached on disk)."""
    from transformers import AutoTokenizer

    from distilltrace.models.bundled import smollm2_tokenizer_dir

    return AutoTokenizer.from_pretrained(str(smollm2_tokenizer_dir()), local_files_only=True)


def make_tiny_model(
    out_dir: str | Path,
    *,
    tokenizer: str = "byte",
    n_layers: int = 2,
    hidden_size: int = 64,
    seed: int = 0,
    train_texts: Sequence[str] | None = None,
    train_steps: int = 0,
) -> Path:
    """Write a small Llama-style transformers folder (safetensors + config + tokenizer).

    Weights are random (seeded), or trained for ``train_steps`` AdamW steps on
    ``train_texts`` (each text followed by EOS). Load it with ``load_model(str(path))``.
    """
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    from distilltrace.models.local import _quiet_transformers

    _quiet_transformers()
    if tokenizer == "byte":
        tok = byte_tokenizer()
    elif tokenizer == "smollm2":
        tok = smollm2_tokenizer()
    else:
        raise InputError(f"tokenizer must be 'byte' or 'smollm2', got {tokenizer!r}")
    if n_layers < 1 or hidden_size < 16 or hidden_size % 16:
        raise InputError("n_layers must be >= 1 and hidden_size a positive multiple of 16")
    if train_steps < 0:
        raise InputError("train_steps must be >= 0")
    if train_steps and not train_texts:
        raise InputError("train_steps > 0 needs train_texts")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_heads = max(1, hidden_size // 16)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=pad,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    if train_steps:
        _train(model, tok, list(train_texts or []), train_steps, seed)
    model.eval()
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=pad
    )
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    (out / "distilltrace_tiny.json").write_text(
        json.dumps(
            {
                "tokenizer": tokenizer,
                "n_layers": n_layers,
                "hidden_size": hidden_size,
                "seed": seed,
                "train_steps": train_steps,
                "n_train_texts": len(train_texts or []),
            },
            indent=2,
        )
    )
    return out


def _train(model: Any, tok: Any, texts: list[str], steps: int, seed: int) -> None:
    """A few AdamW steps of next-token training on the texts (EOS appended, max 256 tokens)."""
    rng = random.Random(seed)
    eos = tok.eos_token_id
    encoded = [(tok(t, add_special_tokens=False)["input_ids"] + [eos])[:256] for t in texts]
    encoded = [e for e in encoded if len(e) >= 2]
    if not encoded:
        raise InputError("train_texts are empty after tokenisation")
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for _ in range(steps):
        batch = [encoded[rng.randrange(len(encoded))] for _ in range(min(8, len(encoded)))]
        width = max(len(b) for b in batch)
        ids = torch.full((len(batch), width), eos, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            ids[i, : len(b)] = torch.tensor(b)
            labels[i, : len(b)] = torch.tensor(b)
            mask[i, : len(b)] = 1
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
