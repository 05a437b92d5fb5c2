"""Class-data sharing for the local Spark driver: an archive of the classes a Spark JVM
loads, built once per Java and Spark installation and mapped by every later start.

A local Spark session spends most of its start (about 4.5 s here) and of its first
statement (2.5 s) loading and verifying the same few thousand classes from Spark's jars.
Java 13 and later can write the classes a run loaded to an archive when the JVM exits
(``-XX:ArchiveClassesAtExit``), which later JVMs map instead (``-XX:SharedArchiveFile``):
the start took 2.7-2.9 s and the first statement 1.5 s with it (docs/benchmarks.md).

- **Where.** ``$DISTILLTRACE_SPARK_CDS``: a folder, or ``off`` to turn this off; by default
  ``spark-cds`` under `distilltrace.paths.cache_dir()` (``~/.cache/distilltrace/spark-cds``).
- **Which.** The archive's file name hashes the Java runtime (its path and ``-version``),
  the PySpark version, Spark's jar files (names and sizes) and the JVM options it serves,
  so any change to them builds a new archive instead of mapping a stale one.
- **Built once, whole or not at all.** A subprocess starts a local session with
  ``-XX:ArchiveClassesAtExit``, runs a few statements, stops it and waits for its JVM to
  exit (about 25 s here, most of it writing the archive). The archive goes to a temporary name and is renamed into place only
  after the JVM exited cleanly, with its size recorded beside it and checked at every use:
  a JVM that maps a truncated archive dies of SIGBUS, so a torn file is never used.
  Concurrent engines do not build twice (a lock file; the loser starts without one).
- **Never in the way.** A build that fails leaves a ``.failed`` note with the reason and is
  not tried again (delete the note to retry). An engine whose JVM does not start with the
  archive discards it and starts without (`SparkEngine`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

#: The environment variable naming the archive folder (``off``: no archive).
ENV = "DISTILLTRACE_SPARK_CDS"

#: Seconds a build may take before it is abandoned (and noted as failed).
BUILD_TIMEOUT_S = 300

#: JVM options that keep class-data sharing's own warnings off the console (a rejected
#: archive only means a slower start).
QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off"


def archive_folder() -> Path | None:
    """The folder archives live in (None: turned off by ``$DISTILLTRACE_SPARK_CDS=off``)."""
    env = os.environ.get(ENV, "").strip()
    if env.lower() in ("off", "0", "false", "no", "none"):
        return None
    if env:
        return Path(env).expanduser()
    from distilltrace.paths import cache_dir

    return cache_dir() / "spark-cds"


def archive_key(java: str, java_version: str, jvm_opts: str) -> str:
    """A hash of everything an archive must match: the Java runtime, PySpark and its jars,
    and the JVM options."""
    import pyspark

    h = hashlib.sha256()
    for part in (str(Path(java).resolve()), java_version, pyspark.__version__, jvm_opts):
        h.update(part.encode() + b"\0")
    jars = Path(_spark_home()) / "jars"
    for jar in sorted(jars.glob("*.jar")) if jars.is_dir() else []:
        h.update(f"{jar.name}:{jar.stat().st_size}\0".encode())
    return h.hexdigest()[:20]


def _spark_home() -> str:
    from pyspark.find_spark_home import _find_spark_home

    return _find_spark_home()


def usable(path: Path) -> bool:
    """Whether ``path`` is a whole archive: present, with the size recorded when it was built."""
    try:
        want = json.loads(path.with_suffix(".json").read_text())["size"]
        return path.stat().st_size == int(want) > 0
    except (OSError, ValueError, KeyError, TypeError):
        return False


def archive_for(java: str, java_version: str, jvm_opts: str, *, build=None) -> Path | None:
    """The archive for a JVM started with ``jvm_opts`` by ``java`` (built now when missing),
    or None: turned off, not possible here, failed before, or being built by another
    process. ``build(tmp_path, jvm_opts) -> error or None`` builds one (tests replace it)."""
    folder = archive_folder()
    if folder is None or any(c.isspace() or c in "'\"" for c in str(folder)):
        return None  # Spark splits extraJavaOptions on spaces
    key = archive_key(java, java_version, jvm_opts)
    path = folder / f"{key}.jsa"
    if usable(path):
        return path
    failed = folder / f"{key}.failed"
    if failed.exists():
        return None
    try:
        import fcntl

        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / f"{key}.lock", "w")  # noqa: SIM115 - held until the build ends
    except (ImportError, OSError) as e:  # no fcntl (Windows) or no writable folder
        log.debug("no Spark class archive: %s", e)
        return None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return None  # another process is building it: start without this time
        if usable(path):
            return path
        return _build_into(path, failed, jvm_opts, build or build_archive)


def _build_into(path: Path, failed: Path, jvm_opts: str, build) -> Path | None:
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp")
    log.warning(
        "building a class archive for the Spark JVM (once per Java and Spark install, about "
        "30 s; %s=off turns it off): %s",
        ENV,
        path,
    )
    t0 = time.monotonic()
    try:
        error = build(tmp, jvm_opts)
        if error is None and not (tmp.exists() and tmp.stat().st_size > 0):
            error = "the JVM exited without writing the archive"
        if error is not None:
            failed.write_text(error + "\n")
            log.warning("no Spark class archive (%s); noted in %s", error, failed)
            return None
        path.with_suffix(".json").write_text(
            json.dumps({"size": tmp.stat().st_size, "build_s": round(time.monotonic() - t0, 1)})
        )
        os.replace(tmp, path)
        return path
    finally:
        tmp.unlink(missing_ok=True)


def discard(path: Path) -> None:
    """Remove an archive the JVM could not start with, and note it so it is not rebuilt."""
    for p in (path, path.with_suffix(".json")):
        p.unlink(missing_ok=True)
    path.with_suffix(".failed").write_text("the Spark JVM did not start with this archive\n")


def use_options(path: Path) -> str:
    """The JVM options that map archive ``path`` (a JVM that dies of it leaves its crash
    report beside the archive, not in the working folder)."""
    return f"-XX:SharedArchiveFile={path} -XX:ErrorFile={path.parent}/hs_err_pid%p.log {QUIET}"


def build_archive(tmp: Path, jvm_opts: str) -> str | None:
    """Build an archive at ``tmp`` in a subprocess; the error (one line) or None."""
    cmd = [sys.executable, "-m", "distilltrace.traffic.spark_cds", str(tmp), jvm_opts]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"the build took longer than {BUILD_TIMEOUT_S} s"
    except OSError as e:
        return f"could not run the build: {e}"
    if out.returncode != 0:
        lines = (out.stderr or out.stdout or "").strip().splitlines()
        return f"the build failed (exit {out.returncode}): {lines[-1][:300] if lines else '?'}"
    return None


def _workload(spark, folder: Path) -> None:
    """Statements of the kinds a scan runs (aggregates, joins, windows, sorts, a cache,
    Parquet, Arrow to and from Python), so that their classes are in the archive."""
    import pyarrow as pa  # noqa: F401 - the Python workers need it for mapInArrow

    df = spark.range(0, 20_000).selectExpr(
        "id", "CAST(id % 97 AS STRING) AS k", "id * 0.5 AS x", "timestamp_seconds(id) AS ts"
    )
    df.createOrReplaceTempView("w")
    cached = spark.sql("SELECT k, count(*) AS n, avg(x) AS m FROM w GROUP BY k").cache()
    cached.count()
    spark.sql(
        "SELECT w.k, sum(w.x), max(lag_x) FROM (SELECT *, x - lag(x) OVER (PARTITION BY k "
        "ORDER BY id) AS lag_x FROM w) w JOIN (SELECT DISTINCT k FROM w) d ON w.k = d.k "
        "WHERE regexp_like(w.k, '^[0-9]+$') GROUP BY w.k ORDER BY w.k"
    ).collect()
    df.mapInArrow(lambda batches: batches, df.schema).toPandas()
    df.write.parquet(str(folder / "w.parquet"))
    spark.read.parquet(str(folder / "w.parquet")).orderBy("k").toArrow()


def _main(tmp: str, jvm_opts: str) -> int:
    """Start a local session whose JVM writes its classes to ``tmp`` at exit, run the
    workload, and wait for the JVM to exit. 0 when it exited cleanly."""
    import tempfile

    from pyspark.sql import SparkSession

    from distilltrace.traffic.spark_engine import _JVM_OPTIONS, local_settings

    with tempfile.TemporaryDirectory(prefix="distilltrace-cds-") as d:
        settings = local_settings(d)
        settings[_JVM_OPTIONS] = f"{jvm_opts} -XX:ArchiveClassesAtExit={tmp} {QUIET}"
        b = SparkSession.builder.master("local[1]").appName("distilltrace-cds")
        for k, v in settings.items():
            b = b.config(k, v)
        spark = b.getOrCreate()
        proc = spark.sparkContext._gateway.proc
        try:
            _workload(spark, Path(d))
        finally:
            spark.stop()
            proc.stdin.close()  # the gateway JVM exits on end of input, writing the archive
            proc.wait(timeout=BUILD_TIMEOUT_S)
    return 0 if proc.returncode == 0 else 1


if __name__ == "__main__":  # pragma: no cover - run as a subprocess by build_archive
    sys.exit(_main(sys.argv[1], sys.argv[2]))
