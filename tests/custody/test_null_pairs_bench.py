"""The null-pair benchmark's plan (benchmarks/custody_null_pairs.py): which student is
tested against which controls, and the reverse test's evidence it reports."""

from __future__ import annotations

import pytest

from benchmarks.custody_null_pairs import CONTROLS, NULL, pairs, reverse_advantage


def test_each_null_student_is_tested_against_the_other_three_and_never_the_harvested():
    ps = pairs()
    assert ps[0] == ("harvested", list(CONTROLS))
    assert [s for s, _ in ps[1:]] == list(NULL)
    for s, ctl in ps[1:]:
        assert len(ctl) == 3 and s not in ctl and "harvested" not in ctl
        assert set(ctl) | {s} == set(NULL)


def test_reverse_advantage_is_the_suspect_minus_each_control_before_the_margin():
    class Rev:
        details = {"suspect_score_of_reference": -0.40, "margin": 0.05,
                   "control_scores_of_reference": {"a": -0.45, "b": -0.39}}  # fmt: skip

    got = reverse_advantage(Rev)
    assert got == {"a": pytest.approx(0.05), "b": pytest.approx(-0.01)}
    assert reverse_advantage(None) == {}
