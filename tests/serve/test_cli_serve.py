"""`distilltrace serve` as a real subprocess: API keys file, key hashing helper, bad options."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from distilltrace.errors import EndpointError
from distilltrace.models import load_model
from distilltrace.serve.app import hash_api_key
from tests.serve_helpers import running_server


def test_key_hashing_helper_reads_stdin():
    out = subprocess.run(
        [sys.executable, "-m", "distilltrace.serve.keys"],
        input="my-key\n",
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == hash_api_key("my-key")


def test_served_with_api_keys_over_loopback(tiny_dir, tmp_path, monkeypatch):
    keys = tmp_path / "keys.txt"
    keys.write_text(f"# team A\n{hash_api_key('k-good')}\n")
    with running_server(str(tiny_dir), api_keys=keys) as url:
        assert httpx.get(f"{url}/models").status_code == 401
        monkeypatch.setenv("DT_KEY", "k-good")
        m = load_model(f"openai:{url};model={tiny_dir.name};key_env=DT_KEY")
        assert m.generate(["hi"], max_new_tokens=3)[0].finish_reason in ("stop", "length")
        monkeypatch.setenv("DT_KEY", "k-bad")
        with pytest.raises(EndpointError, match="401"):
            load_model(f"openai:{url};model={tiny_dir.name};key_env=DT_KEY")


def test_bad_key_file_stops_the_server_with_one_line(tiny_dir, tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("plain-text-key\n")
    with pytest.raises(EndpointError, match="not a SHA-256 hex digest"):
        with running_server(str(tiny_dir), api_keys=keys, startup_timeout=120):
            pass


def test_serve_bad_spec_is_one_line():
    r = subprocess.run(
        [sys.executable, "-m", "distilltrace.cli", "serve", "no-such-model"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "accepted forms" in lines[0]
