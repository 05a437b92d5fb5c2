"""Start a real ``distilltrace serve`` subprocess on loopback, for tests and benchmarks
(``from tests.serve_helpers import running_server``; tests/conftest.py makes the repository
root importable under pytest, ``python -m benchmarks.X`` from the root does the same)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from distilltrace.errors import EndpointError


def cli_error(*args: str) -> str:
    """Run ``python -m ARGS...``; assert it fails with exactly one line on stderr; return it."""
    r = subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running_server(
    spec: str,
    *,
    api_keys: str | Path | None = None,
    watermark: str | Path | None = None,
    startup_timeout: float = 180.0,
    env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """Run ``distilltrace serve SPEC`` on a free 127.0.0.1 port; yield ``http://127.0.0.1:PORT/v1``.

    Waits until /health answers; always stops the server on exit. ``extra_args`` are
    appended to the command line (e.g. ``["--allow-host", "gw.internal"]``).
    """
    port = free_port()
    cmd = [sys.executable, "-m", "distilltrace.cli", "serve", spec, "--port", str(port)]
    cmd += ["--host", "127.0.0.1"]
    if api_keys is not None:
        cmd += ["--api-keys", str(api_keys)]
    if watermark is not None:
        cmd += ["--watermark", str(watermark)]
    cmd += [str(a) for a in extra_args]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                tail = log.read().decode(errors="replace").strip().splitlines()[-3:]
                raise EndpointError(
                    f"distilltrace serve {spec} exited with code {proc.returncode}: "
                    + " | ".join(tail)
                )
            try:
                if httpx.get(f"{base}/health", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise EndpointError(f"distilltrace serve {spec} not ready after {startup_timeout}s")
            time.sleep(0.2)
        yield f"{base}/v1"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        log.close()
