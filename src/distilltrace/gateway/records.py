"""Building one traffic-schema row from a gateway exchange, and reading answers.

The row's columns are the traffic schema's (``distilltrace.traffic.schema``) plus the
gateway's own (``evidence_log.GATEWAY_COLUMNS``), which ``traffic scan`` keeps and ignores.
Nothing secret goes in: the API key appears only as its public ``key_id``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from distilltrace.gateway.hooks import AccountInfo, Decision

_THINK = re.compile(r"<think>.*?</think>\s*", re.S)
REASONING_FIELDS = ("reasoning_content", "reasoning")
#: traffic-schema ``status`` of each enforcer action that stops a request here
STATUS_OF_ACTION = {"block": "refused", "throttle": "rate_limited"}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return ""


def prompt_of(body: dict[str, Any], endpoint: str) -> tuple[str, str | None]:
    """(prompt, system prompt): for chat the last user turn and the system turns joined;
    for completions the prompt (a list of prompts joined by newlines)."""
    if endpoint == "chat":
        msgs = body.get("messages")
        msgs = [m for m in msgs if isinstance(m, dict)] if isinstance(msgs, list) else []
        users = [_text(m.get("content")) for m in msgs if m.get("role") == "user"]
        system = [_text(m.get("content")) for m in msgs if m.get("role") in ("system", "developer")]
        return (users[-1] if users else ""), ("\n".join(system) if system else None)
    p = body.get("prompt")
    if isinstance(p, list):
        return "\n".join(x for x in p if isinstance(x, str)), None
    return (p if isinstance(p, str) else ""), None


def context_messages(body: dict[str, Any], endpoint: str) -> int:
    """The chat request's turns that its log row cannot hold. The row keeps the last user
    turn (`prompt`) and the system turns' text joined (`system_prompt`), so only
    [user] and [system, user] can be sent again as they were; every other turn counts:
    earlier user and assistant turns, tool results, and system turns beyond one leading
    system turn. Custody's membership claim leaves such an answer out (it cannot be drawn
    again from the log). 0 for a completion request."""
    msgs = body.get("messages") if endpoint == "chat" else None
    msgs = [m for m in msgs if isinstance(m, dict)] if isinstance(msgs, list) else []
    system = [m.get("role") in ("system", "developer") for m in msgs]
    other = system.count(False)
    users = any(m.get("role") == "user" for m in msgs)
    leading = 1 if msgs and system[0] else 0
    return (other - 1 if users else other) + system.count(True) - leading


def _num(v: Any, kind: type) -> Any:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    if kind is int:
        return v if isinstance(v, int) else None
    return float(v)


def base_record(
    *,
    request_id: str,
    now: datetime,
    account: AccountInfo,
    body: dict[str, Any],
    endpoint: str,
    client: dict[str, str | None],
    gateway_id: str,
) -> dict[str, Any]:
    """The row of one request before the answer is known."""
    prompt, system = prompt_of(body, endpoint)
    cap = body.get("max_completion_tokens", body.get("max_tokens"))
    return {
        "request_id": request_id,
        "timestamp": now,
        "account_id": account.account_id,
        "prompt": prompt,
        "org_id": account.org_id,
        "api_key_id": account.key_id,
        "account_created_at": account.created_at,
        "signup_path": account.signup_path,
        "payment_fingerprint": account.payment_fingerprint,
        "client_ip": client.get("ip"),
        "user_agent": client.get("user_agent"),
        "tls_fingerprint": client.get("tls_fingerprint"),
        "model": body.get("model") if isinstance(body.get("model"), str) else None,
        "system_prompt": system,
        "context_messages": context_messages(body, endpoint),
        "temperature": _num(body.get("temperature"), float),
        "max_tokens": _num(cap, int),
        "endpoint": endpoint,
        "stream": body.get("stream") is True,
        "gateway_id": gateway_id,
    }


def add_decision(rec: dict[str, Any], d: Decision) -> None:
    rec["policy_action"] = d.action
    rec["policy_reason"] = d.reason or None
    rec["policy_rule"] = d.rule


def answer_of(data: Any, endpoint: str) -> dict[str, Any]:
    """Columns read from a non-streamed answer: response text, token counts, mark key id."""
    if not isinstance(data, dict):
        return {}
    choices = data.get("choices") if isinstance(data.get("choices"), list) else []
    texts = []
    for c in choices:
        if not isinstance(c, dict):
            continue
        if endpoint == "chat":
            msg = c.get("message") if isinstance(c.get("message"), dict) else {}
            texts.append(_text(msg.get("content")))
        elif isinstance(c.get("text"), str):
            texts.append(c["text"])
    out: dict[str, Any] = {"response": "\n".join(texts)}
    out.update(usage_of(data.get("usage")))
    wm = data.get("watermark")
    if isinstance(wm, dict) and isinstance(wm.get("key_id"), str):
        out["watermark_key_id"] = wm["key_id"]
    return out


def usage_of(usage: Any) -> dict[str, Any]:
    if not isinstance(usage, dict):
        return {}
    out = {
        "input_tokens": _num(usage.get("prompt_tokens"), int),
        "output_tokens": _num(usage.get("completion_tokens"), int),
    }
    details = usage.get("completion_tokens_details")
    if isinstance(details, dict):
        out["reasoning_tokens"] = _num(details.get("reasoning_tokens"), int)
    return {k: v for k, v in out.items() if v is not None}


def strip_reasoning(data: Any) -> Any:
    """Remove reasoning traces from an answer (or a stream chunk): reasoning fields and
    ``<think>...</think>`` blocks in text (whole blocks only, for non-streamed answers)."""
    if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
        return data
    for c in data["choices"]:
        if not isinstance(c, dict):
            continue
        for part in (c.get("message"), c.get("delta")):
            if isinstance(part, dict):
                for f in REASONING_FIELDS:
                    part.pop(f, None)
                if isinstance(part.get("content"), str) and "message" in c:
                    part["content"] = _THINK.sub("", part["content"])
        if isinstance(c.get("text"), str) and "delta" not in c:
            c["text"] = _THINK.sub("", c["text"])
    return data


def apply_caps(body: dict[str, Any], d: Decision, endpoint: str) -> dict[str, Any]:
    """The request with a degrade decision's output-token cap applied."""
    if d.max_tokens is None:
        return body
    cap = max(0, int(d.max_tokens))
    body = dict(body)
    keys = ["max_tokens"] + (["max_completion_tokens"] if endpoint == "chat" else [])
    present = [k for k in keys if k in body]
    for k in present or ["max_tokens"]:
        v = body.get(k)
        ok = isinstance(v, int) and not isinstance(v, bool)
        body[k] = min(v, cap) if ok else cap
    return body


class SSEAccumulator:
    """Passes SSE bytes through event by event, collecting the answer; holds back
    ``data: [DONE]`` (sent only after the record is durable)."""

    def __init__(self, endpoint: str, strip: bool):
        self.endpoint, self.strip = endpoint, strip
        self.buf = b""
        self.parts: dict[int, list[str]] = {}
        self.usage: dict[str, Any] = {}
        self.key_id: str | None = None
        self.done = False
        self.error: str | None = None

    def feed(self, chunk: bytes) -> bytes:
        self.buf += chunk.replace(b"\r\n", b"\n")
        out = []
        while b"\n\n" in self.buf:
            event, self.buf = self.buf.split(b"\n\n", 1)
            out.append(self._event(event))
        return b"".join(out)

    def flush(self) -> bytes:
        rest, self.buf = self.buf, b""
        return self._event(rest) if rest.strip() else b""

    def _event(self, event: bytes) -> bytes:
        lines = event.split(b"\n")
        data = b"\n".join(ln[5:].lstrip(b" ") for ln in lines if ln.startswith(b"data:"))
        if data.strip() == b"[DONE]":
            self.done = True
            return b""
        try:
            obj = json.loads(data) if data else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            obj = None
        if isinstance(obj, dict):
            self._collect(obj)
            if self.strip:
                return b"data: " + json.dumps(strip_reasoning(obj)).encode() + b"\n\n"
        return event + b"\n\n"

    def _collect(self, obj: dict[str, Any]) -> None:
        if isinstance(obj.get("error"), dict):
            self.error = str(obj["error"].get("message", "error"))[:200]
        wm = obj.get("watermark")
        if isinstance(wm, dict) and isinstance(wm.get("key_id"), str):
            self.key_id = wm["key_id"]
        self.usage.update(usage_of(obj.get("usage")))
        for c in obj.get("choices") or []:
            if not isinstance(c, dict):
                continue
            i = c.get("index", 0) if isinstance(c.get("index"), int) else 0
            if self.endpoint == "chat":
                delta = c.get("delta") if isinstance(c.get("delta"), dict) else {}
                piece = _text(delta.get("content"))
            else:
                piece = c.get("text") if isinstance(c.get("text"), str) else ""
            if piece:
                self.parts.setdefault(i, []).append(piece)

    def response_text(self) -> str:
        return "\n".join("".join(self.parts[i]) for i in sorted(self.parts))


def extra_json(values: dict[str, Any]) -> str:
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))
