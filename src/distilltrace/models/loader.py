"""load_model: one model-spec string in, a Model out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from distilltrace.models.base import Model
from distilltrace.models.spec import backends, parse_spec


def load_model(
    spec: str,
    *,
    cache: str | Path | None = None,
    status: Callable[[str], None] | None = None,
) -> Model:
    """Load any model spec (see distilltrace.models.spec); wrap in an on-disk cache if given.

    ``cache`` is the path of a SQLite file holding query results (see CachedModel);
    ``status`` receives short messages about slow steps (for a progress display).
    """
    parsed = parse_spec(spec)
    model: Model = backends()[parsed.kind].loader()(parsed, status)
    if cache is not None:
        from distilltrace.models.cache import CachedModel

        model = CachedModel(model, cache)
    return model
