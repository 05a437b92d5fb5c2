"""The Spark driver's class archive (`distilltrace.traffic.spark_cds`): where it lives,
that it is built once and whole, and that a bad archive never stops an engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("pyspark")

from distilltrace.traffic import spark_cds  # noqa: E402
from distilltrace.traffic.spark_engine import (  # noqa: E402
    SparkUnavailableError,
    check_spark_available,
)


def _spark_missing() -> str | None:
    try:
        check_spark_available()
    except SparkUnavailableError as e:
        return str(e)
    return None


JAVA = ("/usr/bin/java", 'openjdk version "17.0.15"')


def _fake_build(calls: list, payload: bytes = b"x" * 1000, error: str | None = None):
    def build(tmp, opts):
        calls.append((tmp, opts))
        if error is None:
            tmp.write_bytes(payload)
        return error

    return build


@pytest.fixture
def folder(tmp_path, monkeypatch):
    d = tmp_path / "cds"
    monkeypatch.setenv(spark_cds.ENV, str(d))
    return d


def test_folder_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(spark_cds.ENV, "off")
    assert spark_cds.archive_folder() is None
    assert spark_cds.archive_for(*JAVA, "-XX:+UseParallelGC", build=_fake_build([])) is None
    monkeypatch.setenv(spark_cds.ENV, str(tmp_path / "x"))
    assert spark_cds.archive_folder() == tmp_path / "x"
    monkeypatch.delenv(spark_cds.ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert spark_cds.archive_folder() == tmp_path / "cache" / "distilltrace" / "spark-cds"


def test_built_once_then_reused(folder):
    calls: list = []
    got = spark_cds.archive_for(*JAVA, "-XX:+UseParallelGC", build=_fake_build(calls))
    assert got is not None and got.parent == folder and got.suffix == ".jsa"
    assert len(calls) == 1 and calls[0][1] == "-XX:+UseParallelGC"
    assert calls[0][0] != got  # built under a temporary name, renamed when whole
    assert json.loads(got.with_suffix(".json").read_text())["size"] == 1000
    assert spark_cds.archive_for(*JAVA, "-XX:+UseParallelGC", build=_fake_build(calls)) == got
    assert len(calls) == 1
    assert [p.name for p in folder.glob("*.tmp")] == []
    # other JVM options (or another Java) need an archive of their own
    other = spark_cds.archive_for(*JAVA, "-XX:+UseG1GC", build=_fake_build(calls))
    assert other is not None and other != got and len(calls) == 2
    assert spark_cds.use_options(got).startswith(f"-XX:SharedArchiveFile={got} ")


def test_a_torn_archive_is_never_used(folder):
    """A file whose size is not the one recorded at build time (a JVM that maps a
    truncated archive dies of SIGBUS) is rebuilt, not used."""
    calls: list = []
    got = spark_cds.archive_for(*JAVA, "-XX:+UseParallelGC", build=_fake_build(calls))
    with open(got, "r+b") as fh:
        fh.truncate(500)
    assert not spark_cds.usable(got)
    again = spark_cds.archive_for(*JAVA, "-XX:+UseParallelGC", build=_fake_build(calls))
    assert again == got and len(calls) == 2 and spark_cds.usable(got)
    got.with_suffix(".json").unlink()
    assert not spark_cds.usable(got)


def test_a_failed_build_is_noted_and_not_retried(folder):
    calls: list = []
    fail = _fake_build(calls, error="no CDS in this JVM")
    assert spark_cds.archive_for(*JAVA, "-XX:+UseParallelGC", build=fail) is None
    notes = list(folder.glob("*.failed"))
    assert len(notes) == 1 and "no CDS in this JVM" in notes[0].read_text()
    assert spark_cds.archive_for(*JAVA, "-XX:+UseParallelGC", build=fail) is None
    assert len(calls) == 1
    # a build that exits cleanly without writing anything also fails
    empty = _fake_build(calls, payload=b"")
    assert spark_cds.archive_for(*JAVA, "-XX:+UseG1GC", build=empty) is None
    key = spark_cds.archive_key(*JAVA, "-XX:+UseG1GC")
    assert "without writing" in (folder / f"{key}.failed").read_text()


def test_discarded_archive_is_not_rebuilt(folder):
    calls: list = []
    got = spark_cds.archive_for(*JAVA, "-XX:+UseParallelGC", build=_fake_build(calls))
    spark_cds.discard(got)
    assert not got.exists() and got.with_suffix(".failed").exists()
    assert spark_cds.archive_for(*JAVA, "-XX:+UseParallelGC", build=_fake_build(calls)) is None
    assert len(calls) == 1


def test_one_builder_at_a_time(folder):
    """While another process holds the build lock, an engine starts without an archive."""
    import fcntl

    calls: list = []
    key = spark_cds.archive_key(*JAVA, "-XX:+UseParallelGC")
    folder.mkdir(parents=True)
    with open(folder / f"{key}.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert spark_cds.archive_for(*JAVA, "-XX:+UseParallelGC", build=_fake_build(calls)) is None
    assert calls == []


def test_a_folder_spark_cannot_pass_is_skipped(tmp_path, monkeypatch):
    monkeypatch.setenv(spark_cds.ENV, str(tmp_path / "with space"))
    assert spark_cds.archive_for(*JAVA, "-XX:+UseParallelGC", build=_fake_build([])) is None


_ENGINE = textwrap.dedent(
    """
    import sys
    from distilltrace.traffic.spark_engine import SparkEngine
    eng = SparkEngine(master="local[1]", memory_limit="1GB")
    args = list(eng.spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean()
                .getInputArguments())
    print("ARCHIVE", eng.class_archive)
    print("MAPPED", any(a.startswith("-XX:SharedArchiveFile=") for a in args))
    print("ROWS", eng.fetch("SELECT count(*) AS n FROM range(7)")["n"].iloc[0])
    eng.close()
    """
)


def _engine_in_subprocess(env, cwd) -> dict[str, str]:
    out = subprocess.run(
        [sys.executable, "-c", _ENGINE],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return dict(
        line.split(" ", 1) for line in out.stdout.splitlines() if line.split(" ")[0].isupper()
    )


_MISSING = _spark_missing()


@pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))
@pytest.mark.slow
def test_real_archive_built_mapped_and_survives_corruption(tmp_path):
    """A real build (a JVM writing its classes at exit), an engine whose JVM maps it, and
    an engine that meets a corrupt archive: its JVM starts again without it."""
    env = {**os.environ, spark_cds.ENV: str(tmp_path / "cds")}
    got = _engine_in_subprocess(env, tmp_path)
    archives = list((tmp_path / "cds").glob("*.jsa"))
    assert len(archives) == 1 and spark_cds.usable(archives[0])
    assert got == {"ARCHIVE": str(archives[0]), "MAPPED": "True", "ROWS": "7"}
    # a torn archive whose recorded size was forged to match: its JVM dies (SIGBUS), and
    # the engine starts again without it and discards it
    size = archives[0].stat().st_size
    archives[0].chmod(0o644)
    with open(archives[0], "r+b") as fh:
        fh.truncate(size // 4)
    archives[0].with_suffix(".json").write_text(json.dumps({"size": size // 4}))
    got = _engine_in_subprocess(env, tmp_path)
    assert got == {"ARCHIVE": "None", "MAPPED": "False", "ROWS": "7"}
    assert not archives[0].exists() and archives[0].with_suffix(".failed").exists()
    # the crashed JVM's report is kept beside the archive, not in the working folder
    assert list((tmp_path / "cds").glob("hs_err_pid*.log"))
    assert not list(tmp_path.glob("hs_err_pid*.log"))


def test_an_archive_failure_never_stops_the_engine(monkeypatch):
    """Whatever goes wrong with the archive, the engine starts without one."""
    from distilltrace.traffic import spark_engine

    def broken(*a, **k):
        raise OSError("read-only cache folder")

    from pyspark import SparkContext

    monkeypatch.setattr(spark_cds, "archive_for", broken)
    # as in a process that has not started its JVM yet (the only case that asks)
    monkeypatch.setattr(SparkContext, "_gateway", None)
    assert spark_engine._class_archive(JAVA, {}) is None
