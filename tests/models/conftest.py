"""Shared fixtures: tiny models built once per test session."""

from __future__ import annotations

import pytest

TRAIN_TEXTS = [
    "The capital of France is Paris.",
    "The cat sat on the mat.",
    "Two plus two is four.",
    "Water boils at one hundred degrees.",
]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A tiny byte-level Llama folder, briefly trained so its outputs are not uniform."""
    from distilltrace.models.tiny import make_tiny_model

    return make_tiny_model(
        tmp_path_factory.mktemp("tiny") / "tiny", train_texts=TRAIN_TEXTS, train_steps=20, seed=1
    )


@pytest.fixture(scope="session")
def tiny_model(tiny_dir):
    from distilltrace.models import load_model

    return load_model(str(tiny_dir))


@pytest.fixture(scope="session")
def served_url(tiny_dir):
    """A real `distilltrace serve` subprocess of the tiny model on 127.0.0.1."""
    from tests.serve_helpers import running_server

    with running_server(str(tiny_dir)) as url:
        yield url


@pytest.fixture(scope="session")
def http_model(served_url, tiny_dir):
    from distilltrace.models import load_model

    return load_model(f"openai:{served_url};model={tiny_dir.name}")


@pytest.fixture
def cached_model(tiny_model, tmp_path):
    from distilltrace.models.cache import CachedModel

    return CachedModel(tiny_model, tmp_path / "cache.sqlite")


@pytest.fixture(params=["local", "cached", "http"])
def backend(request):
    """Each backend in turn: the same contract tests run against all of them."""
    name = {"local": "tiny_model", "cached": "cached_model", "http": "http_model"}[request.param]
    return request.getfixturevalue(name)
