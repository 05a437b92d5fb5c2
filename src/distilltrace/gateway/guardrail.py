"""LiteLLM's Generic Guardrail API: a LiteLLM proxy calls distilltrace as a guardrail.

``POST /beta/litellm_basic_guardrail_api`` (LiteLLM config: ``guardrail:
generic_guardrail_api``, ``api_base: http://HOST:PORT``, ``mode: [pre_call, post_call]``,
``headers: {Authorization: "Bearer TOKEN"}``).

Fields read from the request (all others are accepted and ignored):

- ``texts`` (list of strings, required): the request's texts; the last one is logged as
  the ``prompt`` (for chat, LiteLLM sends the messages' texts in order);
- ``input_type``: ``"request"`` (pre-call: decide, log the row, score it) or
  ``"response"`` (post-call: only a degraded account's answer is changed);
- ``request_data``: ``user_api_key_user_id`` (else ``user_api_key_alias``, else
  ``user_api_key_end_user_id``, else the key hash) is the ``account_id``;
  ``user_api_key_org_id`` (else ``user_api_key_team_id``) the ``org_id``; the first 16
  characters of ``user_api_key_hash`` the ``api_key_id`` (a hash, never the key);
- ``litellm_call_id``: the ``request_id`` (a new id when absent);
- ``additional_provider_specific_params.model``: the ``model`` column, when given.

Answers (``action``): ``BLOCKED`` with ``blocked_reason`` when the policy blocks or
throttles the account (LiteLLM raises and the request is refused); ``NONE`` for allow and
flag; ``GUARDRAIL_INTERVENED`` with ``texts`` on a response of a degraded account whose
answer was changed (``<think>`` blocks removed with ``strip_reasoning``, cut to
``max_tokens`` whitespace-separated words: LiteLLM passes texts, not tokens).
"""

from __future__ import annotations

import hmac
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse

from distilltrace.gateway.hooks import AccountInfo, Decision, Enforcer

PATH = "/beta/litellm_basic_guardrail_api"
_THINK = re.compile(r"<think>.*?</think>\s*", re.S)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class GuardrailInputError(ValueError):
    """A request body that is not the Generic Guardrail API's shape."""


def _str(d: dict, *keys: str) -> str | None:
    for k in keys:
        v = d.get(k)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return None


def parse(body: Any) -> tuple[list[str], str, dict, str | None, dict]:
    """(texts, input_type, request_data, call id, extra params), or GuardrailInputError."""
    if not isinstance(body, dict):
        raise GuardrailInputError("body must be a JSON object")
    texts = body.get("texts", [])
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise GuardrailInputError("'texts' must be a list of strings")
    input_type = body.get("input_type", "request")
    if input_type not in ("request", "response"):
        raise GuardrailInputError("'input_type' must be 'request' or 'response'")
    rd = body.get("request_data") or {}
    extra = body.get("additional_provider_specific_params") or {}
    if not isinstance(rd, dict) or not isinstance(extra, dict):
        raise GuardrailInputError("'request_data' and provider params must be objects")
    call_id = body.get("litellm_call_id")
    return texts, input_type, rd, call_id if isinstance(call_id, str) else None, extra


def account_of(rd: dict, accounts: Any = None) -> AccountInfo:
    """The account a LiteLLM virtual key belongs to (the gateway's store when it knows it)."""
    key_hash = _str(rd, "user_api_key_hash")
    aid = _str(rd, "user_api_key_user_id", "user_api_key_alias", "user_api_key_end_user_id")
    if aid is None and key_hash is not None:
        aid = "key:" + key_hash[:16]
    if aid is None:
        raise GuardrailInputError("request_data carries no user_api_key_* identity")
    known = _known(accounts, aid)
    if known is not None:
        return known
    return AccountInfo(
        account_id=aid,
        org_id=_str(rd, "user_api_key_org_id", "user_api_key_team_id"),
        created_at=_EPOCH,  # unknown: not written to the row
        signup_path=None,
        payment_fingerprint=None,
        key_id=(key_hash or "")[:16],
    )


def _known(accounts: Any, aid: str) -> AccountInfo | None:
    get = getattr(accounts, "get", None)
    if get is None:
        return None
    try:
        a = get(aid)
    except Exception:  # noqa: BLE001 - an unknown account is not an error here
        return None
    return a if isinstance(a, AccountInfo) else None


def row_of(account: AccountInfo, texts: list[str], call_id, extra, now, d: Decision) -> dict:
    """The traffic-schema row of a guarded request."""
    rec: dict[str, Any] = {
        "request_id": call_id or f"gr-{uuid.uuid4().hex}",
        "timestamp": now,
        "account_id": account.account_id,
        "prompt": texts[-1] if texts else "",
        "org_id": account.org_id,
        "api_key_id": account.key_id or None,
        "model": extra.get("model") if isinstance(extra.get("model"), str) else None,
        "endpoint": "guardrail",
        "policy_action": d.action,
        "policy_reason": d.reason or None,
        "policy_rule": d.rule,
        "status": {"block": "refused", "throttle": "rate_limited"}.get(d.action, "ok"),
    }
    if account.created_at != _EPOCH:
        rec.update(
            account_created_at=account.created_at,
            signup_path=account.signup_path,
            payment_fingerprint=account.payment_fingerprint,
        )
    return rec


def degrade_texts(texts: list[str], d: Decision) -> list[str]:
    out = []
    for t in texts:
        if d.strip_reasoning:
            t = _THINK.sub("", t)
        if d.max_tokens is not None:
            words = t.split()
            if len(words) > d.max_tokens:
                t = " ".join(words[: d.max_tokens])
        out.append(t)
    return out


def answer(d: Decision, texts: list[str], input_type: str) -> dict:
    """The Generic Guardrail API response for a decision."""
    if d.action == "block":
        return {"action": "BLOCKED", "blocked_reason": d.reason or "blocked by policy"}
    if d.action == "throttle":
        retry = f"; retry after {d.retry_after_s:.0f} s" if d.retry_after_s else ""
        return {"action": "BLOCKED", "blocked_reason": f"rate limited by policy{retry}"}
    if d.action == "degrade" and input_type == "response":
        new = degrade_texts(texts, d)
        if new != texts:
            return {"action": "GUARDRAIL_INTERVENED", "texts": new}
    return {"action": "NONE"}


def guardrail_router(enforcer: Enforcer, *, token: str | None) -> APIRouter:
    """The guardrail endpoint. ``token``: the bearer token LiteLLM must send (None: the
    endpoint answers 404, it is off). Pre-call rows go to ``app.state.log`` (when the app
    has an evidence log) and then to ``enforcer.observe``, like the gateway's own rows."""
    router = APIRouter()

    @router.post(PATH)
    async def guard(request: Request) -> JSONResponse:
        if token is None:
            raise HTTPException(404, "guardrail API is off (no token configured)")
        h = request.headers.get("authorization", "")
        given = h[7:].strip() if h.lower().startswith("bearer ") else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "invalid guardrail token")
        try:
            body = await request.json()
        except ValueError:
            body = None
        try:
            texts, input_type, rd, call_id, extra = parse(body)
            account = account_of(rd, getattr(request.app.state, "accounts", None))
        except GuardrailInputError as e:
            raise HTTPException(400, str(e)) from None
        now = datetime.now(UTC)
        d = enforcer.decide(account, {"texts": texts}, now)
        if input_type == "request":
            rec = row_of(account, texts, call_id, extra, now, d)
            evlog = getattr(request.app.state, "log", None)
            if evlog is not None:
                try:
                    await evlog.write(rec)
                except Exception:  # noqa: BLE001 - not durable: do not let it through
                    return JSONResponse(
                        {"action": "BLOCKED", "blocked_reason": "evidence log unavailable"}
                    )
            enforcer.observe(rec)
        return JSONResponse(answer(d, texts, input_type))

    return router
