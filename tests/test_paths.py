"""One resolver for distilltrace's on-disk state (distilltrace.paths): every cache and
the models folder follow the same environment variables, in the same order."""

from __future__ import annotations

from pathlib import Path

import pytest

from distilltrace import paths

VARS = ("DISTILLTRACE_HOME", "DISTILLTRACE_CACHE", "XDG_CACHE_HOME", "DISTILLTRACE_SPARK_CDS")


@pytest.fixture
def env(tmp_path, monkeypatch):
    for v in VARS:
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    return monkeypatch


def _caches() -> dict[str, Path]:
    """Where each cache of the project would go now."""
    from distilltrace.data import sharegpt
    from distilltrace.distill import human_text
    from distilltrace.traffic import spark_cds

    here = Path(__file__)  # any existing file stands in for the ShareGPT source
    return {
        "sharegpt": sharegpt.cache_path(here).parent,
        "human-text": human_text.cache_path().parent,
        "spark-cds": spark_cds.archive_folder(),
    }


def test_the_order_home_then_xdg_then_the_user_cache(env, tmp_path):
    user = tmp_path / "user" / ".cache" / "distilltrace"
    assert paths.default_home() == user and not user.exists()  # resolved, not created
    assert paths.cache_dir() == user
    assert _caches() == {k: user / k for k in ("sharegpt", "human-text", "spark-cds")}
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.default_home() == tmp_path / "xdg" / "distilltrace"
    assert _caches()["spark-cds"] == tmp_path / "xdg" / "distilltrace" / "spark-cds"
    env.setenv("DISTILLTRACE_HOME", str(tmp_path / "home"))
    assert paths.home() == tmp_path / "home" and (tmp_path / "home").is_dir()
    assert paths.models_dir() == tmp_path / "home" / "models"
    assert paths.cache_dir() == tmp_path / "home"


def test_caches_follow_distilltrace_cache_and_spark_keeps_its_own_switch(env, tmp_path):
    env.setenv("DISTILLTRACE_HOME", str(tmp_path / "home"))
    env.setenv("DISTILLTRACE_CACHE", str(tmp_path / "c"))
    assert _caches() == {k: tmp_path / "c" / k for k in ("sharegpt", "human-text", "spark-cds")}
    assert paths.models_dir() == tmp_path / "home" / "models"  # models are state, not cache
    env.setenv("DISTILLTRACE_SPARK_CDS", str(tmp_path / "cds"))
    assert _caches()["spark-cds"] == tmp_path / "cds"
    env.setenv("DISTILLTRACE_SPARK_CDS", "off")
    assert _caches()["spark-cds"] is None
    env.setenv("DISTILLTRACE_CACHE", "  ")  # blank counts as unset
    assert paths.cache_dir() == tmp_path / "home"


def test_a_state_folder_that_is_a_file_is_one_readable_error(env, tmp_path):
    from distilltrace.errors import InputError

    (tmp_path / "file").write_text("not a folder")
    env.setenv("DISTILLTRACE_HOME", str(tmp_path / "file"))
    with pytest.raises(InputError, match=r"\$DISTILLTRACE_HOME\) .*file is not a folder"):
        paths.home()
    env.setenv("DISTILLTRACE_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "models").write_text("")
    with pytest.raises(InputError, match="the models folder .* is not a folder"):
        paths.models_dir()
