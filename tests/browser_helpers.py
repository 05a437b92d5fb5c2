"""Headless Chromium for the page tests (reports, boards): one command line, one place."""

from __future__ import annotations

import subprocess


def chromium(args, tmp_path):
    """Run headless Chromium with a throw-away profile under ``tmp_path``."""
    base = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    return subprocess.run(base + args, capture_output=True, text=True, timeout=120)
