"""Model access: one protocol for local folders, GGUF files, bundled models and HTTP endpoints.

``load_model(spec)`` parses a model-spec string (see ``distilltrace.models.spec``) and returns
an object implementing ``distilltrace.models.base.Model``.
"""

from distilltrace.models.base import (
    Generation,
    Model,
    ModelInfo,
    NextTokenLogprobs,
    ScoredContinuation,
    TokenLogprob,
)
from distilltrace.models.loader import load_model
from distilltrace.models.local import TransformersModel
from distilltrace.models.spec import (
    ACCEPTED_FORMS,
    BUNDLED_NAMES,
    Backend,
    ParsedSpec,
    parse_spec,
    register_backend,
)

__all__ = [
    "ACCEPTED_FORMS",
    "BUNDLED_NAMES",
    "Backend",
    "Generation",
    "Model",
    "ModelInfo",
    "NextTokenLogprobs",
    "ParsedSpec",
    "ScoredContinuation",
    "TokenLogprob",
    "TransformersModel",
    "load_model",
    "parse_spec",
    "register_backend",
]
