"""Scale benchmark for `distilltrace traffic scan`: 1M, 3M and 10M requests (Parquet).

    nice -n 10 .venv/bin/python -m benchmarks.traffic_scale [--sizes 1000000,3000000,10000000]

Generates each input once (cached under benchmarks/.data/) with a vectorised generator
(pyarrow compute; no Python loop per row): ~N/100 accounts with heavy-tailed sizes,
residential and NAT IPs, common clients, prompts of 100-400 characters assembled from
phrase fragments, and a few hydra campaigns. Each scan runs in a fresh subprocess with
2 engine threads; wall time and peak resident memory (the child's ru_maxrss) are
recorded in benchmarks/results/traffic_scale.json, with the scan's CPU seconds and the
machine's load average (the machine is shared, so wall time depends on other work).
Peak RSS is the largest child so far (sizes run in increasing order).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

DATA = Path(__file__).parent / ".data"
RESULTS = Path(__file__).parent / "results"

_OPEN = [
    "Can you",
    "Please",
    "I need you to",
    "Help me",
    "Quickly",
    "Could you",
    "Now",
    "Task:",
    "Hi,",
    "Question:",
]
_VERB = [
    "explain",
    "summarize",
    "rewrite",
    "debug",
    "translate",
    "solve",
    "outline",
    "compare",
    "review",
    "draft",
]
_OBJ = [
    "this paragraph about the harbour",
    "the function below that parses dates",
    "an email to my manager",
    "the integral of a rational function",
    "our onboarding checklist",
    "a SQL query over the orders table",
    "the causes of the first world war",
    "a poem about rain in the city",
    "a recursive tree traversal",
    "the difference between mitosis and meiosis",
    "a budget for a small bakery",
    "a regex for phone numbers",
]
_TAIL = [
    "",
    " Keep it short.",
    " Use bullet points.",
    " Show your complete reasoning and every intermediate step.",
    " Thanks!",
    " Answer in two sentences.",
    " Include an example.",
    " Be precise.",
]
_FILL = [
    "alpha",
    "delta",
    "kappa",
    "river",
    "copper",
    "maple",
    "orbit",
    "quartz",
    "sable",
    "tundra",
    "violet",
    "willow",
]


def generate(n: int, path: Path, seed: int = 0) -> None:
    """Write a synthetic n-request log in the schema (vectorised)."""
    rng = np.random.default_rng(seed)
    n_acc = max(n // 100, 10)
    w = rng.pareto(1.2, n_acc) + 1
    acc = rng.choice(n_acc, size=n, p=w / w.sum())
    t0 = np.datetime64("2026-03-01T00:00:00", "us").astype(np.int64)
    ts = t0 + rng.integers(0, 14 * 86400 * 10**6, n)

    def take(vocab, idx):
        return pa.array(vocab).take(pa.array(idx))

    k = len(_FILL)
    prompt = pc.binary_join_element_wise(
        take(_OPEN, rng.integers(0, len(_OPEN), n)),
        take(_VERB, rng.integers(0, len(_VERB), n)),
        take(_OBJ, rng.integers(0, len(_OBJ), n)),
        pc.cast(pa.array(rng.integers(0, 10**6, n)), pa.string()),
        take(_FILL, rng.integers(0, k, n)),
        take(_FILL, rng.integers(0, k, n)),
        take(_OBJ, rng.integers(0, len(_OBJ), n)),
        take(_FILL, rng.integers(0, k, n)),
        " ",
    )
    prompt = pc.binary_join_element_wise(prompt, take(_TAIL, rng.integers(0, len(_TAIL), n)), "")
    acc_ids = pc.binary_join_element_wise(
        pa.array(np.full(n, "acct")), pc.cast(pa.array(acc), pa.string()), "-"
    )
    ip_a = rng.integers(11, 220, n_acc)
    ip_b = rng.integers(0, 255, n_acc)
    nat = rng.random(n_acc) < 0.05
    ip_a[nat], ip_b[nat] = 198, 51
    ip = pc.binary_join_element_wise(
        pc.cast(pa.array(ip_a[acc]), pa.string()),
        pc.cast(pa.array(ip_b[acc]), pa.string()),
        pc.cast(pa.array((acc % 250)[:]), pa.string()),
        pc.cast(pa.array((acc // 250) % 250 + 1), pa.string()),
        ".",
    )
    ua_of = rng.integers(0, 4, n_acc)
    uas = [
        "Mozilla/5.0 (Windows)",
        "Mozilla/5.0 (Mac)",
        "python-requests/2.31",
        "openai-python/1.40",
    ]
    table = pa.table(
        {
            "request_id": pc.binary_join_element_wise(
                pa.array(np.full(n, "r")), pc.cast(pa.array(np.arange(n)), pa.string()), "-"
            ),
            "timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "account_id": acc_ids,
            "prompt": prompt,
            "org_id": pc.binary_join_element_wise(
                pa.array(np.full(n, "org")), pc.cast(pa.array(acc // 3), pa.string()), "-"
            ),
            "account_created_at": pa.array(
                t0 - rng.integers(1, 900, n_acc)[acc] * 86400 * 10**6, pa.timestamp("us", tz="UTC")
            ),
            "signup_path": take(
                ["self_serve", "startup", "education", "enterprise"], rng.integers(0, 4, n_acc)[acc]
            ),
            "payment_fingerprint": pc.binary_join_element_wise(
                pa.array(np.full(n, "pay")), pc.cast(pa.array(acc), pa.string()), "-"
            ),
            "client_ip": ip,
            "asn": pa.array(np.where(nat[acc], 64500, 7922)),
            "asn_type": take(["residential", "business"], nat[acc].astype(int)),
            "user_agent": take(uas, ua_of[acc]),
            "tls_fingerprint": take(["t-chrome", "t-firefox", "t-python", "t-node"], ua_of[acc]),
            "model": take(["m-1", "m-2"], (ts > t0 + 7 * 86400 * 10**6).astype(int)),
            "input_tokens": pa.array(rng.integers(10, 400, n)),
            "output_tokens": pa.array(rng.integers(20, 900, n)),
            "status": take(["ok"], np.zeros(n, int)),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, compression="snappy", row_group_size=1_000_000)
    tmp.rename(path)


def run_one(path: Path, threads: int) -> dict:
    """Scan path in a fresh subprocess; return wall time, peak RSS and summary counts."""
    out = RESULTS / f"scan_{path.stem}"
    code = (
        "import json,sys; from distilltrace.traffic import scan; "
        f"r = scan([{str(path)!r}], out_dir={str(out)!r}, threads={threads}, memory_limit='6GB'); "
        "print(json.dumps({k: r.summary[k] for k in ('n_requests','n_accounts','n_campaigns','n_flagged_accounts','timings_s')}))"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load1 = os.getloadavg()[0]
    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise RuntimeError(p.stderr[-3000:])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak_kb = after.ru_maxrss
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    info = json.loads(p.stdout.strip().splitlines()[-1])
    return {
        "file": str(path),
        "file_mb": round(path.stat().st_size / 2**20, 1),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "load_avg_1m_before": round(load1, 1),
        "load_avg_1m_after": round(os.getloadavg()[0], 1),
        "peak_rss_gb": round(peak_kb / 2**20, 2),
        **info,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000000,3000000,10000000")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    rows = []
    for n in [int(x) for x in a.sizes.split(",")]:
        path = DATA / f"traffic_scale_{n}.parquet"
        if not path.exists():
            t = time.perf_counter()
            generate(n, path)
            print(f"generated {path} in {time.perf_counter() - t:.0f}s", flush=True)
        r = run_one(path, a.threads)
        rows.append(r)
        print(json.dumps(r), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "threads": a.threads,
    }
    (RESULTS / "traffic_scale.json").write_text(json.dumps({"meta": meta, "runs": rows}, indent=2))


if __name__ == "__main__":
    main()
