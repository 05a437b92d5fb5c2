"""Gateway live replay: a simulated campaign replayed through the gateway over HTTP is
flagged, then blocked, within a measured number of its requests; a benign replay of the
same size has no account blocked.

Both replays run the real gateway (uvicorn on 127.0.0.1, evidence log fsync'd, a tiny
untrained model upstream) with live scoring (the traffic scan over the window, rescanned
every ``every_n`` rows or ``interval_s`` seconds) and the default policy (block members of
flagged campaigns and flagged accounts, flag accounts with p < 0.001). The live scorer is
warmed with the previous day of benign traffic (see ``distilltrace.gateway.demo.plan``).

    nice -n 10 .venv/bin/python -m benchmarks.gateway_replay [--accounts 1000]
        [--requests 2500] [--campaign proxy_mismatch] [--seed 0] [--content] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from distilltrace.gateway.demo import ReplayConfig, run_replay


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--accounts", type=int, default=1000)
    ap.add_argument("--days", type=int, default=2)
    ap.add_argument("--requests", type=int, default=2500)
    ap.add_argument("--campaign", default="proxy_mismatch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--content", action="store_true", help="content model in live scans")
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    report: dict = {
        "benchmark": "gateway_replay",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.python_version()}",
    }
    for name, benign in (("campaign", False), ("benign", True)):
        cfg = ReplayConfig(
            n_accounts=a.accounts,
            days=a.days,
            seed=a.seed,
            target=a.campaign,
            replay_requests=a.requests,
            benign=benign,
            concurrency=a.concurrency,
            content=a.content,
        )
        with tempfile.TemporaryDirectory(prefix=f"gwreplay-{name}-") as tmp:
            report[name] = run_replay(Path(tmp) / "out", cfg, show=True)
            report[name].pop("out_dir", None)
        print(json.dumps({name: report[name]}, indent=1, default=str), file=sys.stderr)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(json.dumps(report, indent=1, default=str))
    return report


if __name__ == "__main__":
    main()
