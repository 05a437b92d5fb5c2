"""The contract between the gateway core and its policy / live-scoring plug-ins.

The gateway app authenticates a request to an :class:`AccountInfo`, asks an
:class:`Enforcer` for a :class:`Decision` before forwarding, and hands the enforcer
every traffic-schema row after that row is durable in the evidence log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

Action = Literal["allow", "flag", "throttle", "block", "degrade"]
ACTIONS: tuple[str, ...] = ("allow", "flag", "throttle", "block", "degrade")


@dataclass(frozen=True)
class AccountInfo:
    """What the account store returns for an authenticated key.

    ``key_id`` is the public prefix of the API key, never the secret.
    """

    account_id: str
    org_id: str | None
    created_at: datetime
    signup_path: str | None
    payment_fingerprint: str | None
    key_id: str


@dataclass(frozen=True)
class Decision:
    """What the enforcer says about one request.

    block -> 403; throttle -> 429 with Retry-After (``retry_after_s``); degrade -> the
    request is forwarded with ``max_tokens`` as an output cap and, with
    ``strip_reasoning``, reasoning traces removed from the answer; flag -> forwarded
    and recorded; allow -> forwarded.
    """

    action: Action = "allow"
    reason: str = ""
    rule: str | None = None
    max_tokens: int | None = None
    strip_reasoning: bool = False
    retry_after_s: float | None = None


@runtime_checkable
class Enforcer(Protocol):
    """A policy plug-in: ``decide`` before forwarding, ``observe`` after logging.

    ``decide`` is called on the gateway's event loop, so keep it fast (no I/O).
    ``observe`` is called from a worker thread after the row is durable (for non-streamed
    answers, after the answer is sent). The two may run at the same time, so shared state
    needs a lock. An exception from either is logged by type and ignored: the request is
    allowed, and the row says ``enforcer error (TypeName)``.
    """

    def decide(self, account: AccountInfo, request: dict, now: datetime) -> Decision: ...

    def observe(self, record: dict) -> None:
        """One traffic-schema row (dict keyed by schema column names), already durable."""
        ...
