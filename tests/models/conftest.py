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
