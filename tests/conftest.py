"""Setup shared by every test folder: the repository root is importable, so that tests and
benchmarks share helpers as `tests.<module>` (e.g. tests.serve_helpers)."""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.append(_ROOT)
