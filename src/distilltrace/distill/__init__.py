"""Distillation: harvest teachers, train students (seq-KD, logit-KD, plain LM), build the zoo.

Names are imported lazily so that `import distilltrace.distill` (and the CLI) stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Prompt": "prompts",
    "generate_prompts": "prompts",
    "load_prompts": "prompts",
    "human_corpus": "human_text",
    "Record": "dataset",
    "read_records": "dataset",
    "harvest": "harvesting",
    "HarvestResult": "harvesting",
    "StudentConfig": "student",
    "ARCHS": "student",
    "make_student": "student",
    "TrainConfig": "config",
    "TrainResult": "training",
    "train_seq_kd": "training",
    "train_logit_kd": "training",
    "train_lm": "training",
    "write_topk_file": "training",
    "response_kl": "evaluate",
    "perplexity": "evaluate",
    "Manifest": "zoo",
    "ZooMember": "zoo",
    "build_zoo": "zoo",
    "harvest_and_train": "pipeline",
    "load_manifest": "zoo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    mod = _EXPORTS.get(name)
    if mod is None:
        raise AttributeError(f"module 'distilltrace.distill' has no attribute {name!r}")
    return getattr(import_module(f"distilltrace.distill.{mod}"), name)
