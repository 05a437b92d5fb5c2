"""The account store: hashed keys, constant-time lookup, revocation, CLI, shared database."""

from __future__ import annotations

import sqlite3

import pytest
from typer.testing import CliRunner

from distilltrace.errors import InputError
from distilltrace.gateway.accounts import AccountStore
from distilltrace.gateway.cli import app as gateway_cli


@pytest.fixture
def store(tmp_path):
    s = AccountStore(f"sqlite:///{tmp_path / 'a.db'}")
    yield s
    s.close()


def test_a_key_authenticates_to_its_account(store):
    k = store.add_account("a1", org_id="o1", signup_path="education", payment_fingerprint="pf")
    info = store.authenticate(k.key)
    assert info is not None
    assert (info.account_id, info.org_id, info.signup_path) == ("a1", "o1", "education")
    assert info.payment_fingerprint == "pf" and info.key_id == k.key_id
    assert info.created_at.tzinfo is not None
    assert k.key_id in k.key and k.key.startswith("dtk_")
    assert "<hidden>" in repr(k) and k.key not in repr(k)


def test_wrong_malformed_and_unknown_keys_are_refused(store):
    k = store.add_account("a1")
    wrong = k.key[:-1] + ("A" if k.key[-1] != "A" else "B")
    assert store.authenticate(wrong) is None  # right key id, wrong secret
    assert store.authenticate("") is None
    assert store.authenticate("dtk_000000000000_" + "x" * 43) is None  # unknown key id
    assert store.authenticate(k.key + "x") is None
    assert store.authenticate("Bearer " + k.key) is None


def test_keys_are_hashed_at_rest(tmp_path, store):
    k = store.add_account("a1")
    secret = k.key[len("dtk_") + 13 :]  # the secret may itself contain "_"
    assert len(secret) == 43
    raw = (tmp_path / "a.db").read_bytes()
    with sqlite3.connect(tmp_path / "a.db") as c:
        dump = "\n".join(c.iterdump())
    assert secret.encode() not in raw and secret not in dump and k.key not in dump
    assert k.key_id in dump  # the public id is stored


def test_revoke_a_key_or_a_whole_account(store):
    k1, k2 = store.add_account("a1"), store.add_account("a1")
    other = store.add_account("a2")
    assert store.revoke(k1.key_id) == "key"
    assert store.authenticate(k1.key) is None and store.authenticate(k2.key) is not None
    assert store.revoke("a1") == "account"
    assert store.authenticate(k2.key) is None and store.authenticate(other.key) is not None
    with pytest.raises(InputError, match="revoked"):
        store.add_account("a1")
    with pytest.raises(InputError, match="no active account or key"):
        store.revoke("a1")
    rows = {r.account_id: r for r in store.list()}
    assert rows["a1"].revoked and rows["a1"].key_ids == ()
    assert rows["a2"].key_ids == (other.key_id,)


def test_bad_account_ids_and_database_urls_are_one_line_errors(tmp_path, store):
    for bad in ("", "has space", "x" * 200, "<script>"):
        with pytest.raises(InputError, match="account id"):
            store.add_account(bad)
    with pytest.raises(InputError) as e:
        AccountStore("postgresql+nosuchdriver://user:hunter2@db.invalid/x")
    assert "hunter2" not in str(e.value) and "\n" not in str(e.value)


def test_two_replicas_share_one_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a, b = AccountStore(url), AccountStore(url)
    k = a.add_account("shared")
    assert b.authenticate(k.key).account_id == "shared"
    b.revoke("shared")
    assert a.authenticate(k.key) is None


def test_cached_key_rows_follow_every_commit_to_the_file(tmp_path):
    """A SQLite store keeps key rows between requests, but any commit to the file, by any
    connection, empties that cache: a revocation elsewhere holds from the next request."""
    import sqlalchemy as sa

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    a, b = AccountStore(url), AccountStore(url)
    k1, k2 = a.add_account("one").key, a.add_account("two").key
    queries = []
    sa.event.listen(a.engine, "before_cursor_execute", lambda *args: queries.append(1))
    for _ in range(5):
        assert a.authenticate(k1).account_id == "one"
    assert len(queries) == 1  # looked up once, then served from the cache
    assert a.authenticate(k1[:-1] + ("A" if k1[-1] != "A" else "B")) is None  # wrong secret
    new = b.add_account("three").key  # a commit by another connection
    assert a.authenticate(new).account_id == "three"
    assert a.authenticate(k2).account_id == "two"
    b.revoke(k2.split("_")[1])  # one key, revoked by the other store
    assert a.authenticate(k2) is None
    assert a.authenticate(k1).account_id == "one"
    with sqlite3.connect(tmp_path / "shared.db") as raw:  # any writer at all, e.g. the CLI
        raw.execute(
            "UPDATE dt_accounts SET revoked_at = '2026-01-01 00:00:00' WHERE account_id = 'one'"
        )
    assert a.authenticate(k1) is None
    a.close()
    b.close()


def test_cli_accounts_add_list_revoke(tmp_path):
    run = CliRunner()
    log = str(tmp_path / "log")
    r = run.invoke(gateway_cli, ["accounts", "add", "cli-acct", "--org", "o", "--log-dir", log])
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[-1]
    store = AccountStore(f"sqlite:///{tmp_path / 'log' / 'accounts.sqlite3'}")
    info = store.authenticate(key)
    assert info is not None and info.account_id == "cli-acct"
    r = run.invoke(gateway_cli, ["accounts", "list", "--log-dir", log])
    assert r.exit_code == 0 and "cli-acct" in r.stdout and info.key_id in r.stdout
    assert key not in r.stdout
    r = run.invoke(gateway_cli, ["accounts", "revoke", info.key_id, "--log-dir", log])
    assert r.exit_code == 0 and "revoked key" in r.stdout
    assert store.authenticate(key) is None
    r = run.invoke(gateway_cli, ["accounts", "list"])
    assert r.exit_code != 0 and isinstance(r.exception, InputError)


def test_a_sqlite_lookup_never_waits_for_a_writer(tmp_path):
    """The gateway looks keys up on its event loop only for a SQLite file (WAL mode): an
    open write transaction of another process must not make that lookup wait."""
    import time

    db = tmp_path / "w.db"
    s = AccountStore(f"sqlite:///{db}")
    k = s.add_account("a1")
    mem = AccountStore("sqlite://")  # in memory: one database per thread, no WAL
    assert s.inline_reads and not mem.inline_reads
    mem.close()
    writer = sqlite3.connect(db, timeout=0)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE dt_accounts SET org_id = 'x' WHERE account_id = 'a1'")
    t0 = time.perf_counter()
    info = s.authenticate(k.key)
    assert time.perf_counter() - t0 < 1.0
    assert info is not None and info.org_id is None  # the committed state, not the writer's
    writer.rollback()
    writer.close()
    s.close()
