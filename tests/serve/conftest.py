"""Fixtures: a tiny trained model and an in-process client of the serve app."""

from __future__ import annotations

import pytest

TRAIN_TEXTS = [
    "The capital of France is Paris.",
    "The cat sat on the mat.",
    "Two plus two is four.",
]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from distilltrace.models.tiny import make_tiny_model

    return make_tiny_model(
        tmp_path_factory.mktemp("tiny") / "tiny", train_texts=TRAIN_TEXTS, train_steps=20, seed=2
    )


@pytest.fixture(scope="session")
def tiny_model(tiny_dir):
    from distilltrace.models import load_model

    return load_model(str(tiny_dir))


@pytest.fixture(scope="session")
def client(tiny_model):
    from fastapi.testclient import TestClient

    from distilltrace.serve.app import create_app

    with TestClient(create_app(tiny_model), raise_server_exceptions=False) as c:
        yield c
