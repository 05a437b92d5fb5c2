"""The custody report: report.json (numbers) and report.html (the same, in words).

The HTML page is rendered from report.json alone and deterministically, so `verify` can
re-render it and compare bytes: a page edited to say something the numbers do not is
caught like any other tampered file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

from distilltrace.custody import claims as C
from distilltrace.custody.bundle import write_json
from distilltrace.evidence import EvidenceResult
from distilltrace.report.render import pval

REPORT_FORMAT = "distilltrace-custody-report/1"

_env = jinja2.Environment(
    loader=jinja2.ChoiceLoader(
        [
            jinja2.PackageLoader("distilltrace.custody", "templates"),
            jinja2.PackageLoader("distilltrace.report", "templates"),
        ]
    ),
    autoescape=True,  # log and model text is attacker-controlled
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def fmt_p(p: float | None) -> str:
    """As the other pages' `pval` filter, with "did not run" for a claim without a p."""
    return "did not run" if p is None else pval(p)


_env.filters["p"] = fmt_p


def report_dict(
    results: Sequence[EvidenceResult],
    skipped: Mapping[str, str],
    cfg: Any,
    campaign: Mapping[str, Any],
    key_id: str,
    models: Mapping[str, Any],
) -> dict[str, Any]:
    """The report's content: claims with their nulls and meanings, the Holm family, the
    one family-wise statement."""
    fam = C.combine(results, cfg.alpha)
    s = models.get("suspect", {})
    return {
        "format": REPORT_FORMAT,
        "key_id": key_id,
        "campaign": {
            "label": campaign["label"],
            "n_accounts": len(campaign["members"]),
            "scan_pvalue_adjusted": campaign.get("scan_pvalue_adjusted"),
        },
        "suspect": {k: s.get(k) for k in ("name", "spec", "backend", "identity")},
        "claims": [{**r.to_dict(), "meaning": C.MEANING[r.name]} for r in results],
        "skipped": dict(skipped),
        "family": fam.to_dict(),
        "attribution": C.attribution(fam, results),
        "config": cfg.to_dict(),
    }


def render(report: Mapping[str, Any], version: str | None = None) -> str:
    """report.html from report.json (deterministic; `version`: the software that built it)."""
    from distilltrace import __version__

    tpl = _env.get_template("custody.html")
    return tpl.render(version=version or __version__, r=report, C=C)


def write_report(out: Path, results, skipped, cfg, campaign, key_id, models) -> dict[str, Any]:
    rep = report_dict(results, skipped, cfg, campaign, key_id, models)
    write_json(out / "report.json", rep)
    (out / "report.html").write_text(render(rep), encoding="utf-8")
    return rep
