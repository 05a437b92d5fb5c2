"""Where distilltrace keeps its on-disk state, resolved in one place.

- **home** (`home()`): ``$DISTILLTRACE_HOME``, else ``$XDG_CACHE_HOME/distilltrace``, else
  ``~/.cache/distilltrace``. Assembled bundled models (``models/``) and the provenance
  query cache (``provenance-cache/``) live here.
- **caches** (`cache_dir()`): ``$DISTILLTRACE_CACHE``, else the home. Derived data that
  is rebuilt when missing: ShareGPT's extracted turns (``sharegpt/``), the standard
  library's prose paragraphs (``human-text/``), the Spark class archives (``spark-cds/``,
  or ``$DISTILLTRACE_SPARK_CDS``).

`home()` and `models_dir()` create their folder on first use; `cache_dir()` does not (a
cache that cannot be written only costs the rebuild).
"""

from __future__ import annotations

import os
from pathlib import Path

from distilltrace.errors import InputError


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def default_home() -> Path:
    """``$DISTILLTRACE_HOME``, else ``$XDG_CACHE_HOME/distilltrace``, else
    ``~/.cache/distilltrace`` (not created)."""
    xdg = _env_path("XDG_CACHE_HOME") or Path.home() / ".cache"
    return _env_path("DISTILLTRACE_HOME") or xdg / "distilltrace"


def home() -> Path:
    """The state folder (`default_home`), created on demand (`InputError`, one line, when
    it cannot be)."""
    return _folder(default_home(), "the state folder ($DISTILLTRACE_HOME)")


def _folder(path: Path, what: str) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"{what} {path} is not a folder: point it at a folder") from None
    except OSError as e:
        raise InputError(f"{what} {path} cannot be created: {e.strerror or e}") from None
    return path


def cache_dir() -> Path:
    """The folder for rebuildable caches: ``$DISTILLTRACE_CACHE``, else the home (not
    created: each cache makes its own subfolder and tolerates one it cannot write)."""
    return _env_path("DISTILLTRACE_CACHE") or default_home()


def models_dir() -> Path:
    """Folder for assembled bundled models and de-quantised GGUF conversions."""
    return _folder(home() / "models", "the models folder")
