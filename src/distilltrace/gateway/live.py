"""Live scoring: the traffic scan re-run over a sliding window, off the request path.

The gateway hands every durable traffic-schema row to :meth:`LiveEnforcer.observe`; a
:class:`LiveScorer` keeps the rows of the last ``window_s`` seconds (event time) and,
every ``interval_s`` seconds or ``every_n`` new rows, runs the same
:func:`distilltrace.traffic.scanner.scan` on the window ``[watermark - window_s,
watermark]`` (``watermark`` = the latest event timestamp seen), then publishes the
account and cluster scores as one immutable :class:`Snapshot`. The policy is applied to
the snapshot in the same background thread; :meth:`LiveEnforcer.decide` only reads a
dict (O(1)), so a scan never delays a request. The scan itself runs in a worker process
(``LiveConfig.isolate``): in a thread, its Python work held the GIL in stretches of 5-20
ms and the gateway's p99 latency rose by about 50 ms while scans ran.

Because the live scores *are* a scan of the window, they equal a batch
``distilltrace traffic scan`` of the same log cut at the same watermark (tested in
tests/gateway/test_live.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pyarrow as pa

from distilltrace.gateway.hooks import AccountInfo, Decision
from distilltrace.gateway.policy import AuditLog, Policy, default_policy
from distilltrace.traffic.scanner import ScanConfig, ScanResult, scan
from distilltrace.traffic.schema import OPTIONAL, REQUIRED

log = logging.getLogger("distilltrace.gateway.live")


@dataclass(frozen=True)
class LiveConfig:
    """Live scoring parameters (one place).

    ``window_s``: sliding window length (event time); ``interval_s``: rescan period;
    ``every_n``: rescan early after this many new rows; ``content``: run the semantic
    content model in live scans (slower; off by default); ``scan``: the scan's own
    parameters; ``threads``: DuckDB threads per scan; ``max_rows``: rows kept in memory
    (oldest dropped first, counted in ``dropped_rows``); ``isolate``: run each scan in a
    worker process (one per gateway process, started on the first scan), so that the
    scan's Python work never holds the serving process's GIL; in-thread when False.
    """

    window_s: float = 7 * 86400.0
    interval_s: float = 10.0
    every_n: int = 1000
    content: bool = False
    scan: ScanConfig = field(default_factory=lambda: ScanConfig(content=None))
    threads: int = 1
    max_rows: int = 2_000_000
    isolate: bool = True


@dataclass(frozen=True)
class AccountScore:
    """One account's live scores (columns of the scan's accounts table)."""

    account_id: str
    flagged: bool
    flag_reason: str
    risk: float
    risk_tail_p: float
    account_tail_p: float
    extraction_tail_p: float
    behaviour_tail_p: float
    cluster_id: int
    cluster_size: int
    campaign_flagged: bool
    n_requests: int

    def env(self) -> dict[str, Any]:
        """The policy variables of this account (see policy.VARIABLES)."""
        return {
            "flagged": self.flagged,
            "cluster_flagged": self.campaign_flagged,
            "campaign_flagged": self.campaign_flagged,
            "review": self.flag_reason == "review",
            "pvalue": self.risk_tail_p,
            "account_pvalue": self.account_tail_p,
            "extraction_pvalue": self.extraction_tail_p,
            "behaviour_pvalue": self.behaviour_tail_p,
            "risk": self.risk,
            "n_requests": self.n_requests,
            "cluster_size": self.cluster_size,
        }

    def evidence(self) -> dict[str, Any]:
        return {
            "flag_reason": self.flag_reason,
            "risk": round(self.risk, 4),
            "risk_tail_p": self.risk_tail_p,
            "account_tail_p": self.account_tail_p,
            "extraction_tail_p": self.extraction_tail_p,
            "behaviour_tail_p": self.behaviour_tail_p,
            "cluster_id": self.cluster_id,
            "cluster_size": self.cluster_size,
            "n_requests": self.n_requests,
        }


def _cluster_env(members: list[AccountScore]) -> dict[str, Any]:
    """A cluster's policy variables: any member flagged, the smallest p-value, sums."""
    p = min(m.risk_tail_p for m in members)
    return {
        "flagged": any(m.flagged for m in members),
        "cluster_flagged": any(m.campaign_flagged for m in members),
        "campaign_flagged": any(m.campaign_flagged for m in members),
        "review": any(m.flag_reason == "review" for m in members),
        "pvalue": p,
        "account_pvalue": min(m.account_tail_p for m in members),
        "extraction_pvalue": min(m.extraction_tail_p for m in members),
        "behaviour_pvalue": min(m.behaviour_tail_p for m in members),
        "risk": max(m.risk for m in members),
        "n_requests": sum(m.n_requests for m in members),
        "cluster_size": len(members),
    }


@dataclass(frozen=True)
class Snapshot:
    """Published live scores: the scan of ``[window_start, watermark]``."""

    seq: int
    watermark: datetime | None
    window_start: datetime | None
    computed_at: datetime
    n_rows: int
    accounts: Mapping[str, AccountScore]
    result: ScanResult | None
    scan_seconds: float = 0.0

    @property
    def campaigns(self) -> list:
        return [] if self.result is None else self.result.campaigns

    def clusters(self) -> dict[int, list[AccountScore]]:
        out: dict[int, list[AccountScore]] = {}
        for a in self.accounts.values():
            out.setdefault(a.cluster_id, []).append(a)
        return out


def _empty_snapshot() -> Snapshot:
    return Snapshot(0, None, None, datetime.now(UTC), 0, {}, None)


def _scores(accounts: pd.DataFrame) -> dict[str, AccountScore]:
    out = {}
    for r in accounts.itertuples(index=False):
        out[str(r.account_id)] = AccountScore(
            account_id=str(r.account_id),
            flagged=bool(r.flagged),
            flag_reason=str(r.flag_reason or ""),
            risk=float(r.risk),
            risk_tail_p=float(r.risk_tail_p),
            account_tail_p=float(getattr(r, "account_tail_p", r.risk_tail_p)),
            extraction_tail_p=float(getattr(r, "extraction_tail_p", 1.0)),
            behaviour_tail_p=float(getattr(r, "behaviour_tail_p", 1.0)),
            cluster_id=int(r.cluster_id),
            cluster_size=int(getattr(r, "cluster_size", 1)),
            campaign_flagged=bool(r.campaign_flagged),
            n_requests=int(getattr(r, "n_requests", 0)),
        )
    return out


def parse_time(value: Any) -> datetime | None:
    """A record's timestamp as an aware UTC datetime (None when unparseable)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        t = pd.Timestamp(value.strip())
    except (ValueError, TypeError):
        return None
    if t is pd.NaT:
        return None
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.to_pydatetime()


def _jsonable(record: Mapping[str, Any]) -> dict[str, Any]:
    """A row as the evidence log writes it: datetimes as ISO 8601 text. None values are
    kept: a column that is present but empty is not the same input as a missing one."""
    out = {}
    for k, v in record.items():
        if isinstance(v, datetime):
            v = (v if v.tzinfo else v.replace(tzinfo=UTC)).isoformat()
        out[str(k)] = v
    return out


def rows_table(rows: list[dict[str, Any]]) -> pa.Table:
    """The scan input for a list of rows; a column holding mixed types is passed as text
    (the scan then validates it exactly as it validates a JSON Lines file), and a required
    column that no row has is added empty (its rows are quarantined, not a scan error)."""
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
        table = _text_mixed(rows)
    for col in REQUIRED:
        if col not in table.column_names:
            table = table.append_column(col, pa.nulls(table.num_rows, pa.string()))
    for i, f in enumerate(table.schema):  # a column of only nulls gets its schema type
        if pa.types.is_null(f.type):
            kind = {**REQUIRED, **OPTIONAL}.get(f.name, "string")
            table = table.set_column(i, f.name, pa.nulls(table.num_rows, _NULL_TYPES[kind]))
    return table


_NULL_TYPES = {"string": pa.string(), "int": pa.int64(), "float": pa.float64()}
_NULL_TYPES.update(timestamp=pa.string(), bool=pa.bool_())


def _text_mixed(rows: list[dict[str, Any]]) -> pa.Table:
    kinds: dict[str, set[type]] = {}
    for r in rows:
        for k, v in r.items():
            kinds.setdefault(k, set()).add(type(v))
    mixed = {k for k, t in kinds.items() if len(t - {type(None)}) > 1}
    fixed = [{k: (str(v) if k in mixed else v) for k, v in r.items()} for r in rows]
    return pa.Table.from_pylist(fixed)


class LiveScorer:
    """Keeps the window's rows and publishes a :class:`Snapshot` after each rescan.

    ``add`` is cheap (an append under a lock); scans run in :meth:`start`'s background
    thread or on demand with :meth:`score_now`. ``listeners`` are called with each new
    snapshot, in the scoring thread.
    """

    def __init__(self, config: LiveConfig | None = None) -> None:
        self.config = config or LiveConfig()
        self._rows: deque[tuple[datetime, dict[str, Any]]] = deque()
        self._lock = threading.Lock()
        self._scan_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._new = 0
        self._watermark: datetime | None = None
        self.snapshot: Snapshot = _empty_snapshot()
        self.listeners: list[Callable[[Snapshot], None]] = []
        self.stats = {"rows_seen": 0, "unplaced_rows": 0, "dropped_rows": 0, "scans": 0}
        self.stats["scan_errors"] = 0
        self.last_error: str | None = None

    def add(self, record: Mapping[str, Any]) -> None:
        """Keep one traffic-schema row (rows without a parseable timestamp cannot be
        placed in a window: counted in ``stats['unplaced_rows']``, not scored)."""
        ts = parse_time(record.get("timestamp"))
        with self._lock:
            self.stats["rows_seen"] += 1
            if ts is None:
                self.stats["unplaced_rows"] += 1
                return
            self._rows.append((ts, _jsonable(record)))
            if self._watermark is None or ts > self._watermark:
                self._watermark = ts
            while len(self._rows) > self.config.max_rows:
                self._rows.popleft()
                self.stats["dropped_rows"] += 1
            self._new += 1
            if self._new >= self.config.every_n:
                self._wake.set()

    @property
    def watermark(self) -> datetime | None:
        return self._watermark

    def window_rows(self, watermark: datetime) -> list[dict[str, Any]]:
        """Rows with ``watermark - window_s <= timestamp <= watermark``, in arrival order."""
        start = watermark - timedelta(seconds=self.config.window_s)
        with self._lock:
            # event time can arrive out of order: prune only well behind the window
            cut = start - timedelta(seconds=self.config.window_s)
            while self._rows and self._rows[0][0] < cut:
                self._rows.popleft()
            return [r for t, r in self._rows if start <= t <= watermark]

    def recent_rows(self, account_id: str, n: int = 20) -> list[dict[str, Any]]:
        """The account's latest ``n`` kept rows, newest first (for the board)."""
        out = []
        with self._lock:
            for _, r in reversed(self._rows):
                if r.get("account_id") == account_id:
                    out.append(r)
                    if len(out) >= n:
                        break
        return out

    def score_now(self, watermark: datetime | None = None) -> Snapshot:
        """Scan the window ending at ``watermark`` (default: the latest event time seen)
        and publish the result."""
        with self._scan_lock:
            with self._lock:
                self._new = 0
                wm = watermark or self._watermark
            if wm is None:
                return self.snapshot
            rows = self.window_rows(wm)
            t0 = time.perf_counter()
            table = rows_table(rows) if rows else _empty_table()
            args = (self.config.scan, self.config.content, self.config.threads)
            if self.config.isolate:
                result, accounts = _in_worker(_to_ipc(table), *args)
            else:
                result, accounts = _scan_scores(table, *args)
            snap = Snapshot(
                seq=self.snapshot.seq + 1,
                watermark=wm,
                window_start=wm - timedelta(seconds=self.config.window_s),
                computed_at=datetime.now(UTC),
                n_rows=len(rows),
                accounts=accounts,
                result=result,
                scan_seconds=round(time.perf_counter() - t0, 3),
            )
            for fn in list(self.listeners):  # decisions first, so that a published
                fn(snap)  # snapshot always has its policy applied
            self.snapshot = snap  # one reference swap: readers see old or new, whole
            self.stats["scans"] += 1
            return snap

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.config.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            if self._new == 0:
                continue
            try:
                self.score_now()
            except Exception as e:  # keep serving on the last good snapshot
                self.stats["scan_errors"] += 1
                self.last_error = f"{e.__class__.__name__}: {e}"[:500]
                log.error("live scan failed (keeping the previous scores): %s", self.last_error)

    def start(self) -> LiveScorer:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="dt-live", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def _empty_table() -> pa.Table:
    return pa.table(
        {
            "request_id": pa.array([], pa.string()),
            "timestamp": pa.array([], pa.string()),
            "account_id": pa.array([], pa.string()),
            "prompt": pa.array([], pa.string()),
        }
    )


def _scan_scores(table: pa.Table, cfg: ScanConfig, content: bool, threads: int) -> tuple:
    """One live scan: the result (without request-level flags, which live scoring does
    not keep) and the published per-account scores."""
    result = scan(table, config=cfg, content=content, threads=threads)
    result.requests = None
    return result, _scores(result.accounts)


def _to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _scan_ipc(data: bytes, cfg: ScanConfig, content: bool, threads: int) -> tuple:
    """The worker side: an Arrow IPC stream in, ``_scan_scores`` out."""
    return _scan_scores(pa.ipc.open_stream(data).read_all(), cfg, content, threads)


_worker: Any = None  # this process's scan worker (scanworker.ScanWorker), made on first use
_worker_lock = threading.Lock()


def _in_worker(*args: Any) -> tuple:
    """``_scan_ipc(*args)`` in this process's scan worker (a separate Python process)."""
    global _worker
    with _worker_lock:
        if _worker is None:
            import atexit

            from distilltrace.gateway.scanworker import ScanWorker

            _worker = ScanWorker()
            atexit.register(_worker.close)
    return _worker.call(*args)


@dataclass(frozen=True)
class _Override:
    decision: Decision
    who: str


class LiveEnforcer:
    """The gateway :class:`~distilltrace.gateway.hooks.Enforcer` of live scores + policy.

    After each snapshot the policy is applied to every scored account (cluster rules to
    whole clusters); changed actions are written to the audit trail; ``decide`` looks the
    account up in the published decisions. Admin overrides (:meth:`override`) win over
    rules and are audited with ``who = "admin:NAME"``. ``metrics`` (a
    :class:`~distilltrace.gateway.metrics.GatewayMetrics`, made when not given) counts
    every observed row.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        config: LiveConfig | None = None,
        audit: AuditLog | None = None,
        metrics: Any = None,
        start: bool = True,
    ) -> None:
        self.policy = policy or default_policy()
        self.scorer = LiveScorer(config)
        self.audit = audit or AuditLog()
        from distilltrace.gateway.metrics import GatewayMetrics

        self.metrics = metrics or GatewayMetrics(snapshot_source=self.scorer)
        self._decisions: dict[str, Decision] = {}
        self._evidence: dict[str, dict] = {}
        self._overrides: dict[str, _Override] = {}
        self._throttle: dict[str, deque[float]] = {}
        self._default = Decision(action=self.policy.default, reason="default")  # type: ignore[arg-type]
        self.scorer.listeners.append(self.apply_snapshot)
        if start:
            self.scorer.start()

    # -- the Enforcer protocol -------------------------------------------------------
    def decide(self, account: AccountInfo, request: dict, now: datetime) -> Decision:
        aid = account.account_id
        ov = self._overrides.get(aid)
        d = ov.decision if ov is not None else self._decisions.get(aid, self._default)
        if d.action == "throttle":
            d = self._rate(aid, d, now)
        return d

    def observe(self, record: dict) -> None:
        self.scorer.add(record)
        self.metrics.observe_record(record)

    def backfill(self, rows: Any) -> int:
        """Rows logged before this process started (e.g. read from the evidence log's
        Parquet files): scored like observed rows, not counted in the metrics."""
        n = 0
        for r in rows:
            self.scorer.add(r)
            n += 1
        return n

    # -- policy application (scoring thread) -----------------------------------------
    def apply_snapshot(self, snap: Snapshot) -> None:
        new: dict[str, Decision] = {}
        evidence: dict[str, dict] = {}
        for members in snap.clusters().values():
            cenv = _cluster_env(members)
            for a in members:
                d = self.policy.decide(a.env(), cenv)
                if d.action != self.policy.default or d.rule is not None:
                    new[a.account_id] = d
                    evidence[a.account_id] = a.evidence()
        self._audit_changes(snap, new, evidence)
        self._decisions = new  # one reference swap
        self._evidence = evidence

    def _audit_changes(self, snap: Snapshot, new: dict, evidence: dict) -> None:
        wm = snap.watermark.isoformat() if snap.watermark else None
        for aid in sorted(set(new) | set(self._decisions)):
            old = self._decisions.get(aid, self._default)
            d = new.get(aid, self._default)
            if (old.action, old.rule) == (d.action, d.rule):
                continue
            rule = self.policy.rule(d.rule)
            ev = evidence.get(aid) or {"note": "no longer scored in the window"}
            self.audit.write(
                {
                    "who": f"rule:{d.rule}" if d.rule else "policy:default",
                    "scope": rule.scope if rule else "account",
                    "account_id": aid,
                    "cluster_id": ev.get("cluster_id"),
                    "action": d.action,
                    "previous": old.action,
                    "why": d.reason,
                    "evidence": ev,
                    "watermark": wm,
                    "snapshot": snap.seq,
                }
            )

    def _rate(self, aid: str, d: Decision, now: datetime) -> Decision:
        """A throttled account may send ``rate_per_min`` requests a minute (then 429)."""
        rule = self.policy.rule(d.rule)
        rate = rule.rate_per_min if rule is not None else None
        if not rate:
            return d
        t = now.timestamp()
        q = self._throttle.setdefault(aid, deque())
        while q and q[0] <= t - 60.0:
            q.popleft()
        if len(q) < rate:
            q.append(t)
            return Decision(action="flag", reason=f"throttled, within {rate:g}/min", rule=d.rule)
        retry = max(0.0, q[0] + 60.0 - t)
        return Decision(
            action="throttle", reason=d.reason, rule=d.rule, retry_after_s=d.retry_after_s or retry
        )

    # -- admin --------------------------------------------------------------------
    def override(self, account_id: str, action: str, *, who: str, why: str) -> dict:
        """Set (or with ``action="clear"`` remove) an admin decision for one account."""
        from distilltrace.gateway.hooks import ACTIONS
        from distilltrace.gateway.policy import PolicyError

        if action not in (*ACTIONS, "clear"):
            raise PolicyError(
                f"action must be one of {', '.join(ACTIONS)} or clear, got {action!r}"
            )
        old = self.current(account_id)
        ev = self._evidence.get(account_id) or {}
        if action == "clear":
            self._overrides.pop(account_id, None)
        else:
            d = Decision(action=action, reason=why, rule=f"admin:{who}")  # type: ignore[arg-type]
            self._overrides[account_id] = _Override(d, who)
        return self.audit.write(
            {
                "who": f"admin:{who}",
                "scope": "account",
                "account_id": account_id,
                "cluster_id": ev.get("cluster_id"),
                "action": self.current(account_id).action,
                "previous": old.action,
                "why": why,
                "evidence": ev,
                "watermark": None,
            }
        )

    def current(self, account_id: str) -> Decision:
        """The account's standing decision (override, rule or default), without rates."""
        ov = self._overrides.get(account_id)
        return ov.decision if ov is not None else self._decisions.get(account_id, self._default)

    def decisions(self) -> dict[str, Decision]:
        out = dict(self._decisions)
        out.update({k: v.decision for k, v in self._overrides.items()})
        return out

    @property
    def snapshot(self) -> Snapshot:
        return self.scorer.snapshot

    def close(self) -> None:
        self.scorer.stop()
