"""Gateway overhead and crash safety.

Overhead: the same tiny model served directly (``distilltrace serve``) and through the
gateway (``distilltrace gateway run``, local in-process upstream, evidence log fsync'd
before every answer, or ``--mode proxy``: the gateway in front of the serve process), with
an open-loop load at ``--rate`` requests/s on loopback. The two targets are measured in
alternating blocks within one run; the report gives each side's latency percentiles and
the gateway-minus-direct difference (targets: p50 < 5 ms, p99 < 25 ms).

Crash safety (``--crash-cycles N``): N times, start a gateway (proxy mode), load it from
several client threads (plain and streamed requests), ``kill -9`` it mid-load; then roll
the log and check every acknowledged exchange (a 200 answer read in full, or a stream's
``[DONE]``) is in the Parquet log. Reports acknowledged, missing and quarantined counts.

    nice -n 10 .venv/bin/python -m benchmarks.gateway_overhead [--rate 200] [--seconds 20]
        [--mode local|proxy] [--live] [--crash-cycles 10] [--skip-overhead] [--log-only] [--out FILE.json]

It first measures the evidence log alone (``log_append``): one durable append's latency
at the same rate, the part of the overhead that logging itself adds. ``--live`` runs the
gateway with live scoring (``gateway run --live``: the traffic scan of its own log,
rescanned in the background, and the default policy on every request).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from distilltrace.errors import EndpointError

BODY = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 1, "seed": 0}


def tiny_model_dir(root: Path) -> Path:
    """A small random Llama folder (byte tokenizer): the cheapest real model to serve."""
    from distilltrace.models.tiny import make_tiny_model

    return make_tiny_model(root / "tiny", n_layers=1, hidden_size=32, seed=0)


def _wait_health(proc: subprocess.Popen, base: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise EndpointError(f"{what} exited with code {proc.returncode}")
        try:
            if httpx.get(f"{base}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise EndpointError(f"{what} not ready after {timeout}s")
        time.sleep(0.1)


@contextlib.contextmanager
def gateway_process(
    upstream: str, log_dir: Path, *, timeout: float = 180.0, extra: tuple[str, ...] = ()
) -> Iterator[tuple]:
    """``python -m distilltrace.gateway run UPSTREAM [EXTRA...]`` on a free port: yields
    (proc, base URL); stops it on exit (unless the caller killed it)."""
    from tests.serve_helpers import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "distilltrace.gateway", "run", upstream]
    cmd += ["--log-dir", str(log_dir), "--port", str(port), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_health(proc, base, timeout, f"gateway ({upstream})")
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def make_key(log_dir: Path, account: str = "bench") -> str:
    from distilltrace.gateway.accounts import AccountStore

    log_dir.mkdir(parents=True, exist_ok=True)
    store = AccountStore(f"sqlite:///{log_dir / 'accounts.sqlite3'}")
    try:
        return store.add_account(account).key
    finally:
        store.close()


# ------------------------------------------------------------------------- crash safety
def _client_loop(base: str, key: str, stop: threading.Event, acked: list, worker: int) -> None:
    h = {"authorization": f"Bearer {key}"}
    i = 0
    with httpx.Client(base_url=base, timeout=30, headers=h) as c:
        while not stop.is_set():
            i += 1
            stream = i % 3 == 0
            body = {**BODY, "seed": worker * 100000 + i, "stream": stream}
            try:
                if stream:
                    with c.stream("POST", "/v1/chat/completions", json=body) as r:
                        text = r.read().decode()
                        if r.status_code == 200 and text.rstrip().endswith("data: [DONE]"):
                            acked.append(r.headers["x-request-id"])
                else:
                    r = c.post("/v1/chat/completions", json=body)
                    if r.status_code == 200 and r.json().get("choices"):
                        acked.append(r.headers["x-request-id"])
            except (httpx.HTTPError, ValueError):
                time.sleep(0.01)  # the gateway is gone: not acknowledged


def crash_cycles(
    upstream: str, log_dir: Path, *, cycles: int = 10, threads: int = 6, seed: int = 0
) -> dict:
    """Run ``cycles`` kill -9 / restart cycles under load; compare acks with the log."""
    from distilltrace.gateway.evidence_log import parquet_files, roll

    rng = random.Random(seed)
    key = make_key(log_dir)
    acked: list[str] = []
    per_cycle = []
    for n in range(cycles):
        with gateway_process(upstream, log_dir) as (proc, base):
            stop = threading.Event()
            before = len(acked)
            ts = [
                threading.Thread(target=_client_loop, args=(base, key, stop, acked, w))
                for w in range(threads)
            ]
            for t in ts:
                t.start()
            deadline = time.monotonic() + 120  # load is flowing (a slow machine too)
            while len(acked) == before and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.8, 2.0))
            os.kill(proc.pid, signal.SIGKILL)  # mid-load
            proc.wait(timeout=30)
            stop.set()
            for t in ts:
                t.join(timeout=60)
            per_cycle.append(len(acked) - before)
            print(f"cycle {n + 1}/{cycles}: {per_cycle[-1]} acknowledged", flush=True)
    res = roll(log_dir)
    import pyarrow.parquet as pq

    logged: list[str] = []
    for p in parquet_files(log_dir):
        logged += pq.read_table(p, columns=["request_id"]).column(0).to_pylist()
    missing = set(acked) - set(logged)
    return {
        "cycles": cycles,
        "acknowledged": len(acked),
        "acknowledged_per_cycle": per_cycle,
        "logged": len(logged),
        "logged_unique": len(set(logged)),
        "missing_acknowledged": len(missing),
        "logged_not_acknowledged": len(set(logged) - set(acked)),
        "quarantined": res.quarantined,
        "quarantine_reasons": res.reasons,
    }


# ------------------------------------------------------------------------- overhead
@contextlib.contextmanager
def _no_client_gc() -> Iterator[None]:
    """The load generator's own garbage collector off while it measures: a collection in
    this process holding thousands of in-flight requests paused it for 100 ms-1 s, which
    every request in flight then counted as server latency (2026-12-03: at 200/s, direct
    p99 3,398 ms with it on, 57 ms with it off; the servers' own collections still count)."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


async def _open_loop(base: str, headers: dict, rate: float, seconds: float) -> dict:
    """Send ``rate`` requests/s for ``seconds`` (each at its scheduled time, whatever the
    answers do) and time each. The client is aiohttp: it costs this process less than half
    of httpx's CPU per request (2026-12-03, one run: 1.1 ms against 2.5 ms at 150/s; httpx
    then took most of a core at 200/s on a 2-core machine, which the servers needed)."""
    import aiohttp

    with _no_client_gc():
        lat: list[float] = []
        errors = 0
        n = int(rate * seconds)
        conn = aiohttp.TCPConnector(limit=2000, force_close=False)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(
            base, headers=headers, connector=conn, timeout=timeout
        ) as c:

            async def one(i: int) -> None:
                nonlocal errors
                t = time.perf_counter()
                try:
                    async with c.post("/v1/chat/completions", json={**BODY, "seed": i}) as r:
                        await r.read()
                        ok = r.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if ok:
                    lat.append(time.perf_counter() - t)
                else:
                    errors += 1

            t0 = time.perf_counter()
            tasks = []
            for i in range(n):
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(one(i)))
            await asyncio.gather(*tasks)
            wall = time.perf_counter() - t0
        return {"lat": lat, "errors": errors, "sent": n, "wall_s": wall}


async def _log_loop(log_dir: Path, rate: float, seconds: float) -> list[float]:
    from datetime import UTC, datetime

    from distilltrace.gateway.evidence_log import EvidenceLog

    lat: list[float] = []
    row = {"account_id": "bench", "prompt": "p" * 800, "response": "r" * 1200}
    with EvidenceLog(log_dir) as log:

        async def one(i: int) -> None:
            t = time.perf_counter()
            await log.write({**row, "request_id": f"b{i}", "timestamp": datetime.now(UTC)})
            lat.append(time.perf_counter() - t)

        t0, tasks = time.perf_counter(), []
        for i in range(int(rate * seconds)):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
    return lat


def log_latency(log_dir: Path, rate: float, seconds: float) -> dict:
    """Latency of one durable evidence-log append (JSON + CRC, group-commit fdatasync) at
    ``rate`` appends/s of ~2 KB records: the logging part of the gateway's overhead."""
    lat = asyncio.run(_log_loop(log_dir, rate, seconds))
    return {
        "rate": rate,
        "records": len(lat),
        **{f"p{q}_ms": round(_pct(lat, q), 3) for q in (50, 90, 99)},
    }


def _pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=1000, method="inclusive")[int(q * 10) - 1] * 1000


def overhead(direct: str, gateway: str, key: str, rate: float, seconds: float, blocks: int):
    """Alternate direct / gateway blocks of seconds/blocks each at ``rate`` requests/s."""
    sides = {"direct": (direct, {}), "gateway": (gateway, {"authorization": f"Bearer {key}"})}
    out = {s: {"lat": [], "errors": 0, "sent": 0, "wall_s": 0.0} for s in sides}
    for base, h in sides.values():  # warm-up
        asyncio.run(_open_loop(base, h, rate, 1.0))
    for b in range(blocks):
        order = list(sides) if b % 2 == 0 else list(sides)[::-1]
        for side in order:
            base, h = sides[side]
            r = asyncio.run(_open_loop(base, h, rate, seconds / blocks))
            for k in ("errors", "sent", "wall_s"):
                out[side][k] += r[k]
            out[side]["lat"] += r["lat"]
        print(f"block {b + 1}/{blocks} done", flush=True)
    rep = {}
    for side, r in out.items():
        rep[side] = {
            "sent": r["sent"],
            "ok": len(r["lat"]),
            "errors": r["errors"],
            "achieved_rps": round(len(r["lat"]) / r["wall_s"], 1),
            **{f"p{q}_ms": round(_pct(r["lat"], q), 2) for q in (50, 90, 99)},
        }
    rep["added_ms"] = {
        f"p{q}": round(rep["gateway"][f"p{q}_ms"] - rep["direct"][f"p{q}_ms"], 2)
        for q in (50, 90, 99)
    }
    return rep


def live_metrics(base: str, token: str) -> dict[str, float]:
    """The gateway's live-scan gauges (scans published, the latest scan's seconds): shows
    that scans really ran while the latencies were measured."""
    r = httpx.get(f"{base}/metrics", headers={"authorization": f"Bearer {token}"}, timeout=30)
    r.raise_for_status()
    out = {}
    for line in r.text.splitlines():
        for name in ("distilltrace_live_scans", "distilltrace_live_scan_seconds"):
            if line.startswith(name + " "):
                out[name] = float(line.split()[1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default=None, help="Model spec (default: a tiny random model).")
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--seconds", type=float, default=20.0, help="Per side, in all blocks.")
    ap.add_argument("--blocks", type=int, default=4)
    ap.add_argument("--mode", choices=["local", "proxy"], default="local")
    ap.add_argument(
        "--live",
        action="store_true",
        help="Gateway with live scoring and the default policy (logging + scoring).",
    )
    ap.add_argument("--crash-cycles", type=int, default=0)
    ap.add_argument("--skip-overhead", action="store_true")
    ap.add_argument("--log-only", action="store_true", help="Only the log append latency.")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="gw_bench_") as td:  # removed afterwards
        run(a, Path(td))


def run(a: argparse.Namespace, tmp: Path) -> None:
    from tests.serve_helpers import running_server

    log_only = log_latency(tmp / "logonly", a.rate, a.seconds)
    print(json.dumps({"log_append": log_only}), flush=True)
    if a.log_only:
        return
    model = a.model or str(tiny_model_dir(tmp))
    report: dict = {"model": a.model or "tiny random (1 layer, hidden 32)", "rate": a.rate}
    report["log_append"] = log_only
    threads = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}  # same for both
    with running_server(model, env=threads) as serve_v1:
        serve = serve_v1[: -len("/v1")]
        if not a.skip_overhead:
            log_dir = tmp / "log"
            key = make_key(log_dir)
            upstream = model if a.mode == "local" else f"openai:{serve_v1}"
            extra: tuple[str, ...] = ()
            if a.live:
                tok = tmp / "admin-token"
                tok.write_text("bench-admin-token-0123456789\n")
                tok.chmod(0o600)
                extra = ("--live", "--admin-token-file", str(tok))
            with gateway_process(upstream, log_dir, extra=extra) as (_, gw):
                report["overhead"] = {
                    "mode": a.mode,
                    "live_scoring": a.live,
                    **overhead(serve, gw, key, a.rate, a.seconds, a.blocks),
                }
                if a.live:
                    report["overhead"]["live"] = live_metrics(gw, "bench-admin-token-0123456789")
            print(json.dumps(report["overhead"], indent=2), flush=True)
        if a.crash_cycles:
            report["crash"] = crash_cycles(
                f"openai:{serve_v1}", tmp / "crashlog", cycles=a.crash_cycles
            )
            print(json.dumps(report["crash"], indent=2), flush=True)
    text = json.dumps(report, indent=2)
    if a.out:
        Path(a.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
