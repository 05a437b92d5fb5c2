"""Where distilltrace keeps its on-disk state (assembled models, converted weights, caches)."""

from __future__ import annotations

import os
from pathlib import Path


def distilltrace_home() -> Path:
    """The state folder: $DISTILLTRACE_HOME, else ~/.cache/distilltrace (created on demand)."""
    env = os.environ.get("DISTILLTRACE_HOME")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "distilltrace"
    base.mkdir(parents=True, exist_ok=True)
    return base


def models_dir() -> Path:
    """Folder for assembled bundled models and de-quantised GGUF conversions."""
    d = distilltrace_home() / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d
