"""The account store on a real PostgreSQL that two gateway replicas share.

A module fixture runs a throwaway cluster (initdb + postgres on 127.0.0.1, a free port, its
socket directory and data in a temporary folder, as an unprivileged user when the tests run
as root) and stops it at the end. The tests skip, saying why, where the PostgreSQL server
binaries or the psycopg driver are missing (``make sysdeps`` installs the first,
``pip install -e .`` the second).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import hmac
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from distilltrace.errors import InputError
from distilltrace.gateway.accounts import AccountStore
from distilltrace.gateway.app import create_gateway_app
from distilltrace.gateway.config import GatewayConfig
from tests.serve_helpers import free_port

psycopg = pytest.importorskip("psycopg", reason="the psycopg PostgreSQL driver is not installed")

SUPERUSER = "dtgw"
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def _pg_bindir() -> Path | None:
    """The folder with initdb and postgres: on PATH, else Debian's /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    dirs = [Path(found).resolve().parent] if found else []
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    dirs += sorted(
        map(Path, versions),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for d in dirs:
        if (d / "initdb").is_file() and (d / "postgres").is_file():
            return d
    return None


class PgCluster:
    """One throwaway PostgreSQL cluster under ``root`` (see the module docstring)."""

    def __init__(self, bindir: Path, root: Path):
        self.bindir, self.root = bindir, root
        self.data, self.sock, self.logfile = root / "data", root / "sock", root / "server.log"
        self.password = "pw" + secrets.token_hex(12)
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.as_user: dict = {}
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            try:
                u = pwd.getpwnam("postgres")
            except KeyError:
                u = pwd.getpwnam("nobody")
            self.as_user = {"user": u.pw_uid, "group": u.pw_gid, "extra_groups": []}
            os.chown(root, u.pw_uid, u.pw_gid)
        self.sock.mkdir()
        self._own(self.sock)
        self.env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "HOME": str(root)}

    def _own(self, path: Path) -> None:
        if self.as_user:
            os.chown(path, self.as_user["user"], self.as_user["group"])

    def init(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        self._own(pwfile)
        r = subprocess.run(
            [
                str(self.bindir / "initdb"),
                *("-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}"),
                *("--auth-local=trust", "--auth-host=scram-sha-256"),
                *("-E", "UTF8", "--locale=C", "--no-sync"),
            ],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            **self.as_user,
        )
        pwfile.unlink()
        assert r.returncode == 0, f"initdb failed:\n{r.stdout[-2000:]}{r.stderr[-2000:]}"

    def start(self, port: int | None = None) -> None:
        """Start the server (on ``port``, else a free one; retried if that port is taken)."""
        for _ in range(3):
            self.port = port or free_port()
            with open(self.logfile, "ab") as log:
                self.proc = subprocess.Popen(
                    [
                        str(self.bindir / "postgres"),
                        *("-D", str(self.data), "-p", str(self.port), "-k", str(self.sock)),
                        *("-c", "listen_addresses=127.0.0.1"),
                        *("-c", "fsync=off", "-c", "synchronous_commit=off"),
                        *("-c", "full_page_writes=off", "-c", "shared_buffers=16MB"),
                        # every statement with its parameters: a witness for what reaches it
                        *("-c", "log_statement=all"),
                    ],
                    cwd=self.root,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    **self.as_user,
                )
            deadline = time.monotonic() + 30
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    self.connect("postgres").close()
                    return
                except psycopg.OperationalError:
                    time.sleep(0.1)
            self.stop()
        raise AssertionError(f"postgres did not start:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def log(self) -> str:
        return self.logfile.read_text(errors="replace") if self.logfile.exists() else ""

    def connect(self, db: str):
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=SUPERUSER,
            password=self.password,
            dbname=db,
            autocommit=True,
            connect_timeout=3,
        )

    def create_db(self, db: str) -> str:
        with self.connect("postgres") as c:
            c.execute(f'CREATE DATABASE "{db}"')
        return self.url(db)

    def url(self, db: str, password: str | None = None, port: int | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql+psycopg://{SUPERUSER}:{pw}@127.0.0.1:{port or self.port}/{db}"


@pytest.fixture(scope="module")
def pg():
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, postgres) not found on PATH or in "
            "/usr/lib/postgresql/*/bin; `make sysdeps` (or apt-get install postgresql) "
            "installs them"
        )
    root = Path(tempfile.mkdtemp(prefix="dt-pg-"))  # not under pytest's 0700 tmp folders
    cluster = None
    try:
        cluster = PgCluster(bindir, root)
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _stores(url: str, n: int):
    stores = [AccountStore(url) for _ in range(n)]
    try:
        yield stores
    finally:
        for s in stores:
            s.close()


def _replica(upstream: str, log_dir: Path, url: str, token_file: Path):
    cfg = GatewayConfig(
        upstream=upstream,
        log_dir=log_dir,
        db_url=url,
        admin_token_file=token_file,
        roll_interval_s=None,
        fsync=False,
    )
    return create_gateway_app(cfg)


def test_two_replicas_share_accounts_keys_and_revocations(
    pg, tmp_path, segment_records, monkeypatch
):
    """Two gateway apps, each with its own connection pool, on one database. Their upstream
    is an OpenAI-compatible URL where nothing listens (no model to load): a request whose
    key authenticates is forwarded, logged against its account and answered 502; a refused
    key gets 401 before any of that."""
    from typer.testing import CliRunner

    from distilltrace.gateway.cli import app as gateway_cli

    url = pg.create_db("replicas")
    tok = tmp_path / "admin.txt"
    tok.write_text("admin-token-" + secrets.token_hex(8))
    admin = {"authorization": f"Bearer {tok.read_text()}"}
    upstream = f"openai:http://127.0.0.1:{free_port()}/v1;timeout=5"
    app_a = _replica(upstream, tmp_path / "a", url, tok)
    app_b = _replica(upstream, tmp_path / "b", url, tok)
    assert app_a.state.accounts.engine is not app_b.state.accounts.engine  # own pools
    assert app_a.state.accounts.engine.dialect.name == "postgresql"

    def status(client, key: str) -> int:
        r = client.post(
            "/v1/chat/completions", json=CHAT, headers={"authorization": f"Bearer {key}"}
        )
        code = r.json()["error"]["code"]
        assert (r.status_code, code) in ((502, "upstream_error"), (401, "invalid_api_key")), r.text
        return r.status_code

    with TestClient(app_a) as a, TestClient(app_b) as b:
        made = a.post(
            "/admin/accounts", headers=admin, json={"account_id": "shared-1", "org_id": "org-s"}
        )
        assert made.status_code == 200, made.text
        key1 = made.json()["key"]
        # made on A, used on B: authenticated, forwarded, logged against the account
        assert status(b, key1) == 502
        (rec,) = segment_records(tmp_path / "b")
        assert (rec["account_id"], rec["org_id"]) == ("shared-1", "org-s")
        assert rec["api_key_id"] == made.json()["key_id"] and rec["http_status"] == 502
        assert segment_records(tmp_path / "a") == []
        assert status(a, "dtk_000000000000_" + "x" * 43) == 401  # the control: unknown key

        # made by the CLI (URL from the environment, as the docs advise), used on both
        monkeypatch.setenv("DISTILLTRACE_GATEWAY_DB", url)
        cli = CliRunner().invoke(gateway_cli, ["accounts", "add", "shared-2"])
        assert cli.exit_code == 0, cli.output
        key2 = cli.stdout.strip().splitlines()[-1]
        key2_id = key2.split("_")[1]
        assert status(a, key2) == status(b, key2) == 502

        # an account revoked through B is refused on A, from the next request on
        r = b.post("/admin/revoke/shared-1", headers=admin)
        assert r.json() == {"revoked": "account", "id": "shared-1"}
        assert status(a, key1) == 401
        assert a.get("/v1/models", headers={"authorization": f"Bearer {key1}"}).status_code == 401
        listed = {
            x["account_id"]: x for x in a.get("/admin/accounts", headers=admin).json()["accounts"]
        }
        assert listed["shared-1"]["revoked"] is True and listed["shared-1"]["key_ids"] == []

        # a single key revoked through the CLI is refused on both replicas
        cli = CliRunner().invoke(gateway_cli, ["accounts", "revoke", key2_id])
        assert cli.exit_code == 0 and "revoked key" in cli.stdout
        assert status(a, key2) == status(b, key2) == 401
        # adding to a revoked account through A is refused (the state is shared, not cached)
        r = a.post("/admin/accounts", headers=admin, json={"account_id": "shared-1"})
        assert r.status_code == 400 and "revoked" in r.json()["error"]["message"]
    assert key1 not in pg.log() and key2 not in pg.log()


def test_keys_are_hashed_at_rest_and_never_sent_to_the_database(pg):
    url = pg.create_db("hashing")
    with _stores(url, 1) as (store,):
        k = store.add_account("hashed-1", payment_fingerprint="pf-x")
        assert store.authenticate(k.key).account_id == "hashed-1"
        assert store.authenticate(k.key[:-1] + ("A" if k.key[-1] != "A" else "B")) is None
    secret = k.key[len("dtk_") + 13 :]
    assert len(secret) == 43
    with pg.connect("hashing") as c:
        tables = [
            r[0]
            for r in c.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            )
        ]
        assert sorted(tables) == ["dt_accounts", "dt_api_keys"]
        values = [v for t in tables for row in c.execute(f'SELECT * FROM "{t}"') for v in row]
        types = dict(
            c.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'dt_api_keys'"
            ).fetchall()
        )
        salt, digest = c.execute(
            "SELECT salt, digest FROM dt_api_keys WHERE key_id = %s", (k.key_id,)
        ).fetchone()
    text = "\n".join(map(str, values))
    raw = b"".join(bytes(v) for v in values if isinstance(v, bytes | memoryview))
    assert k.key_id in text  # the public id is stored
    assert secret not in text and k.key not in text and secret.encode() not in raw
    assert types["salt"] == types["digest"] == "bytea"
    assert len(bytes(salt)) == 16
    assert bytes(digest) == hmac.new(bytes(salt), k.key.encode(), hashlib.sha256).digest()
    # the server logged every statement with its parameters: the secret never reached it
    log = pg.log()
    assert "dt_api_keys" in log and k.key_id in log
    assert secret not in log and pg.password not in log


def test_replicas_starting_at_once_on_an_empty_database(pg):
    url = pg.create_db("race")
    n = 6
    barrier, opened, errors = threading.Barrier(n), [], []

    def start() -> None:
        barrier.wait()
        try:
            opened.append(AccountStore(url))
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert errors == [] and len(opened) == n
        k = opened[0].add_account("first")
        assert all(s.authenticate(k.key).account_id == "first" for s in opened)
    finally:
        for s in opened:
            s.close()


def test_a_replica_survives_a_database_restart(pg):
    url = pg.create_db("restart")
    with _stores(url, 1) as (store,):
        k = store.add_account("steady")
        assert store.authenticate(k.key) is not None  # a pooled connection now exists
        port = pg.port
        pg.stop()
        pg.start(port=port)
        # the pooled connection died with the server; the next lookup still works
        assert store.authenticate(k.key).account_id == "steady"
        assert store.revoke("steady") == "account"


def test_bad_database_urls_are_one_readable_line_without_the_password(
    pg, tmp_path, monkeypatch, capsys
):
    from distilltrace.cli import main

    wrong_pw = "wrongpw" + secrets.token_hex(8)
    cases = {
        "password": (pg.url("postgres", password=wrong_pw), wrong_pw, "password authentication"),
        "unreachable": (pg.url("postgres", port=free_port()), pg.password, "Connection refused"),
        "no database": (pg.url("nosuchdb"), pg.password, 'database "nosuchdb" does not exist'),
    }
    for name, (url, pw, why) in cases.items():
        with pytest.raises(InputError) as e:
            AccountStore(url)
        msg = str(e.value)
        assert msg.startswith("account store postgresql+psycopg://dtgw:***@127.0.0.1:"), name
        assert why in msg and "\n" not in msg and pw not in msg, (name, msg)

        # the gateway app refuses to start with the same line
        upstream = f"openai:http://127.0.0.1:{free_port()}/v1"
        cfg = GatewayConfig(upstream=upstream, log_dir=tmp_path / "log", db_url=url)
        with pytest.raises(InputError) as e2:
            create_gateway_app(cfg)
        assert str(e2.value) == msg

        # the CLI prints it as one line on stderr, no traceback
        monkeypatch.setenv("DISTILLTRACE_GATEWAY_DB", url)
        with pytest.raises(SystemExit) as ex:
            main(["gateway", "accounts", "list"])
        out = capsys.readouterr()
        assert ex.value.code == 2
        assert out.err.strip() == f"error: {msg}" and out.out == ""
        assert pw not in out.err and "Traceback" not in out.err
