"""The served-versus-fresh benchmark's statistics (benchmarks/custody_served_vs_fresh.py)."""

from __future__ import annotations

import random

import pytest

from benchmarks.custody_served_vs_fresh import paired_t, served_above_fresh


def test_the_served_share_counts_pairs_of_one_prompt_and_ties_half():
    # prompt 0: served 3 and 1 against fresh 2 and 2 -> 2 of 4 pairs; prompt 1: all ties
    assert served_above_fresh([[3.0, 1.0, 2.0, 2.0], [0.5, 0.5, 0.5, 0.5]], 2) == [0.5, 0.5]
    assert served_above_fresh([[3.0, 4.0, 1.0, 2.0]], 2) == [1.0]
    assert served_above_fresh([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]], 3) == [0.0]


def test_the_share_is_a_half_when_served_and_fresh_are_one_distribution():
    """Null: served and fresh scores are draws of one distribution; over 400 prompts x 4 x 4
    pairs the mean share stays within 4 standard errors of 1/2 and its t is small."""
    rng = random.Random(0)
    scores = [[rng.gauss(0, 1) for _ in range(8)] for _ in range(400)]
    share = served_above_fresh(scores, 4)
    t = paired_t([s - 0.5 for s in share])
    assert abs(t["t"]) < 4 and t["n"] == 400
    shifted = [[x + (0.5 if j < 4 else 0.0) for j, x in enumerate(sc)] for sc in scores]
    assert paired_t([s - 0.5 for s in served_above_fresh(shifted, 4)])["t"] > 6


def test_paired_t_of_equal_differences_is_zero_not_a_division_error():
    assert paired_t([0.0, 0.0, 0.0])["t"] == 0.0
    got = paired_t([1.0, 2.0, 3.0])
    assert got["mean"] == pytest.approx(2.0) and got["t"] == pytest.approx(2.0 / (1.0 / 3**0.5))
