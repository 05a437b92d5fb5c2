"""The account store: accounts and their API keys, in SQLite or any SQLAlchemy database.

An API key looks like ``dtk_<key_id>_<secret>``: ``key_id`` (12 hex digits) is public and
is what logs, reports and the board show; ``secret`` is 32 random bytes (URL-safe base64)
and is shown once, when the key is made. The store keeps, per key, a random salt and
HMAC-SHA256(salt, whole key); a lookup finds the row by ``key_id`` and compares digests with
``hmac.compare_digest`` (constant time). Several gateway replicas may share one database
(e.g. ``postgresql+psycopg://...``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import sqlalchemy as sa

from distilltrace.errors import InputError
from distilltrace.gateway.hooks import AccountInfo

KEY_PREFIX = "dtk_"
_KEY_RE = re.compile(r"^dtk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$")

_meta = sa.MetaData()
accounts_t = sa.Table(
    "dt_accounts",
    _meta,
    sa.Column("account_id", sa.String(128), primary_key=True),
    sa.Column("org_id", sa.String(128), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("signup_path", sa.String(64), nullable=True),
    sa.Column("payment_fingerprint", sa.String(256), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)
keys_t = sa.Table(
    "dt_api_keys",
    _meta,
    sa.Column("key_id", sa.String(12), primary_key=True),
    sa.Column("account_id", sa.String(128), sa.ForeignKey("dt_accounts.account_id"), index=True),
    sa.Column("salt", sa.LargeBinary(16), nullable=False),
    sa.Column("digest", sa.LargeBinary(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)


#: The per-request lookup, built once (a bound key id): building and cache-keying a fresh
#: select on every request cost about half of ``authenticate``.
_AUTH_Q = (
    sa.select(keys_t.c.salt, keys_t.c.digest, keys_t.c.revoked_at.label("key_revoked"), accounts_t)
    .join(accounts_t, accounts_t.c.account_id == keys_t.c.account_id)
    .where(keys_t.c.key_id == sa.bindparam("key_id"))
)


def _digest(salt: bytes, key: str) -> bytes:
    return hmac.new(salt, key.encode(), hashlib.sha256).digest()


def _utc(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


@dataclass(frozen=True)
class AccountRow:
    """One account as ``accounts list`` shows it (key ids only, never secrets)."""

    account_id: str
    org_id: str | None
    created_at: datetime
    signup_path: str | None
    payment_fingerprint: str | None
    revoked: bool
    key_ids: tuple[str, ...]


@dataclass(frozen=True)
class NewKey:
    """A freshly issued key: ``key`` is the only copy of the secret; show it once."""

    account_id: str
    key_id: str
    key: str

    def __repr__(self) -> str:  # never print the secret by accident
        return f"NewKey(account_id={self.account_id!r}, key_id={self.key_id!r}, key=<hidden>)"


class AccountStore:
    """Accounts and hashed API keys in a SQL database (``sqlite:///path`` by default)."""

    def __init__(self, url: str):
        try:
            self.engine = sa.create_engine(url, future=True, **_engine_options(url))
            if url.startswith("sqlite"):
                sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            _create_tables(self.engine)
        except (sa.exc.SQLAlchemyError, ImportError) as e:
            raise InputError(
                f"account store {_safe_url(url)}: cannot open it: {_reason(e, url)}"
            ) from None
        # A SQLite file in WAL mode: a read never waits for a writer and costs ~0.1 ms, so
        # the gateway looks keys up on its event loop instead of paying a thread hop (a
        # server database is always looked up in a worker thread).
        self.inline_reads = url.startswith("sqlite:///") and ":memory:" not in url
        self._rows = _RowCache(self.engine.url.database) if self.inline_reads else None
        # a dummy row, so that an unknown key id costs the same as a wrong secret
        self._dummy = (secrets.token_bytes(16), secrets.token_bytes(32))

    @contextmanager
    def _tx(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as conn:
            yield conn

    def add_account(
        self,
        account_id: str,
        *,
        org_id: str | None = None,
        signup_path: str | None = None,
        payment_fingerprint: str | None = None,
        created_at: datetime | None = None,
    ) -> NewKey:
        """Create ``account_id`` if new (else keep its details) and issue a new API key."""
        if not _ID_RE.match(account_id or ""):
            raise InputError(
                f"account id {account_id!r}: use 1-128 letters, digits or ._@:- characters"
            )
        now = datetime.now(UTC)
        with self._tx() as c:
            row = c.execute(
                sa.select(accounts_t.c.revoked_at).where(accounts_t.c.account_id == account_id)
            ).first()
            if row is None:
                c.execute(
                    accounts_t.insert().values(
                        account_id=account_id,
                        org_id=org_id,
                        created_at=_utc(created_at) or now,
                        signup_path=signup_path,
                        payment_fingerprint=payment_fingerprint,
                    )
                )
            elif row.revoked_at is not None:
                raise InputError(f"account {account_id!r} is revoked; it gets no new keys")
            key_id = secrets.token_hex(6)
            key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
            salt = secrets.token_bytes(16)
            c.execute(
                keys_t.insert().values(
                    key_id=key_id,
                    account_id=account_id,
                    salt=salt,
                    digest=_digest(salt, key),
                    created_at=now,
                )
            )
        return NewKey(account_id, key_id, key)

    def authenticate(self, key: str) -> AccountInfo | None:
        """The account of a valid, unrevoked key, else None (constant-time digest check)."""
        m = _KEY_RE.match(key or "")
        key_id = m.group(1) if m else ""
        row = None
        if m:
            row = self._rows.get(key_id) if self._rows is not None else None
            if row is None:
                with self.engine.connect() as c:
                    row = c.execute(_AUTH_Q, {"key_id": key_id}).first()
                if self._rows is not None and row is not None:
                    self._rows.put(key_id, row)
        salt, digest = (row.salt, row.digest) if row is not None else self._dummy
        ok = hmac.compare_digest(_digest(salt, key or ""), digest)
        if not ok or row is None or row.key_revoked is not None or row.revoked_at is not None:
            return None
        return AccountInfo(
            account_id=row.account_id,
            org_id=row.org_id,
            created_at=_utc(row.created_at),
            signup_path=row.signup_path,
            payment_fingerprint=row.payment_fingerprint,
            key_id=key_id,
        )

    def revoke(self, ident: str) -> str:
        """Revoke an account (all its keys) or one key id; says which it was."""
        now = datetime.now(UTC)
        with self._tx() as c:
            n = c.execute(
                accounts_t.update()
                .where(accounts_t.c.account_id == ident, accounts_t.c.revoked_at.is_(None))
                .values(revoked_at=now)
            ).rowcount
            if n:
                c.execute(
                    keys_t.update()
                    .where(keys_t.c.account_id == ident, keys_t.c.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
                return "account"
            n = c.execute(
                keys_t.update()
                .where(keys_t.c.key_id == ident, keys_t.c.revoked_at.is_(None))
                .values(revoked_at=now)
            ).rowcount
        if n:
            return "key"
        raise InputError(f"no active account or key id {ident!r}")

    def list(self) -> list[AccountRow]:
        """Every account with its active key ids, oldest first."""
        with self.engine.connect() as c:
            accts = c.execute(sa.select(accounts_t).order_by(accounts_t.c.created_at)).all()
            keys = c.execute(
                sa.select(keys_t.c.account_id, keys_t.c.key_id)
                .where(keys_t.c.revoked_at.is_(None))
                .order_by(keys_t.c.created_at)
            ).all()
        by: dict[str, list[str]] = {}
        for k in keys:
            by.setdefault(k.account_id, []).append(k.key_id)
        return [
            AccountRow(
                a.account_id,
                a.org_id,
                _utc(a.created_at),
                a.signup_path,
                a.payment_fingerprint,
                a.revoked_at is not None,
                tuple(by.get(a.account_id, ())),
            )
            for a in accts
        ]

    def close(self) -> None:
        self.engine.dispose()


class _RowCache:
    """Key rows of a SQLite account store, kept while the database file is unchanged.

    Each thread holds a private read-only connection and asks it ``PRAGMA data_version``
    (a few microseconds), which changes as soon as any other connection, in this process
    or another (the CLI, a second gateway), commits to the file. Any commit empties the
    cache, so a revoked key is refused from the next request on, as without a cache. Only
    found rows are kept, so a new key works at once. Saves the SQLAlchemy lookup, the
    largest part of a request's key check."""

    MAX_ROWS = 65536

    def __init__(self, path: str | None):
        self.path = path
        self.local = threading.local()

    def _current(self) -> dict | None:
        loc = self.local
        try:
            if getattr(loc, "conn", None) is None:
                uri = f"file:{quote(str(self.path))}?mode=ro"
                loc.conn, loc.version, loc.rows = sqlite3.connect(uri, uri=True), None, {}
            version = loc.conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            loc.conn = None
            return None  # no cache: every lookup goes to the database
        if version != loc.version:
            loc.version, loc.rows = version, {}
        return loc.rows

    def get(self, key_id: str):
        rows = self._current()
        return None if rows is None else rows.get(key_id)

    def put(self, key_id: str, row) -> None:
        rows = getattr(self.local, "rows", None)
        if rows is not None and len(rows) < self.MAX_ROWS:
            rows[key_id] = row


#: PostgreSQL advisory lock taken while creating the tables, so that replicas starting at
#: once on an empty database do not race on CREATE TABLE ("dtgw" in ASCII).
_DDL_LOCK_ID = 0x64746777


def _engine_options(url: str) -> dict:
    """create_engine options: a lock timeout for SQLite; for a server database, a pool that
    checks a connection before use (a restarted server costs no failed request) and, for
    PostgreSQL drivers, a connect timeout unless the URL sets one."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 30}}
    opts: dict = {"pool_pre_ping": True}
    try:
        u = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return opts  # create_engine says the same, one line
    if u.get_backend_name() == "postgresql" and u.get_driver_name() in ("psycopg", "psycopg2"):
        if "connect_timeout" not in u.query:
            opts["connect_args"] = {"connect_timeout": 10}
    return opts


def _create_tables(engine: sa.Engine) -> None:
    """Create the tables that are missing (one replica at a time on PostgreSQL)."""
    if engine.dialect.name != "postgresql":
        _meta.create_all(engine)
        return
    with engine.begin() as c:  # DDL is transactional; the lock ends with the transaction
        c.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _DDL_LOCK_ID})
        _meta.create_all(c)


def _reason(e: BaseException, url: str) -> str:
    """Why the store could not be opened: the driver's first line, without the password."""
    orig = getattr(e, "orig", None) or e
    lines = str(orig).strip().splitlines()
    text = f"{type(orig).__name__}: {lines[0].strip()}" if lines else type(orig).__name__
    hide = {url}
    try:
        u = sa.engine.make_url(url)
        if u.password:
            pw = str(u.password)
            hide |= {pw, quote(pw, safe=""), quote(pw)}
    except Exception:  # noqa: BLE001 - an unparseable URL: only the whole URL is hidden
        pass
    for h in sorted(hide, key=len, reverse=True):
        if h:
            text = text.replace(h, "***")
    return text[:300]


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _safe_url(url: str) -> str:
    """The URL without its password (it may hold one)."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparseable URL: say nothing about it
        return "<unparseable database URL>"
