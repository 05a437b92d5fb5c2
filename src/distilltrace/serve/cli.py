"""CLI for serve: ``distilltrace serve MODEL [--host --port --api-keys --watermark]``."""

from __future__ import annotations

import importlib
from pathlib import Path

import typer

from distilltrace.errors import InputError


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
    app = create_app(m, api_key_hashes=hashes, watermark=wm)
    extra = f", watermark key id {wm.key_id}" if wm is not None else ""
    auth = f", {len(hashes)} API key(s)" if hashes else ""
    console.print(f"serving {m.info.name} on http://{host}:{port}/v1{auth}{extra}")
    uvicorn.run(app, host=host, port=port, log_level=log_level)
