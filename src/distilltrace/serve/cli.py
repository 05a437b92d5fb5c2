"""CLI for serve: ``distilltrace serve MODEL [--host --port --api-keys --watermark ...]``."""

from __future__ import annotations

import importlib
import ipaddress
from pathlib import Path
from typing import Any

import typer

from distilltrace.errors import InputError
from distilltrace.serve.heap import freeze_startup_heap

# The batching options of a server over a local model (serve, and gateway run).
MAX_BATCH_OPTION = typer.Option(
    8,
    "--max-batch",
    help="Most concurrent requests generated together in one batch (1: one at a time).",
)
BATCH_WINDOW_OPTION = typer.Option(
    20.0,
    "--batch-window-ms",
    help="How long an idle worker waits for more requests before it starts (0..10000 ms).",
)
BATCHING_OPTION = typer.Option(
    "continuous",
    "--batching",
    help="continuous: a request joins the running batch at the next token; dynamic: it "
    "waits until the running batch is done.",
)
PREFIX_CACHE_OPTION = typer.Option(
    16,
    "--prefix-cache",
    help="Recent prompts whose keys and values are kept, so a prompt that starts the same "
    "way (a shared system prompt) prefills only the rest (0: off; 0..1024).",
)


def serve(
    model: str = typer.Argument(..., help="Model spec: folder, GGUF file or bundled name."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    api_keys: Path | None = typer.Option(
        None,
        "--api-keys",
        help="File of SHA-256 hashes of accepted API keys, one per line "
        "(hash a key with: python -m distilltrace.serve.keys).",
    ),
    watermark: Path | None = typer.Option(
        None, "--watermark", help="Watermark key file: every generation is watermarked."
    ),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
    max_body_bytes: int = typer.Option(
        1024 * 1024, "--max-body-bytes", help="Largest accepted request body (else HTTP 413)."
    ),
    context_length: int | None = typer.Option(
        None,
        "--context-length",
        help="Context length in tokens for the prompt + max_tokens check (default: the "
        "model config's).",
    ),
    allow_host: list[str] = typer.Option(
        [],
        "--allow-host",
        help="Also accept this Host header name (repeatable). On a loopback address only "
        "localhost, 127.0.0.1 and [::1] are accepted by default (DNS-rebinding guard).",
    ),
    max_batch: int = MAX_BATCH_OPTION,
    batch_window_ms: float = BATCH_WINDOW_OPTION,
    batching_mode: str = BATCHING_OPTION,
    prefix_cache: int = PREFIX_CACHE_OPTION,
) -> None:
    """Serve MODEL over an OpenAI-compatible HTTP API (/v1/models, /v1/chat/completions, /v1/completions)."""
    import uvicorn
    from rich.console import Console

    from distilltrace.models import load_model
    from distilltrace.serve.app import create_app
    from distilltrace.serve.keys import load_key_hashes

    console = Console(stderr=True)
    if not 0 < port < 65536:
        raise InputError(f"--port must be in 1..65535, got {port}")
    if max_body_bytes < 1:
        raise InputError(f"--max-body-bytes must be >= 1, got {max_body_bytes}")
    if context_length is not None and context_length < 1:
        raise InputError(f"--context-length must be >= 1, got {context_length}")
    batching = batch_config(max_batch, batch_window_ms, batching_mode, prefix_cache)
    hashes = load_key_hashes(api_keys) if api_keys is not None else None
    wm = None
    if watermark is not None:
        try:
            keys_mod = importlib.import_module("distilltrace.marks.keys")
            load_watermark = keys_mod.load_watermark
        except (ImportError, AttributeError):
            raise InputError(
                "--watermark needs distilltrace.marks.keys.load_watermark, which is not available"
            ) from None
        wm = load_watermark(watermark)
    with console.status(f"loading {model}") as st:
        m = load_model(model, status=lambda msg: st.update(msg))
    app = create_app(
        m,
        api_key_hashes=hashes,
        watermark=wm,
        max_body_bytes=max_body_bytes,
        context_length=context_length,
        allowed_hosts=default_allowed_hosts(host, allow_host),
        batching=batching,
    )
    extra = f", watermark key id {wm.key_id}" if wm is not None else ""
    auth = f", {len(hashes)} API key(s)" if hashes else ""
    batch = f", {batching_mode} batches of up to {max_batch}" if max_batch > 1 else ", unbatched"
    console.print(f"serving {m.info.name} on http://{host}:{port}/v1{auth}{extra}{batch}")
    freeze_startup_heap()  # full collections while serving skip the model and libraries
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def batch_config(max_batch: int, window_ms: float, mode: str, prefix_cache: int) -> Any:
    """A ``BatchConfig`` from the batching options, with one-line errors naming them."""
    from distilltrace.serve.batching import BatchConfig

    if max_batch < 1:
        raise InputError(f"--max-batch must be >= 1, got {max_batch}")
    if not 0 <= window_ms <= 10_000:
        raise InputError(f"--batch-window-ms must be in 0..10000, got {window_ms}")
    if mode not in ("continuous", "dynamic"):
        raise InputError(f"--batching must be continuous or dynamic, got {mode!r}")
    if not 0 <= prefix_cache <= 1024:
        raise InputError(f"--prefix-cache must be in 0..1024, got {prefix_cache}")
    return BatchConfig(
        max_batch=max_batch,
        window_ms=window_ms,
        continuous=mode == "continuous",
        prefix_cache=prefix_cache,
    )


def default_allowed_hosts(host: str, extra: list[str]) -> list[str] | None:
    """The Host allow-list for a bind address: on loopback, the loopback names plus
    ``extra``; elsewhere only ``extra`` (None, i.e. no check, when it is empty)."""
    from distilltrace.serve.guard import LOOPBACK_HOSTS

    extra = [h for h in extra if h.strip()]
    if _is_loopback(host):
        return [*LOOPBACK_HOSTS, *extra]
    return extra or None


def _is_loopback(host: str) -> bool:
    h = host.strip().strip("[]").lower()
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False
