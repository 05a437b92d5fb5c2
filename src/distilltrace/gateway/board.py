"""The live board: campaigns, accounts, policy actions and evidence, server-rendered.

Routes (all behind the admin token):

- ``GET /board``: campaigns in the window, accounts by risk with their standing action,
  the latest policy actions;
- ``GET /board/campaign/{cluster_id}``: a candidate campaign's evidence and members;
- ``GET /board/account/{account_id}``: an account's scores, action, recent prompts, audit;
- ``GET /board/account/{account_id}/evidence.json``: the same evidence as JSON;
- ``POST /board/account/{account_id}/action`` (form ``action``, ``why``): an admin
  override, audited as ``admin:board``;
- ``GET /board/audit``: the audit trail.

Authentication: ``Authorization: Bearer ADMIN_TOKEN``, or a browser's cookie
``dt_board`` (HttpOnly, SameSite=Strict, path /board). Opening ``/board?token=ADMIN_TOKEN``
once sets the cookie (it holds an HMAC of the token, not the token) and redirects to the
same page without the token, so the token never stays in the address bar, a link or a
page. Pages are Jinja2 with autoescape on and a Content-Security-Policy without scripts.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from distilltrace.gateway.hooks import ACTIONS
from distilltrace.gateway.live import LiveEnforcer
from distilltrace.gateway.policy import PolicyError

ROOT = "/board"
COOKIE = "dt_board"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters["q"] = lambda s: quote(str(s), safe="")
    return env


def _cookie_value(token: str) -> str:
    return hmac.new(token.encode(), b"distilltrace-board", hashlib.sha256).hexdigest()


class _Auth:
    def __init__(self, token: str) -> None:
        self.token = token
        self.cookie = _cookie_value(token)

    def ok(self, request: Request) -> bool:
        h = request.headers.get("authorization", "")
        given = h[7:].strip() if h.lower().startswith("bearer ") else ""
        if given and hmac.compare_digest(given.encode(), self.token.encode()):
            return True
        c = request.cookies.get(COOKIE, "")
        return bool(c) and hmac.compare_digest(c.encode(), self.cookie.encode())

    def login(self, request: Request) -> Response | None:
        """``?token=`` given: set the cookie and redirect without it (or 401)."""
        t = request.query_params.get("token")
        if t is None:
            return None
        if not hmac.compare_digest(t.encode(), self.token.encode()):
            raise HTTPException(401, "invalid admin token")
        resp = RedirectResponse(request.url.path, status_code=303)
        resp.set_cookie(
            COOKIE, self.cookie, httponly=True, samesite="strict", path=ROOT, max_age=8 * 3600
        )
        return resp

    def check(self, request: Request) -> Response | None:
        back = self.login(request)
        if back is not None:
            return back
        if not self.ok(request):
            raise HTTPException(401, "admin token required (Authorization: Bearer, or ?token=)")
        return None


def _html(env: Environment, name: str, **ctx: Any) -> HTMLResponse:
    return HTMLResponse(env.get_template(name).render(root=ROOT, **ctx), headers=SECURITY_HEADERS)


def board_router(enforcer: LiveEnforcer, *, token: str, max_accounts: int = 200) -> APIRouter:
    """The board's routes; ``token`` is the gateway's admin token."""
    if not token:
        raise PolicyError("the board needs an admin token")
    env, auth, router = _env(), _Auth(token), APIRouter(prefix=ROOT)

    def ranked(snap):
        accts = sorted(snap.accounts.values(), key=lambda a: (-a.risk, a.account_id))
        return [(a, enforcer.current(a.account_id)) for a in accts[:max_accounts]]

    @router.get("")
    def overview(request: Request) -> Response:
        if (r := auth.check(request)) is not None:
            return r
        snap = enforcer.snapshot
        return _html(
            env,
            "board.html",
            snap=snap,
            campaigns=snap.campaigns[:100],
            accounts=ranked(snap),
            audit=enforcer.audit.recent(100),
            n_accounts=len(snap.accounts),
            n_flagged=sum(a.flagged for a in snap.accounts.values()),
            n_campaigns=sum(c.flagged for c in snap.campaigns),
            n_actions=sum(d.action != "allow" for d in enforcer.decisions().values()),
        )

    @router.get("/audit")
    def audit(request: Request) -> Response:
        if (r := auth.check(request)) is not None:
            return r
        path = enforcer.audit.path
        return _html(
            env,
            "board_audit.html",
            snap=enforcer.snapshot,
            audit=enforcer.audit.recent(1000),
            audit_path=str(path) if path else None,
        )

    @router.get("/campaign/{cid}")
    def campaign(request: Request, cid: int) -> Response:
        if (r := auth.check(request)) is not None:
            return r
        snap = enforcer.snapshot
        c = next((x for x in snap.campaigns if x.cluster_id == cid), None)
        ids = set(c.members) if c is not None else set()
        ms = [a for a in snap.accounts.values() if a.cluster_id == cid or a.account_id in ids]
        ms.sort(key=lambda a: (-a.risk, a.account_id))
        members = [(a, enforcer.current(a.account_id)) for a in ms]
        return _html(env, "board_campaign.html", snap=snap, cid=cid, c=c, members=members)

    @router.get("/account/{aid:path}/evidence.json")
    def evidence(request: Request, aid: str) -> Response:
        if (r := auth.check(request)) is not None:
            return r
        return JSONResponse(_evidence(enforcer, aid), headers=SECURITY_HEADERS)

    @router.post("/account/{aid:path}/action")
    async def set_action(request: Request, aid: str) -> Response:
        if not auth.ok(request):
            raise HTTPException(401, "admin token required")
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        action = (form.get("action") or [""])[0]
        why = (form.get("why") or [""])[0].strip()[:500]
        if action not in (*ACTIONS, "clear") or not why:
            raise HTTPException(400, "give an action and a reason (why)")
        enforcer.override(aid, action, who="board", why=why)
        return RedirectResponse(f"{ROOT}/account/{quote(aid, safe='')}", status_code=303)

    @router.get("/account/{aid:path}")
    def account(request: Request, aid: str) -> Response:
        if (r := auth.check(request)) is not None:
            return r
        snap = enforcer.snapshot
        entries = [e for e in enforcer.audit.recent(5000) if e.get("account_id") == aid]
        return _html(
            env,
            "board_account.html",
            snap=snap,
            aid=aid,
            a=snap.accounts.get(aid),
            d=enforcer.current(aid),
            rows=enforcer.scorer.recent_rows(aid, 20),
            audit=entries[:100],
            actions=ACTIONS,
        )

    return router


def _evidence(enforcer: LiveEnforcer, aid: str) -> dict[str, Any]:
    snap = enforcer.snapshot
    a = snap.accounts.get(aid)
    d = enforcer.current(aid)
    c = None
    if a is not None:
        c = next((x for x in snap.campaigns if x.cluster_id == a.cluster_id), None)
    out = {
        "account_id": aid,
        "decision": {"action": d.action, "rule": d.rule, "reason": d.reason},
        "scores": a.evidence() if a else None,
        "campaign": json.loads(json.dumps(c.to_dict(), default=str)) if c else None,
        "audit": [e for e in enforcer.audit.recent(5000) if e.get("account_id") == aid],
        "watermark": snap.watermark.isoformat() if snap.watermark else None,
        "snapshot": snap.seq,
    }
    return out
