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
    dtype: str | None = None,
) -> Model:
    """Load any model spec (see distilltrace.models.spec); wrap in an on-disk cache if given.

    ``cache`` is the path of a SQLite file holding query results (see CachedModel);
    ``status`` receives short messages about slow steps (for a progress display);
    ``dtype`` ("auto", "float32" or "bfloat16", see distilltrace.models.precision) sets the
    compute precision of a local model (None: as loaded, float32). An HTTP endpoint has its
    own precision and ignores it.
    """
    if dtype is not None:
        from distilltrace.models.precision import check_dtype

        check_dtype(dtype)  # a bad name is an error before any loading, for every backend
    parsed = parse_spec(spec)
    model: Model = backends()[parsed.kind].loader()(parsed, status)
    if dtype is not None and hasattr(model, "set_dtype"):
        model.set_dtype(dtype)
    if cache is not None:
        from distilltrace.models.cache import CachedModel

        model = CachedModel(model, cache)
    return model
