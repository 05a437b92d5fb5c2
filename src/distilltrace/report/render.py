"""JSON and HTML rendering shared by every subsystem.

HTML pages are Jinja2 templates with autoescaping always on, so model and log text
(attacker-controlled) is escaped; figures are embedded as data URIs so a page is one
self-contained file.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import io
import json
import math
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("distilltrace.report", "templates"),
    autoescape=True,  # every template, whatever its extension
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def num(value: Any, spec: str = "%.2f") -> str:
    """A number formatted with ``spec`` for a page, without a minus sign on a zero
    (-0.0, or a small negative that rounds to zero, shows as 0.00)."""
    try:
        s = spec % value
    except TypeError:
        return str(value)
    if s.startswith("-"):
        try:
            if float(s) == 0:
                return s[1:]
        except ValueError:
            pass
    return s


_env.filters["num"] = num


def pval(value: Any) -> str:
    """A p-value for a page: "<= 1e-300" at the floor every test reports below (where
    float64 tails underflow), 3 significant digits otherwise, "n/a" for None."""
    from distilltrace.stats import PVALUE_FLOOR

    if value is None:
        return "n/a"
    if value <= PVALUE_FLOOR:
        return f"<= {PVALUE_FLOOR:.0e}"
    return num(value, "%.3g")


_env.filters["pval"] = pval


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, numpy values, paths and datetimes into plain JSON values."""
    if hasattr(obj, "to_dict") and not isinstance(obj, type):
        return to_jsonable(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, np.ndarray):
        return [to_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, float):
        return obj + 0.0 if math.isfinite(obj) else None  # + 0.0: no -0.0 in JSON
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, _dt.datetime | _dt.date):
        return obj.isoformat()
    return obj


def write_json(obj: Any, path: str | Path) -> Path:
    """Write obj as indented JSON (NaN/inf become null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_jsonable(obj), indent=2, ensure_ascii=False) + "\n")
    return path


def figure_data_uri(fig: Any) -> str:
    """A matplotlib figure as a PNG data URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def render_html(template: str, context: dict[str, Any], path: str | Path) -> Path:
    """Render report/templates/<template> with context (autoescaped) to path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from distilltrace import __version__

    html = _env.get_template(template).render(version=__version__, **context)
    path.write_text(html, encoding="utf-8")
    return path
