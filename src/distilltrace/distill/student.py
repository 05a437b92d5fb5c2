"""Students: named small Llama-style architectures (random init, seeded) or an existing model."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from distilltrace.errors import InputError


@dataclass(frozen=True)
class StudentConfig:
    """A Llama-style decoder: layers, width, heads, MLP width (embeddings tied)."""

    name: str
    n_layers: int
    hidden_size: int
    n_heads: int
    intermediate_size: int
    max_positions: int = 2048

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def n_parameters(self, vocab_size: int) -> int:
        """Parameter count with tied input/output embeddings."""
        h, i = self.hidden_size, self.intermediate_size
        per_layer = 4 * h * h + 3 * h * i + 2 * h
        return vocab_size * h + self.n_layers * per_layer + h


# Sized to train in minutes on 2 CPU cores (parameters with the 49k SmolLM2 vocabulary:
# tiny-2l ~3.3M, tiny-4l ~3.5M, small-4l ~7M, base-8l ~21M, most of it the embedding table).
ARCHS: dict[str, StudentConfig] = {
    c.name: c
    for c in (
        StudentConfig("tiny-2l", n_layers=2, hidden_size=64, n_heads=4, intermediate_size=256),
        StudentConfig("tiny-4l", n_layers=4, hidden_size=64, n_heads=4, intermediate_size=256),
        StudentConfig("small-4l", n_layers=4, hidden_size=128, n_heads=4, intermediate_size=512),
        StudentConfig("base-8l", n_layers=8, hidden_size=256, n_heads=8, intermediate_size=1024),
    )
}


def resolve_tokenizer(tokenizer: Any) -> Any:
    """A tokenizer object from an object, "byte", "smollm2", or a model spec/folder."""
    if tokenizer is None:
        raise InputError(
            "a student architecture needs a tokenizer ('byte', 'smollm2' or a model spec)"
        )
    if not isinstance(tokenizer, str):
        return tokenizer
    from distilltrace.models import tiny

    if tokenizer == "byte":
        return tiny.byte_tokenizer()
    if tokenizer == "smollm2":
        return tiny.smollm2_tokenizer()
    from distilltrace.models import load_model

    model = load_model(tokenizer)
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise InputError(f"model {tokenizer!r} has no local tokenizer to reuse for a student")
    return tok


def make_student(
    arch: str | StudentConfig, tokenizer: Any = None, seed: int = 0
) -> tuple[Any, Any]:
    """(hf_model, tokenizer): a named or configured architecture with seeded random weights
    and `tokenizer` ("byte", "smollm2", a spec, or an object), or, when `arch` is not an
    architecture name, the existing model spec `arch` to fine-tune (its own tokenizer)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    if isinstance(arch, str) and arch not in ARCHS:
        from distilltrace.models import load_model

        model = load_model(arch)
        if getattr(model, "hf_model", None) is None:
            raise InputError(
                f"student {arch!r} is neither an architecture ({', '.join(ARCHS)}) nor a local "
                "model with weights to fine-tune"
            )
        hf = model.hf_model
        hf.float()
        return hf, model.tokenizer
    cfg = ARCHS[arch] if isinstance(arch, str) else arch
    if cfg.hidden_size % cfg.n_heads:
        raise InputError(f"hidden_size {cfg.hidden_size} is not divisible by n_heads {cfg.n_heads}")
    tok = resolve_tokenizer(tokenizer)
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_heads,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=pad,
    )
    devnull = torch.random.fork_rng(devices=[])
    with devnull:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=pad
    )
    return model, tok
