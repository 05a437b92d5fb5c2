"""DuckDB vs Spark (local mode) on the scale benchmark's cached logs.

    nice -n 10 .venv/bin/python -m benchmarks.traffic_spark [--sizes 1000000,3000000,10000000]
        [--engines duckdb,spark] [--timeout 1800] [--master local[2]] [--no-content]
        [--row-engine auto|duckdb|spark] [--repeat N]

Reuses the Parquet files that `benchmarks.traffic_scale` generates and caches under
benchmarks/.data/ (run that first; this script does not generate data). Each scan
runs end to end (outputs written) in a fresh subprocess; the parent samples the
resident memory of the whole process tree (Python plus, for Spark, the JVM) every
0.2 s with psutil and records the peak. The child records the size (rows, Arrow
bytes; Parquet bytes for files) of every table that leaves the engine, split into the
reduced tables fetched to the driver and the request-level flags (requests.parquet,
and its in-memory copy for logs up to 2M requests): what a cluster run moves to the
driver. The 1-minute load average is sampled with the memory (the machine may be
shared: mean and max are recorded). ``--no-content`` scans without the content model
(the default scan has it); ``--row-engine`` chooses where Spark runs the row-wise regex
statements (`SparkEngine`). ``--repeat N`` runs N rounds per size, the engines in
ABBA order, and prints each engine's median wall time and its time over the first
engine's, per round and the median of those (on a machine whose speed drifts, a ratio
within one round is the fair one). The Spark engine's class archive
(`distilltrace.traffic.spark_cds`, built once per Java and Spark install) is prepared
before the rounds, as any earlier Spark run would have; its build time is recorded in
``meta``. Results: benchmarks/results/traffic_spark.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).parent / ".data"
RESULTS = Path(__file__).parent / "results"


class _Recording:
    """An engine wrapper that records the size of everything leaving the engine."""

    def __init__(self, eng) -> None:
        self._eng = eng
        self.moved: list[dict] = []

    def __getattr__(self, name):
        return getattr(self._eng, name)

    def fetch(self, sql: str):
        import pyarrow as pa

        df = self._eng.fetch(sql)
        try:
            nbytes = pa.Table.from_pandas(df, preserve_index=False).nbytes
        except Exception:  # noqa: BLE001 - mixed object columns: fall back to pandas' estimate
            nbytes = int(df.memory_usage(deep=True).sum())
        self.moved.append(
            {"what": " ".join(sql.split())[:90], "rows": len(df), "bytes": int(nbytes)}
        )
        return df

    def write_parquet(self, sql: str, path: str) -> None:
        import pyarrow.parquet as pq

        self._eng.write_parquet(sql, path)
        md = pq.read_metadata(path)
        self.moved.append(
            {
                "what": "write_parquet " + Path(path).name,
                "rows": md.num_rows,
                "bytes": os.path.getsize(path),
            }
        )


def _per_request(what: str) -> bool:
    """Request-level output (requests.parquet or its in-memory copy), not a reduced table."""
    return what.startswith("write_parquet") or (what.startswith("SELECT * FROM req_flags"))


def _child(
    engine: str,
    path: str,
    out_json: str,
    master: str,
    memory: str,
    content: bool = True,
    row_engine: str = "auto",
) -> None:
    from distilltrace.traffic.engine import make_engine
    from distilltrace.traffic.scanner import scan

    t0 = time.perf_counter()
    if engine == "spark":
        eng = make_engine("spark", master=master, memory_limit=memory, row_engine=row_engine)
    else:
        eng = make_engine("duckdb", threads=2)
    t_start = time.perf_counter() - t0
    rec = _Recording(eng)
    with tempfile.TemporaryDirectory(prefix="bench-spark-") as out:
        res = scan(path, engine=rec, out_dir=out, content=content)
    s = res.summary
    per_request = [m for m in rec.moved if _per_request(m["what"])]
    fetched = [m for m in rec.moved if m not in per_request]
    Path(out_json).write_text(
        json.dumps(
            {
                "engine_start_s": round(t_start, 2),
                "class_archive": bool(getattr(eng, "class_archive", None)),
                "content": content,
                "row_engine": getattr(eng, "row_engine", None),
                "scan_s": s["timings_s"]["total"],
                "timings_s": s["timings_s"],
                "n_requests": s["n_requests"],
                "n_accounts": s["n_accounts"],
                "n_campaigns": s["n_campaigns"],
                "n_flagged_accounts": s["n_flagged_accounts"],
                "reduced_fetched": {
                    "rows": sum(m["rows"] for m in fetched),
                    "bytes": sum(m["bytes"] for m in fetched),
                },
                # request-level flags: requests.parquet, plus an in-memory copy up to 2M requests
                "request_flags": {
                    "rows": sum(m["rows"] for m in per_request),
                    "bytes": sum(m["bytes"] for m in per_request),
                },
                "tables": rec.moved,
            }
        )
    )


def _tree_rss(proc) -> int:
    import psutil

    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_one(
    engine: str,
    path: Path,
    *,
    master: str,
    memory: str,
    timeout: float,
    content: bool = True,
    row_engine: str = "auto",
) -> dict:
    import psutil

    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out_json = fh.name
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.traffic_spark",
        "--child",
        engine,
        str(path),
        out_json,
        "--master",
        master,
        "--memory",
        memory,
        "--row-engine",
        row_engine,
        *([] if content else ["--no-content"]),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    ps = psutil.Process(proc.pid)
    peak = 0
    loads: list[float] = []
    timed_out = False
    while proc.poll() is None:
        peak = max(peak, _tree_rss(ps))
        loads.append(os.getloadavg()[0])
        if time.perf_counter() - t0 > timeout:
            timed_out = True
            for c in ps.children(recursive=True):
                c.kill()
            proc.kill()
            break
        time.sleep(0.2)
    err = proc.communicate()[1] or ""
    wall = time.perf_counter() - t0
    row = {
        "engine": engine,
        "file": path.name,
        "wall_s": round(wall, 1),
        "peak_rss_gb": round(peak / 2**30, 2),
        "load_avg_1m_mean": round(sum(loads) / len(loads), 1) if loads else None,
        "load_avg_1m_max": round(max(loads), 1) if loads else None,
    }
    if timed_out:
        row["status"] = f"timed out after {timeout:.0f} s"
    elif proc.returncode != 0:
        row["status"] = "failed: " + (err.strip().splitlines() or ["?"])[-1][:300]
    else:
        row["status"] = "ok"
        row.update(json.loads(Path(out_json).read_text()))
    Path(out_json).unlink(missing_ok=True)
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000000,3000000,10000000")
    ap.add_argument("--engines", default="duckdb,spark")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--memory", default="6GB", help="Spark driver memory (local mode)")
    ap.add_argument("--no-content", action="store_true", help="scan without the content model")
    ap.add_argument("--row-engine", default="auto", choices=["auto", "duckdb", "spark"])
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds per size, engines in ABBA order; prints the per-round time ratios",
    )
    ap.add_argument(
        "--child", nargs=3, metavar=("ENGINE", "PATH", "OUT_JSON"), help=argparse.SUPPRESS
    )
    a = ap.parse_args(argv)
    if a.child:
        _child(
            *a.child,
            master=a.master,
            memory=a.memory,
            content=not a.no_content,
            row_engine=a.row_engine,
        )
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    res_path = RESULTS / "traffic_spark.json"
    doc = json.loads(res_path.read_text()) if res_path.exists() else {"runs": []}
    doc["meta"] = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "master": a.master,
        "spark_driver_memory": a.memory,
        "command": "python -m benchmarks.traffic_spark "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    if "spark" in a.engines.split(","):
        doc["meta"]["spark_class_archive"] = _prepare_class_archive()
    for n in [int(x) for x in a.sizes.split(",")]:
        path = DATA / f"traffic_scale_{n}.parquet"
        if not path.exists():
            sys.exit(
                f"{path} is missing: run `python -m benchmarks.traffic_scale --sizes {n}` first"
            )
        engines = a.engines.split(",")
        doc["runs"] = [r for r in doc["runs"] if not (r["engine"] in engines and r["size"] == n)]
        for k in range(a.repeat):
            # ABBA order: a machine that speeds up or slows down during the rounds
            # favours neither engine
            for engine in engines if k % 2 == 0 else engines[::-1]:
                row = run_one(
                    engine,
                    path,
                    master=a.master,
                    memory=a.memory,
                    timeout=a.timeout,
                    content=not a.no_content,
                    row_engine=a.row_engine,
                )
                row.update(
                    size=n, round=k, date_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                )
                print(json.dumps({k: v for k, v in row.items() if k != "tables"}), flush=True)
                doc["runs"].append(row)
                res_path.write_text(json.dumps(doc, indent=2))
        summary = _ratios([r for r in doc["runs"] if r["size"] == n], engines)
        if summary:
            print(json.dumps({"size": n, **summary}), flush=True)
            doc.setdefault("summary", {})[str(n)] = summary
            res_path.write_text(json.dumps(doc, indent=2))


def _prepare_class_archive() -> dict:
    """Build the Spark engine's class archive before the timed rounds, as a first use
    would (once per install), so that no round pays for it; its build time is recorded."""
    from distilltrace.traffic.spark_engine import prepare_class_archive

    t0 = time.perf_counter()
    path = prepare_class_archive()
    out = {"path": str(path) if path else None, "prepared_s": round(time.perf_counter() - t0, 1)}
    if path is not None:
        out.update(json.loads(path.with_suffix(".json").read_text()))
    print(json.dumps({"spark_class_archive": out}), flush=True)
    return out


def _ratios(rows: list[dict], engines: list[str]) -> dict | None:
    """Median wall time per engine and, per round, each engine's wall time over the
    first engine's (the ratio within a round is what a drifting machine spoils least)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    if len(engines) < 2 or not ok:
        return None
    walls = {e: [r["wall_s"] for r in ok if r["engine"] == e] for e in engines}
    out: dict = {"median_wall_s": {e: statistics.median(w) for e, w in walls.items() if w}}
    base = engines[0]
    for e in engines[1:]:
        per = []
        for k in sorted({r["round"] for r in ok}):
            b = [r["wall_s"] for r in ok if r["engine"] == base and r["round"] == k]
            x = [r["wall_s"] for r in ok if r["engine"] == e and r["round"] == k]
            if b and x:
                per.append(round(x[0] / b[0], 2))
        if per:
            out[f"{e}_over_{base}"] = {"per_round": per, "median": statistics.median(per)}
    return out


if __name__ == "__main__":
    main()
