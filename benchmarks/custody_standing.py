"""The provenance claim's model-level standing (provenance.standing) in finished custody
bundles, recomputed from their transcripts alone (seconds; no model is loaded).

    .venv/bin/python -m benchmarks.custody_standing DEMO/bundle-harvested DEMO/bundle-benign

Prints, per bundle and per test that measured it, the test's p-value against the bundle's
controls beside the model-level p-value (normal spread) and the distribution-free rank
p-value, and one Markdown row per bundle.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def rows(bundle: Path) -> list[dict]:
    """One row per provenance test of the bundle: its p-value and its standing."""
    from distilltrace.custody.verify import recompute_provenance

    d = recompute_provenance(bundle).to_dict()["details"]
    out = []
    for name, t in sorted(d["per_test"].items()):
        st = d.get("standing", {}).get(name) or {}
        out.append({"bundle": str(bundle), "test": name, "pvalue": t["pvalue"], **{
            f"standing_{k}": st.get(k) for k in ("statistic", "pvalue", "pvalue_rank", "n")
        }})  # fmt: skip
    return out


def _g(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2g}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundles", type=Path, nargs="+", help="custody bundle folders")
    a = ap.parse_args(argv)
    for b in a.bundles:
        rs = rows(b)
        for r in rs:
            print(f"{b}: {r['test']}: p {_g(r['pvalue'])}; standing "
                  f"{_g(r['standing_statistic'])} spreads, model-level p "
                  f"{_g(r['standing_pvalue'])}, rank p {_g(r['standing_pvalue_rank'])}")  # fmt: skip
        cells = [f"{r['test']} {_g(r['pvalue'])} / {_g(r['standing_pvalue'])}"
                 for r in rs if r["standing_pvalue"] is not None]  # fmt: skip
        print(f"| {b} | {'; '.join(cells) or 'no standing measured'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
