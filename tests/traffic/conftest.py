"""Shared fixtures for the traffic tests; the log generators live in handmade_logs.py."""

from __future__ import annotations

import pandas as pd
import pytest
from handmade_logs import make_benign, make_hydra


@pytest.fixture(scope="session")
def small_log(tmp_path_factory):
    """Benign traffic plus one hydra, as a Parquet file; returns (path, frame)."""
    df = pd.concat([make_benign(300, seed=0), make_hydra(60, 10, seed=1)], ignore_index=True)
    path = tmp_path_factory.mktemp("logs") / "small.parquet"
    df.to_parquet(path, index=False)
    return path, df
