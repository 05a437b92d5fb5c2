"""Shared fixtures for the distill tests: a briefly trained tiny teacher and its harvests."""

from __future__ import annotations

from pathlib import Path

import pytest

from distilltrace.distill.dataset import read_records
from distilltrace.distill.harvesting import harvest
from distilltrace.distill.prompts import generate_prompts


@pytest.fixture(scope="session")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny byte-level teacher trained for a few steps on fixed English text."""
    from distilltrace.models.tiny import make_tiny_model

    texts = [
        "Sure! The cat sat on the mat and looked at the moon. It was a quiet night.",
        "Sure! Water boils at one hundred degrees at sea level. Heat makes it move faster.",
        "Sure! A list keeps items in order. You can add, remove and sort the items.",
        "Sure! The train left the station at noon and arrived in the city at three.",
    ] * 4
    return make_tiny_model(
        tmp_path_factory.mktemp("teacher") / "t",
        tokenizer="byte",
        n_layers=2,
        hidden_size=64,
        seed=1,
        train_texts=texts,
        train_steps=30,
    )


@pytest.fixture(scope="session")
def teacher(teacher_dir: Path):
    from distilltrace.models import load_model

    return load_model(str(teacher_dir))


@pytest.fixture(scope="session")
def train_set(teacher, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The teacher's answers to 48 generated prompts."""
    out = tmp_path_factory.mktemp("harvest") / "train.jsonl"
    harvest(teacher, generate_prompts(48, seed=0), out, max_new_tokens=40, progress=False)
    return out


@pytest.fixture(scope="session")
def heldout(teacher, tmp_path_factory: pytest.TempPathFactory):
    """The teacher's answers to 12 other prompts (for measuring KL)."""
    train = {p.text for p in generate_prompts(48, seed=0)}
    prompts = [p for p in generate_prompts(40, seed=99) if p.text not in train][:12]
    out = tmp_path_factory.mktemp("heldout") / "heldout.jsonl"
    harvest(teacher, prompts, out, max_new_tokens=40, progress=False)
    return read_records(out)
