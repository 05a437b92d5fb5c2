"""Does the custody demo's scan find its campaign? The demo's traffic at several seeds and
population sizes, scanned alone (no model is served: the scan never reads responses).

    .venv/bin/python -m benchmarks.custody_demo_scan [--seeds 0-9] [--accounts 300,1000]

For each population size and seed: the demo's simulated day (`custody.demo._traffic`:
benign accounts and one hydra campaign cut to its earliest `max_campaign_requests`
requests) is written as a JSON Lines log and scanned with the default `ScanConfig`.
Reported per run: the campaign's accounts and their share of the accounts active in the
log, how many were flagged, the adjusted p-values of the candidate group holding most of
them (its all-signal test and its harvest test: a campaign is called on the first with
harvest evidence, or on the second alone, docs/traffic.md), the benign accounts flagged,
the scan's check of its reference population (the largest discount of a harvest signal,
`fusion.reference_check`, and whether it warned that the population is not mostly
benign), and the naive keyword rule (`traffic.baseline`) on the same log. Nothing here is tuned:
the scan's defaults, the demo's simulator settings. Prints one line per run and a
Markdown table; writes OUT/custody-demo-scan-DATE.json (with the command and machine).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.traffic_quality import _machine


def _seeds(spec: str) -> list[int]:
    if "-" in spec:
        a, b = spec.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in spec.split(",")]


def one_run(n_accounts: int, seed: int, work: Path) -> dict:
    """Scan the demo's traffic for one population size and seed; score it on the truth."""
    from distilltrace.custody.demo import DemoConfig, _traffic, _write_log
    from distilltrace.traffic import scan
    from distilltrace.traffic.baseline import keyword_rule

    cfg = dataclasses.replace(DemoConfig(), seed=seed, n_accounts=n_accounts)
    rows, truth = _traffic(cfg)
    log = _write_log(rows, work / f"log-{n_accounts}-{seed}.jsonl")
    t0 = time.perf_counter()
    res = scan([str(log)], progress=False)
    secs = time.perf_counter() - t0
    acc = res.accounts.assign(camp=lambda a: a["account_id"].isin(truth))
    # the candidate holding most campaign accounts (ties: the strongest evidence)
    held = min(res.campaigns, default=None, key=lambda c: (-len(truth & set(c.members)),
               min(c.pvalue_adjusted, c.harvest_pvalue_adjusted)))  # fmt: skip
    kw = keyword_rule([log])
    kw_flag = set(kw.loc[kw["flagged"], "account_id"])
    return {
        "accounts": n_accounts, "seed": seed, "active_accounts": len(acc),
        "campaign_accounts": len(truth), "campaign_share": len(truth) / max(len(acc), 1),
        "campaign_requests": sum(r["account_id"] in truth for r in rows),
        "found": int((acc["camp"] & acc["flagged"]).sum()),
        "benign_flagged": int((~acc["camp"] & acc["flagged"]).sum()),
        "cluster": None if held is None else held.name,
        "cluster_pvalue_adjusted": None if held is None else held.pvalue_adjusted,
        "cluster_harvest_pvalue_adjusted": None if held is None else held.harvest_pvalue_adjusted,
        "cluster_flagged": bool(held is not None and held.flagged),
        "reference_discount_log10": max(
            (r["discount_log10"] or 0.0 for r in res.summary["reference"].values()), default=0.0),
        "reference_warned": any(r["suspect"] for r in res.summary["reference"].values()),
        "keyword_found": len(kw_flag & truth), "keyword_benign_flagged": len(kw_flag - truth),
        "scan_s": round(secs, 1),
    }  # fmt: skip


def _line(r: dict) -> str:
    p, h = r["cluster_pvalue_adjusted"], r["cluster_harvest_pvalue_adjusted"]
    return (
        f"| {r['accounts']} | {r['seed']} | {r['active_accounts']} | {r['campaign_accounts']} "
        f"({100 * r['campaign_share']:.1f}%) | {r['found']}/{r['campaign_accounts']} | "
        f"{'-' if p is None else f'{p:.2g} / {h:.2g}'} | {r['benign_flagged']} | "
        f"{r['reference_discount_log10']:.2f}{' (warned)' * r['reference_warned']} | "
        f"{r['keyword_found']}/{r['campaign_accounts']} | {r['keyword_benign_flagged']} | {r['scan_s']} |"
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0-9")
    ap.add_argument("--accounts", default="300,1000")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    a = ap.parse_args(argv)
    sizes, seeds = [int(x) for x in a.accounts.split(",")], _seeds(a.seeds)
    a.out.mkdir(parents=True, exist_ok=True)
    rows, t0 = [], time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i, (n, s) in enumerate((n, s) for n in sizes for s in seeds):
            rows.append(one_run(n, s, Path(tmp)))
            left = (time.perf_counter() - t0) / (i + 1) * (len(sizes) * len(seeds) - i - 1)
            print(f"[{i + 1}/{len(sizes) * len(seeds)}, about {left:.0f} s left] {_line(rows[-1])}",
                  flush=True)  # fmt: skip
    head = [
        "| population | seed | active accounts | campaign accounts (share) | found | "
        "its candidate's adjusted p (all signals / harvest) | benign flagged | reference discount (log10) | "
        "keyword rule found | keyword benign flagged | scan s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    print("\n".join(head + [_line(r) for r in rows]))
    for n in sizes:
        mine = [r for r in rows if r["accounts"] == n]
        print(f"population {n}: campaign flagged in {sum(r['found'] > 0 for r in mine)} of "
              f"{len(mine)} seeds; benign accounts flagged {sum(r['benign_flagged'] for r in mine)} "
              f"of {sum(r['active_accounts'] - r['campaign_accounts'] for r in mine)}; reference "
              f"warning in {sum(r['reference_warned'] for r in mine)} of {len(mine)} seeds, in "
              f"{sum(r['reference_warned'] for r in mine if r['found'] == 0)} of "
              f"{sum(r['found'] == 0 for r in mine)} misses")  # fmt: skip
    meta = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": _machine(),
            "command": "python -m benchmarks.custody_demo_scan " + " ".join(argv or sys.argv[1:])}  # fmt: skip
    path, k = a.out / f"custody-demo-scan-{meta['date'][:10]}.json", 1
    while path.exists():  # an earlier run of the day is kept
        k += 1
        path = a.out / f"custody-demo-scan-{meta['date'][:10]}-{k}.json"
    path.write_text(json.dumps({**meta, "runs": rows}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
