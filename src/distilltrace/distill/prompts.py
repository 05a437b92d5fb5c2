"""Instruction prompts for distillation sets: re-exported from the shared module
`distilltrace.prompts` (provenance and the benchmarks use the same generator)."""

from __future__ import annotations

from distilltrace.prompts import FAMILIES, Prompt, generate_prompts, load_prompts

__all__ = ["FAMILIES", "Prompt", "generate_prompts", "load_prompts"]
