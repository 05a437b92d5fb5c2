"""Compute precision of local models: float32, bfloat16, or "auto".

bfloat16 halves the memory traffic of every matrix product. On a CPU with native bf16
instructions (AVX512-BF16 or AMX) or a CUDA GPU that supports it, a small model generates
2.5-2.9x and scores 2.3-2.7x faster than in float32 (docs/benchmarks.md, "Compute
precision"); per-token log-probabilities move by 0.02-0.03 nats on average, and about one
greedy answer in five differs within its first 40 characters. In bfloat16 a prompt's answer
also depends on the batch it is computed in (rounding moves with the batch's shape: on
SmolLM2 about half the greedy answers changed between batches of 16 and 4; float32 none),
so a bfloat16 run repeats only with the same batching. "auto" picks
bfloat16 only where the hardware runs it natively (elsewhere bf16 is emulated, and slower).

A result computed in bfloat16 is a statement about the model run in bfloat16, as a
served endpoint's answers are about the model at the endpoint's precision. Tests that
compare models treat them alike, so their nulls and p-values are unchanged in kind; the
precision is recorded with every result and in the query cache's key, so float32 and
bfloat16 answers are never mixed.
"""

from __future__ import annotations

from typing import Any

from distilltrace.errors import InputError

DTYPES = ("auto", "float32", "bfloat16")


def native_bf16(device: str = "cpu") -> bool:
    """Does this device run bfloat16 matrix products natively?"""
    import torch

    if str(device).startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(cpu, probe, None)
        if fn is not None and fn():
            return True
    return False


def check_dtype(name: str) -> None:
    """Raise InputError (one line) unless `name` is one of DTYPES."""
    if name not in DTYPES:
        raise InputError(f"unknown dtype {name!r}; expected one of {', '.join(DTYPES)}")


def resolve_dtype(name: str, device: str = "cpu") -> str:
    """The concrete precision ("float32" or "bfloat16") that `name` means on `device`."""
    check_dtype(name)
    if name == "auto":
        return "bfloat16" if native_bf16(device) else "float32"
    return name


def torch_dtype(name: str) -> Any:
    """The torch dtype of a concrete precision name."""
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def cache_identity(info: Any) -> str:
    """The identity the query cache keys a model's answers by: its content hash, plus its
    precision where that is not float32 (so existing float32 caches stay valid)."""
    dtype = (info.extra or {}).get("dtype")
    return info.identity if dtype in (None, "float32") else f"{info.identity}@{dtype}"
