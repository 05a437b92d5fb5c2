"""Shared fixtures for the traffic tests; the log generators live in handmade_logs.py."""

from __future__ import annotations

import os
import shutil

import pandas as pd
import pytest
from handmade_logs import make_benign, make_hydra


def spark_unavailable() -> str | None:
    """Why Spark tests cannot run here (None when PySpark and a Java runtime exist)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "PySpark is not installed (pip install 'distilltrace[spark]')"
    if os.environ.get("JAVA_HOME") or shutil.which("java"):
        return None
    return "no Java runtime (install openjdk-17-jre-headless)"


@pytest.fixture(scope="module")
def spark():
    """One local Spark session per test module: local[2], bound to 127.0.0.1, no UI."""
    why = spark_unavailable()
    if why:
        pytest.skip(why)
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    s = (
        SparkSession.builder.master("local[2]")
        .appName("distilltrace-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.memory", "1g")
        .config("spark.log.level", "ERROR")
        .getOrCreate()
    )
    yield s
    s.stop()


@pytest.fixture(scope="session")
def small_log(tmp_path_factory):
    """Benign traffic plus one hydra, as a Parquet file; returns (path, frame)."""
    df = pd.concat([make_benign(300, seed=0), make_hydra(60, 10, seed=1)], ignore_index=True)
    path = tmp_path_factory.mktemp("logs") / "small.parquet"
    df.to_parquet(path, index=False)
    return path, df
