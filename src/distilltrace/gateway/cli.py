"""CLI: ``distilltrace gateway run|accounts add|list|revoke|roll`` (thin over the library)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from distilltrace.errors import InputError
from distilltrace.gateway.demo import demo_command
from distilltrace.serve.cli import (
    BATCH_WINDOW_OPTION,
    BATCHING_OPTION,
    MAX_BATCH_OPTION,
    PREFIX_CACHE_OPTION,
)
from distilltrace.serve.heap import freeze_startup_heap

app = typer.Typer(help="A gateway in front of a model: accounts, evidence log, marks.")
accounts_app = typer.Typer(help="Accounts and API keys of the gateway.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.command("demo")(demo_command)

_DB_HELP = (
    "SQLAlchemy URL of the account store (default: SQLite in --log-dir); "
    "or set DISTILLTRACE_GATEWAY_DB so a password stays off the command line."
)


def _db_url(db: str | None, log_dir: Path | None) -> str:
    if db:
        return db
    if log_dir is None:
        raise InputError("give --log-dir (SQLite store inside it) or --db URL")
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{Path(log_dir) / 'accounts.sqlite3'}"


@app.command("run")
def run(
    upstream: str = typer.Argument(
        ..., help="Local model spec (marks possible) or openai:BASE_URL[;key_env=VAR]."
    ),
    log_dir: Path = typer.Option(..., "--log-dir", help="Evidence log folder."),
    db: str | None = typer.Option(None, "--db", envvar="DISTILLTRACE_GATEWAY_DB", help=_DB_HELP),
    admin_token_file: Path | None = typer.Option(
        None, "--admin-token-file", help="File with the admin API token (else no admin API)."
    ),
    watermark: Path | None = typer.Option(
        None, "--watermark", help="Watermark key file: a local upstream's outputs are marked."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8080, "--port", help="Port to listen on."),
    max_body_bytes: int = typer.Option(1024 * 1024, "--max-body-bytes", help="Else HTTP 413."),
    allow_host: list[str] = typer.Option([], "--allow-host", help="Extra Host header names."),
    trusted_proxy: list[str] = typer.Option(
        [],
        "--trusted-proxy",
        help="Peer address whose X-Forwarded-For and TLS fingerprint headers are believed "
        "(repeatable; default 127.0.0.1 and ::1).",
    ),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
    live: bool = typer.Option(
        False,
        "--live",
        help="Score accounts live (traffic detectors over a sliding window) and enforce "
        "the policy; mounts the board, /metrics and the LiteLLM guardrail (needs "
        "--admin-token-file).",
    ),
    policy: Path | None = typer.Option(
        None, "--policy", help="Policy TOML for --live (default: the built-in policy)."
    ),
    live_content: bool = typer.Option(
        False, "--live-content", help="Run the semantic content model in live scans (slower)."
    ),
    max_batch: int = MAX_BATCH_OPTION,
    batch_window_ms: float = BATCH_WINDOW_OPTION,
    batching_mode: str = BATCHING_OPTION,
    prefix_cache: int = PREFIX_CACHE_OPTION,
) -> None:
    """Run the gateway: authenticate, log every exchange durably, forward to UPSTREAM."""
    import uvicorn
    from rich.console import Console

    from distilltrace.gateway.accounts import AccountStore
    from distilltrace.gateway.app import create_gateway_app
    from distilltrace.gateway.config import GatewayConfig
    from distilltrace.gateway.upstream import make_upstream
    from distilltrace.serve.cli import batch_config, default_allowed_hosts

    console = Console(stderr=True)
    cfg = GatewayConfig(
        upstream=upstream,
        log_dir=log_dir,
        db_url=db,
        admin_token_file=admin_token_file,
        watermark_key_file=watermark,
        host=host,
        port=port,
        max_body_bytes=max_body_bytes,
        batching=batch_config(max_batch, batch_window_ms, batching_mode, prefix_cache),
        allowed_hosts=default_allowed_hosts(host, allow_host),
        **({"trusted_proxies": tuple(trusted_proxy)} if trusted_proxy else {}),
    )
    store = AccountStore(cfg.database_url)  # a bad database URL fails before the model loads
    with console.status(f"loading {upstream.split(';')[0]}") as st:
        up = make_upstream(cfg, status=lambda msg: st.update(msg))
    enforcer, routers = _live_parts(cfg, policy, live_content) if live else (None, [])
    gw = create_gateway_app(cfg, upstream=up, enforcer=enforcer, routers=routers, accounts=store)
    mark = f", marks with key id {up.watermark_key_id}" if up.watermark_key_id else ""
    console.print(f"gateway on http://{host}:{port}/v1, evidence log {cfg.log_dir}{mark}")
    freeze_startup_heap()  # full collections while serving skip the model and libraries
    uvicorn.run(gw, host=host, port=port, log_level=log_level)


def _live_parts(cfg, policy_file: Path | None, content: bool):
    """The live enforcer (backfilled from the log's rolled Parquet files) and the board,
    metrics and guardrail routers, for ``gateway run --live``."""
    import pyarrow.parquet as pq

    from distilltrace.gateway.board import board_router
    from distilltrace.gateway.evidence_log import parquet_files
    from distilltrace.gateway.guardrail import guardrail_router
    from distilltrace.gateway.live import LiveConfig, LiveEnforcer
    from distilltrace.gateway.metrics import metrics_router
    from distilltrace.gateway.policy import AuditLog, Policy, default_policy
    from distilltrace.traffic.scanner import ScanConfig

    token = cfg.admin_token()
    if not token:
        raise InputError("gateway run --live: needs --admin-token-file (board and guardrail)")
    if policy_file is not None:
        if not policy_file.is_file():
            raise InputError(f"gateway run: policy file not found: {policy_file}")
        pol = Policy.from_toml(policy_file.read_text("utf-8"), source=str(policy_file))
    else:
        pol = default_policy()
    live = LiveConfig(content=content)
    if content:
        live = replace(live, scan=ScanConfig())
    enf = LiveEnforcer(pol, config=live, audit=AuditLog(Path(cfg.log_dir) / "audit.jsonl"))
    for f in parquet_files(cfg.log_dir):  # what earlier runs logged
        enf.backfill(pq.read_table(f).to_pylist())
    routers = [
        board_router(enf, token=token),
        metrics_router(enf.metrics, token=token),
        guardrail_router(enf, token=token),
    ]
    return enf, routers


@accounts_app.command("add")
def accounts_add(
    account_id: str = typer.Argument(..., help="Account id (new, or existing: adds a key)."),
    org: str | None = typer.Option(None, "--org", help="Organisation id."),
    signup_path: str | None = typer.Option(None, "--signup-path", help="e.g. self_serve."),
    payment_fingerprint: str | None = typer.Option(
        None, "--payment-fingerprint", help="Hash of the payment instrument."
    ),
    log_dir: Path | None = typer.Option(None, "--log-dir", help="Gateway log folder."),
    db: str | None = typer.Option(None, "--db", envvar="DISTILLTRACE_GATEWAY_DB", help=_DB_HELP),
) -> None:
    """Add an account (or a key to one) and print the new API key once."""
    from distilltrace.gateway.accounts import AccountStore

    store = AccountStore(_db_url(db, log_dir))
    k = store.add_account(
        account_id, org_id=org, signup_path=signup_path, payment_fingerprint=payment_fingerprint
    )
    typer.echo(f"account {k.account_id}, key id {k.key_id}; the key (shown only now):", err=True)
    typer.echo(k.key)


@accounts_app.command("list")
def accounts_list(
    log_dir: Path | None = typer.Option(None, "--log-dir", help="Gateway log folder."),
    db: str | None = typer.Option(None, "--db", envvar="DISTILLTRACE_GATEWAY_DB", help=_DB_HELP),
) -> None:
    """List accounts and their active key ids (never the keys)."""
    from rich.console import Console
    from rich.table import Table

    from distilltrace.gateway.accounts import AccountStore

    t = Table("account", "org", "created", "signup path", "keys", "revoked")
    for a in AccountStore(_db_url(db, log_dir)).list():
        created = a.created_at.isoformat(timespec="seconds")
        t.add_row(
            a.account_id,
            a.org_id or "",
            created,
            a.signup_path or "",
            " ".join(a.key_ids),
            "yes" if a.revoked else "",
        )
    Console().print(t)


@accounts_app.command("revoke")
def accounts_revoke(
    ident: str = typer.Argument(..., help="An account id (all its keys) or one key id."),
    log_dir: Path | None = typer.Option(None, "--log-dir", help="Gateway log folder."),
    db: str | None = typer.Option(None, "--db", envvar="DISTILLTRACE_GATEWAY_DB", help=_DB_HELP),
) -> None:
    """Revoke an account or one key; it is refused (401) from the next request on."""
    from distilltrace.gateway.accounts import AccountStore

    what = AccountStore(_db_url(db, log_dir)).revoke(ident)
    typer.echo(f"revoked {what} {ident}")


@app.command("roll")
def roll_command(
    log_dir: Path = typer.Argument(..., help="Gateway evidence log folder."),
) -> None:
    """Roll finished and crashed segments into Parquet (live ones are skipped)."""
    from rich.progress import Progress

    from distilltrace.gateway.evidence_log import SEG_SUFFIX, SEGMENTS, roll

    n = len(list((log_dir / SEGMENTS).glob(f"*{SEG_SUFFIX}")))
    with Progress(transient=True) as prog:
        task = prog.add_task("rolling segments", total=n)
        res = roll(log_dir, progress=lambda _: prog.advance(task))
    typer.echo(
        f"rolled {res.segments_rolled} segment(s): {res.records} record(s) to "
        f"{log_dir / 'parquet'}; {res.segments_live} live segment(s) skipped"
    )
    if res.quarantined:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(res.reasons.items()))
        typer.echo(
            f"quarantined {res.quarantined} record(s) ({why}) in {log_dir / 'quarantine'}",
            err=True,
        )
