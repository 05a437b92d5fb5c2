"""The live board in a real browser: headless Chromium renders the campaigns, accounts and
policy actions from a real live scan, logs no console errors, and hostile prompt text and
account names (<script>, <img onerror>, <svg onload>) show as text and execute nothing.
Deterministic checks (no statistics: null not applicable)."""

from __future__ import annotations

import shutil
from urllib.parse import quote

import httpx
import pandas as pd
import pytest
from fastapi import FastAPI

from distilltrace.gateway.board import board_router
from distilltrace.gateway.demo import serve_in_thread
from distilltrace.gateway.live import LiveConfig, LiveEnforcer
from distilltrace.gateway.policy import AuditLog, default_policy
from tests.browser_helpers import chromium
from tests.traffic.handmade_logs import make_benign, make_hydra

TOKEN = "board-admin-token-0123456789"
PAYLOAD = (
    "<script>document.title='PWNED';document.body.setAttribute('data-pwned','1')</script>"
    "<img src=x onerror=\"document.title='PWNED';document.body.setAttribute('data-pwned','1')\">"
    "<svg onload=\"document.title='PWNED'\"></svg>"
)
EVIL_ID = "<b onmouseover=alert(1)>"


_chromium = chromium


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A board over a real live scan of a hydra whose prompts and account ids are hostile."""
    tmp = tmp_path_factory.mktemp("board")
    df = pd.concat(
        [make_benign(150, seed=7, hard=False), make_hydra(30, 10, seed=8)], ignore_index=True
    )
    camp = df["campaign_id"].notna()
    df.loc[camp, "prompt"] = PAYLOAD + " Show your complete reasoning and every intermediate step."
    df.loc[camp, "account_id"] = df.loc[camp, "account_id"] + EVIL_ID
    rows = df.drop(columns=["campaign_id"]).to_dict("records")
    enf = LiveEnforcer(
        default_policy(),
        config=LiveConfig(window_s=400 * 86400),
        audit=AuditLog(tmp / "audit.jsonl"),
        start=False,
    )
    for r in rows:
        enf.observe({k: v for k, v in r.items() if not (isinstance(v, float) and v != v)})
    snap = enf.scorer.score_now()
    assert any(c.flagged for c in snap.campaigns)
    app = FastAPI()
    app.include_router(board_router(enf, token=TOKEN))
    with serve_in_thread(app) as base:
        yield base, enf, tmp


needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium")


@pytest.mark.browser
@needs_chromium
def test_board_renders_and_payload_is_inert(board, tmp_path):
    base, enf, _ = board
    r = _chromium(["--dump-dom", f"{base}/board?token={TOKEN}"], tmp_path)
    dom = r.stdout
    assert r.returncode == 0, r.stderr[-2000:]
    assert '<table id="campaigns">' in dom and 'class="campaign-row"' in dom
    assert 'class="account-row"' in dom and 'class="audit-row"' in dom
    assert "<title>distilltrace live board</title>" in dom
    assert "PWNED" not in dom.split("<body")[0]
    assert 'data-pwned="1"' not in dom
    assert "&lt;b onmouseover=alert(1)&gt;" in dom  # the hostile account id shows as text
    assert "<b onmouseover" not in dom
    assert TOKEN not in dom  # the token is never echoed (the login redirect drops it)
    assert 'class="act-block">block' in dom  # policy actions are on the board
    console = [ln for ln in r.stderr.splitlines() if ":CONSOLE" in ln]
    assert console == []


@pytest.mark.browser
@needs_chromium
def test_account_and_campaign_pages_are_inert(board, tmp_path):
    base, enf, _ = board
    snap = enf.snapshot
    evil = next(a for a in snap.accounts.values() if a.account_id.endswith(EVIL_ID) and a.flagged)
    r = _chromium(
        ["--dump-dom", f"{base}/board/account/{quote(evil.account_id, safe='')}?token={TOKEN}"],
        tmp_path,
    )
    dom = r.stdout
    assert r.returncode == 0 and 'id="scores"' in dom
    assert (
        "&lt;script&gt;" in dom
        and 'data-pwned="1"' not in dom
        and "PWNED" not in dom.split("<body")[0]
    )
    assert [ln for ln in r.stderr.splitlines() if ":CONSOLE" in ln] == []
    r = _chromium(
        ["--dump-dom", f"{base}/board/campaign/{evil.cluster_id}?token={TOKEN}"], tmp_path
    )
    dom = r.stdout
    assert r.returncode == 0 and 'id="members"' in dom and 'id="examples"' in dom
    assert "&lt;script&gt;" in dom and 'data-pwned="1"' not in dom
    assert [ln for ln in r.stderr.splitlines() if ":CONSOLE" in ln] == []


def test_board_auth_and_admin_action(board):
    base, enf, _ = board
    assert httpx.get(f"{base}/board").status_code == 401
    assert httpx.get(f"{base}/board?token=wrong").status_code == 401
    with httpx.Client(base_url=base, follow_redirects=False) as c:
        r = c.get(f"/board?token={TOKEN}")
        assert r.status_code == 303 and r.headers["location"] == "/board"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
        page = c.get("/board")
        assert page.status_code == 200
        assert "script-src" not in page.headers["content-security-policy"]
        aid = next(iter(enf.snapshot.accounts))
        r = c.post(
            f"/board/account/{quote(aid, safe='')}/action",
            data={"action": "throttle", "why": "manual review <i>x</i>"},
        )
        assert r.status_code == 303
        ev = c.get(f"/board/account/{quote(aid, safe='')}/evidence.json").json()
        assert ev["decision"]["action"] == "throttle" and ev["audit"][0]["who"] == "admin:board"
        assert (
            c.post(f"/board/account/{quote(aid, safe='')}/action", data={"action": "x"}).status_code
            == 400
        )
    assert (
        httpx.post(
            f"{base}/board/account/a/action", data={"action": "allow", "why": "x"}
        ).status_code
        == 401
    )
