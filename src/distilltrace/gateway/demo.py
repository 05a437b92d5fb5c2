"""``distilltrace gateway demo``: a gateway with live scoring in front of a tiny model,
simulated traffic replayed through it over HTTP, and the live board.

The traffic simulator (``distilltrace.traffic.simulate``) writes a day of requests from
benign accounts, benign look-alikes and (by default) one distillation campaign. Each
simulated account gets an account and API key in the gateway's store (its org, sign-up
path, payment fingerprint and sign-up time); each request is sent, in the log's order, as
``POST /v1/chat/completions`` with the account's key, its client IP
(``X-Forwarded-For``), user agent and TLS fingerprint (``X-JA4``) as a fronting proxy
would set them. The gateway logs every exchange, the live scorer rescans the window in the
background, and the policy flags, then blocks. What the replay measures: for each
campaign, after how many of its requests it was first flagged and first blocked, and for
benign accounts, how many were flagged or blocked. The gateway's own timestamps are real
(a day is replayed in a minute or two), so the time-of-day signals see compressed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import typer

from distilltrace.errors import InputError


@dataclass(frozen=True)
class ReplayConfig:
    """One replay: the simulated log, the replay client and the live scorer's cadence.

    The simulator writes ``days`` days ending one day from now for ``n_accounts``
    accounts, with the campaign archetypes ``campaigns`` (default: all). Everything before
    now, except the accounts of the replayed campaign ``target``, is the gateway's history
    (the live scorer is warmed with it, as a gateway restarted on its evidence log is; it
    includes the other campaigns, as a real log would). The replay sends
    ``replay_requests`` requests over HTTP: every request of the ``target`` campaign's
    accounts (``benign=False``) and a seeded sample of the last day's requests of benign
    accounts, interleaved at random positions (each stream keeps its order).
    ``benign=True`` replays benign requests only, as many.
    """

    n_accounts: int = 1000
    days: int = 2
    seed: int = 0
    campaigns: tuple[str, ...] | None = None  # None: every archetype
    target: str = "proxy_mismatch"
    replay_requests: int = 2500
    benign: bool = False
    concurrency: int = 8
    max_tokens: int = 2
    every_n: int = 250
    interval_s: float = 1.0
    content: bool = False
    hold_s: float = 0.0  # keep serving this long after the replay (to open the board)
    policy: str | None = None  # TOML text; None: the default policy


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve_in_thread(app: Any, *, port: int | None = None) -> Iterator[str]:
    """Run an ASGI app with uvicorn on 127.0.0.1 (a free port) in a thread; yields the base
    URL and always stops the server."""
    import uvicorn

    port = port or free_port()
    cfg = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=5
    )
    server = uvicorn.Server(cfg)
    thread = threading.Thread(target=server.run, name="dt-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise InputError("gateway demo: the server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def tiny_model(seed: int = 0):
    """An untrained in-memory Llama (byte tokenizer): a fast upstream for replays."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from distilltrace.models.tiny import untrained_model

    return untrained_model(
        LlamaForCausalLM,
        LlamaConfig,
        seed=seed,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
    )


def plan(cfg: ReplayConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(history rows, replay rows): see :class:`ReplayConfig`. Ground truth stays in
    ``campaign_id`` for measuring; the gateway never receives it."""
    import datetime as dt

    import numpy as np

    from distilltrace.traffic.simulate import simulate

    if cfg.days < 2:
        raise InputError("gateway demo: days must be >= 2 (history, then the replayed day)")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = now - dt.timedelta(days=cfg.days - 1)  # the last day is replayed
    table = simulate(
        n_accounts=cfg.n_accounts,
        days=cfg.days,
        seed=cfg.seed,
        start=start.isoformat().replace("+00:00", "Z"),
        **({} if cfg.campaigns is None else {"campaigns": tuple(cfg.campaigns)}),
    )
    rows = table.sort_by([("timestamp", "ascending"), ("request_id", "ascending")]).to_pylist()
    acct_camps: dict[str, set[str]] = {}
    for r in rows:
        if r.get("campaign_id"):
            acct_camps.setdefault(r["account_id"], set()).add(r["campaign_id"].split("-")[0])
    bad = {a for a, c in acct_camps.items() if cfg.target in c}
    if not bad:
        raise InputError(f"gateway demo: no {cfg.target!r} campaign in the simulated log")
    history = [r for r in rows if r["timestamp"] < now and r["account_id"] not in bad]
    last_day = [r for r in rows if r["timestamp"] >= now and r["account_id"] not in acct_camps]
    camp = [] if cfg.benign else [r for r in rows if r["account_id"] in bad]
    rng = np.random.default_rng([cfg.seed, 7])
    n_benign = min(len(last_day), max(0, cfg.replay_requests - len(camp)))
    pick = np.sort(rng.choice(len(last_day), size=n_benign, replace=False))
    benign = [last_day[i] for i in pick]
    is_camp = np.zeros(len(camp) + len(benign), dtype=bool)
    is_camp[rng.choice(len(is_camp), size=len(camp), replace=False)] = True
    ci, bi = iter(camp), iter(benign)
    replay = [next(ci) if c else next(bi) for c in is_camp]
    return history, replay


def register_accounts(store: Any, rows: list[dict[str, Any]]) -> dict[str, str]:
    """One gateway account (and key) per simulated account; returns account -> key."""
    keys: dict[str, str] = {}
    for r in rows:
        aid = r["account_id"]
        if aid in keys:
            continue
        k = store.add_account(
            aid,
            org_id=r.get("org_id"),
            signup_path=r.get("signup_path"),
            payment_fingerprint=r.get("payment_fingerprint"),
            created_at=r.get("account_created_at"),
        )
        keys[aid] = k.key
    return keys


def _request(r: dict[str, Any], key: str, max_tokens: int) -> tuple[dict, dict]:
    h = {"Authorization": f"Bearer {key}"}
    for col, name in (("client_ip", "x-forwarded-for"), ("user_agent", "user-agent")):
        if r.get(col):
            h[name] = str(r[col])
    if r.get("tls_fingerprint"):
        h["x-ja4"] = str(r["tls_fingerprint"])
    msgs = [{"role": "user", "content": r.get("prompt") or ""}]
    if r.get("system_prompt"):
        msgs.insert(0, {"role": "system", "content": r["system_prompt"]})
    body = {"model": r.get("model") or "tiny", "messages": msgs, "max_tokens": max_tokens}
    if r.get("temperature") is not None:
        body["temperature"] = float(r["temperature"])
    return h, body


async def _replay(base: str, rows, keys, cfg: ReplayConfig, progress) -> list[dict]:
    import httpx

    out: list[dict | None] = [None] * len(rows)
    q: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(rows)):
        q.put_nowait(i)
    limits = httpx.Limits(max_connections=cfg.concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:

        async def worker() -> None:
            while True:
                try:
                    i = q.get_nowait()
                except asyncio.QueueEmpty:
                    return
                r = rows[i]
                h, body = _request(r, keys[r["account_id"]], cfg.max_tokens)
                resp = await client.post("/v1/chat/completions", json=body, headers=h)
                out[i] = {
                    "i": i,
                    "account_id": r["account_id"],
                    "campaign_id": r.get("campaign_id"),
                    "status": resp.status_code,
                    "policy": resp.headers.get("x-distilltrace-policy", ""),
                }
                progress(1)

        await asyncio.gather(*(worker() for _ in range(cfg.concurrency)))
    return [o for o in out if o is not None]


def replay(base: str, rows, keys, cfg: ReplayConfig, *, show: bool = True) -> list[dict]:
    """Send ``rows`` through the gateway at ``base``; one result per request, in order."""
    from rich.progress import Progress

    if show and sys.stderr.isatty():
        with Progress(transient=True) as prog:
            task = prog.add_task("replaying through the gateway", total=len(rows))
            return asyncio.run(_replay(base, rows, keys, cfg, lambda n: prog.advance(task, n)))
    done = [0]
    step = max(1, len(rows) // 10)

    def tick(n: int) -> None:
        done[0] += n
        if show and done[0] % step == 0:
            print(f"gateway demo: replayed {done[0]:,}/{len(rows):,}", file=sys.stderr, flush=True)

    return asyncio.run(_replay(base, rows, keys, cfg, tick))


def measure(results: list[dict]) -> dict[str, Any]:
    """Per campaign: requests sent before its first flag and first block (1-based, counted
    over the campaign's own requests in replay order); benign accounts flagged/blocked."""
    camps: dict[str, dict[str, Any]] = {}
    benign: dict[str, set[str]] = {"accounts": set(), "flagged": set(), "blocked": set()}
    for r in sorted(results, key=lambda x: x["i"]):
        acted = "block" if r["status"] == 403 else r["policy"]
        cid = r["campaign_id"]
        if cid is None:
            benign["accounts"].add(r["account_id"])
            if acted in ("flag", "block", "throttle", "degrade"):
                benign["flagged"].add(r["account_id"])
            if acted == "block":
                benign["blocked"].add(r["account_id"])
            continue
        c = camps.setdefault(cid, {"requests": 0, "accounts": set(), "first_flag": None})
        c["requests"] += 1
        c["accounts"].add(r["account_id"])
        c.setdefault("first_block", None)
        if acted in ("flag", "block", "throttle", "degrade") and c["first_flag"] is None:
            c["first_flag"] = c["requests"]
        if acted == "block" and c["first_block"] is None:
            c["first_block"] = c["requests"]
        if acted == "block":
            c.setdefault("blocked_accounts", set()).add(r["account_id"])
    out = {
        "requests": len(results),
        "campaigns": {
            k: {
                "requests": v["requests"],
                "accounts": len(v["accounts"]),
                "first_flag_at_request": v["first_flag"],
                "first_block_at_request": v["first_block"],
                "accounts_blocked": len(v.get("blocked_accounts", ())),
            }
            for k, v in sorted(camps.items())
        },
        "benign_accounts": len(benign["accounts"]),
        "benign_accounts_flagged": len(benign["flagged"]),
        "benign_accounts_blocked": len(benign["blocked"]),
    }
    return out


def run_replay(out_dir: str | Path, cfg: ReplayConfig, *, show: bool = True) -> dict[str, Any]:
    """Gateway + live scoring + board on a free port, the replay, the measurements.

    Writes ``out_dir/log`` (evidence), ``audit.jsonl``, ``board.html`` (the board at the
    end) and returns the measurements with the gateway's final live snapshot summary.
    """
    from distilltrace.gateway.app import create_gateway_app
    from distilltrace.gateway.board import board_router
    from distilltrace.gateway.config import GatewayConfig
    from distilltrace.gateway.guardrail import guardrail_router
    from distilltrace.gateway.live import LiveConfig, LiveEnforcer
    from distilltrace.gateway.metrics import metrics_router
    from distilltrace.gateway.policy import AuditLog, Policy, default_policy
    from distilltrace.traffic.scanner import ScanConfig

    out = Path(out_dir)
    if (out / "log").exists() and any((out / "log").iterdir()):
        raise InputError(f"gateway demo: {out / 'log'} is not empty (choose a new --out)")
    out.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    (out / "admin_token").write_text(token + "\n", encoding="utf-8")
    (out / "admin_token").chmod(0o600)
    t0 = time.perf_counter()
    history, rows = plan(cfg)
    policy = Policy.from_toml(cfg.policy) if cfg.policy else default_policy()
    live = LiveConfig(every_n=cfg.every_n, interval_s=cfg.interval_s, content=cfg.content)
    if cfg.content:
        live = replace(live, scan=ScanConfig())
    enf = LiveEnforcer(policy, config=live, audit=AuditLog(out / "audit.jsonl"), start=False)
    enf.backfill(history)  # the gateway's earlier traffic, as if read from its log
    enf.scorer.score_now()
    enf.scorer.start()
    gcfg = GatewayConfig(
        upstream=tiny_model(), log_dir=out / "log", admin_token_file=out / "admin_token"
    )
    routers = [
        board_router(enf, token=token),
        metrics_router(enf.metrics),
        guardrail_router(enf, token=token),
    ]
    app = create_gateway_app(gcfg, enforcer=enf, routers=routers)
    keys = register_accounts(app.state.accounts, history + rows)
    try:
        with serve_in_thread(app) as base:
            if show:
                print(f"gateway demo: gateway on {base}/v1, board {base}/board", file=sys.stderr)
            t1 = time.perf_counter()
            results = replay(base, rows, keys, cfg, show=show)
            replay_s = time.perf_counter() - t1
            snap = enf.scorer.score_now()  # the final scores, for the board file
            _save_board(base, token, out / "board.html")
            if cfg.hold_s > 0:
                if show:
                    print(
                        f"gateway demo: board live at {base}/board for {cfg.hold_s:g} s "
                        f"(admin token in {out / 'admin_token'})",
                        file=sys.stderr,
                    )
                time.sleep(cfg.hold_s)
    finally:
        enf.close()
    m = measure(results)
    m.update(
        replay_seconds=round(replay_s, 1),
        requests_per_second=round(len(results) / max(replay_s, 1e-9), 1),
        total_seconds=round(time.perf_counter() - t0, 1),
        live_scans=enf.scorer.stats["scans"],
        final_flagged_accounts=sum(a.flagged for a in snap.accounts.values()),
        final_flagged_benign_accounts=_benign_flagged(snap, history + rows),
        history_rows=len(history),
        board_url=f"{base}/board",
        config={k: v for k, v in cfg.__dict__.items() if k != "policy"},
        out_dir=str(out),
    )
    return m


def _benign_flagged(snap: Any, rows: list[dict[str, Any]]) -> int:
    """Accounts the final scan flags that carry no campaign request (ground truth)."""
    camp = {r["account_id"] for r in rows if r.get("campaign_id")}
    return sum(a.flagged and a.account_id not in camp for a in snap.accounts.values())


def _save_board(base: str, token: str, path: Path) -> None:
    import httpx

    r = httpx.get(f"{base}/board", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    r.raise_for_status()
    path.write_text(r.text, encoding="utf-8")


def demo_command(
    out: Path = typer.Option(Path("distilltrace-gateway-demo"), "--out", help="Output folder."),
    accounts: int = typer.Option(1000, "--accounts", help="Simulated accounts (>= 300)."),
    requests: int = typer.Option(2500, "--requests", help="Requests replayed over HTTP."),
    campaign: str = typer.Option(
        "proxy_mismatch", "--campaign", help="Campaign archetype replayed over HTTP."
    ),
    seed: int = typer.Option(0, "--seed"),
    hold: float = typer.Option(
        0.0, "--hold", help="Keep the gateway and board up this many seconds after the replay."
    ),
) -> None:
    """Gateway + live scoring + policy in front of a tiny model; a simulated campaign
    replayed through it over HTTP; the live board (URL printed, saved as board.html)."""
    import json

    from rich.console import Console

    console = Console(stderr=True)
    cfg = ReplayConfig(
        n_accounts=accounts,
        seed=seed,
        target=campaign,
        replay_requests=requests,
        hold_s=hold,
    )
    m = run_replay(out, cfg, show=True)
    (Path(out) / "replay.json").write_text(json.dumps(m, indent=1, default=str) + "\n")
    for cid, c in m["campaigns"].items():
        console.print(
            f"campaign {cid}: {c['requests']} requests from {c['accounts']} accounts; first "
            f"flagged at its request {c['first_flag_at_request']}, first blocked at "
            f"{c['first_block_at_request']}; {c['accounts_blocked']} accounts blocked"
        )
    console.print(
        f"benign: {m['benign_accounts']} accounts, {m['benign_accounts_flagged']} flagged, "
        f"{m['benign_accounts_blocked']} blocked; {m['requests']} requests in "
        f"{m['replay_seconds']} s"
    )
    console.print(
        f"board: {out}/board.html (live at {m['board_url']} while it ran; admin token in "
        f"{out}/admin_token); evidence log {out}/log, audit trail {out}/audit.jsonl"
    )
