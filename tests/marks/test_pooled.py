"""Pooled detection per account/campaign: exact p with tuples de-duplicated across answers,
calibration on unmarked text under one key and under random keys (FPR <= alpha at 1e-2
and 1e-3, KS), power accumulating over answers, Holm across groups, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats as st

from distilltrace.cli import main
from distilltrace.errors import InputError
from distilltrace.marks.detect import MARKED
from distilltrace.marks.keys import write_key_file
from distilltrace.marks.pooled import answers_needed, detect_pooled, evidence_curve
from distilltrace.stats import binomial_slack

ALPHABET = [chr(c) for c in range(ord("a"), ord("a") + 12)]
ASCII = np.arange(5 + 32, 5 + 127)  # the byte tokenizer's printable ASCII ids


def _texts(rng, n, length):
    """Unmarked byte-token texts over a small alphabet (many repeated windows and tuples
    across answers, where naive pooling would count the same coin many times)."""
    return ["".join(rng.choice(ALPHABET, length)) for _ in range(n)]


@pytest.mark.parametrize("scheme", ["tournament", "greenlist", "gumbel"])
def test_pooled_is_calibrated_under_one_key(make_wm, byte_tok, scheme):
    """H0: every group's answers are independent of the key. 2,000 groups of 5 short
    answers: FPR <= alpha (+ binomial slack) at 1e-2 and 1e-3."""
    wm = make_wm(scheme)
    rng = np.random.default_rng(5)
    texts = _texts(rng, 10_000, 20)
    groups = [f"acct{i // 5}" for i in range(len(texts))]
    rep = detect_pooled(wm, texts, byte_tok, groups, min_scored=1)
    ps = np.array([g.test.pvalue for g in rep.groups])
    assert len(ps) == 2000
    for a in (1e-2, 1e-3):
        assert np.mean(ps <= a) <= a + binomial_slack(len(ps), a), (a, np.mean(ps <= a))
    assert st.kstest(ps, "uniform", alternative="greater").pvalue > 1e-3  # super-uniform
    assert rep.n_flagged_holm == 0


def test_pooled_is_calibrated_under_random_keys(make_wm, byte_tok):
    rng = np.random.default_rng(6)
    ps = []
    for _ in range(300):
        rep = detect_pooled(make_wm("tournament"), _texts(rng, 4, 30), byte_tok, min_scored=1)
        ps.append(rep.groups[0].test.pvalue)
    ps = np.array(ps)
    assert np.mean(ps <= 0.01) <= 0.01 + binomial_slack(len(ps), 0.01)
    assert st.kstest(ps, "uniform", alternative="greater").pvalue > 1e-3


def test_tuples_are_deduplicated_across_answers(make_wm, byte_tok):
    """The same answer repeated 50 times scores exactly its own tuples once."""
    wm = make_wm("tournament")
    one = detect_pooled(wm, ["the same answer, word for word"], byte_tok, min_scored=1)
    many = detect_pooled(wm, ["the same answer, word for word"] * 50, byte_tok, min_scored=1)
    a, b = one.groups[0].test, many.groups[0].test
    assert (a.n_scored, a.statistic, a.pvalue) == (b.n_scored, b.statistic, b.pvalue)
    assert b.n_duplicate == 49 * (a.n_scored + a.n_duplicate)


def test_evidence_accumulates_over_marked_answers(make_wm, byte_tok):
    """Weakly marked answers (a quarter of the tokens from the tournament, the rest uniform):
    single answers are weak, the pooled p-value falls with the number of answers."""
    from tests.marks.test_tournament import tournament_stream

    wm = make_wm("tournament", context_width=1)
    rng = np.random.default_rng(7)
    ids = [tournament_stream(wm, 40, rng, strength=0.25) for _ in range(30)]
    curve = evidence_curve(wm, ids)
    assert curve[-1] < curve[4] < -1 and curve[-1] < -6
    k = answers_needed(curve, 1e-6)
    assert k is not None and 1 < k <= 30 and curve[k - 1] <= -6
    assert answers_needed(curve, 1e-300) is None


def test_groups_are_holm_adjusted(make_wm, byte_tok):
    from tests.marks.test_tournament import tournament_stream

    wm = make_wm("tournament")
    rng = np.random.default_rng(8)
    marked = [byte_tok.decode(tournament_stream(wm, 120, rng, vocab=ASCII)) for _ in range(3)]
    texts = marked + _texts(rng, 3, 120)
    rep = detect_pooled(wm, texts, byte_tok, ["harvester"] * 3 + ["someone"] * 3)
    by = {g.group: g for g in rep.groups}
    assert by["harvester"].test.verdict == MARKED and by["harvester"].test.pvalue < 1e-6
    assert by["someone"].test.pvalue > 1e-3
    assert rep.n_flagged_holm == 1
    assert by["harvester"].holm_adjusted == pytest.approx(min(1.0, 2 * by["harvester"].test.pvalue))
    with pytest.raises(InputError, match="align"):
        detect_pooled(wm, texts, byte_tok, ["a"])


def _run(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def test_cli_group_column(make_wm, byte_tok, tmp_path, capsys, monkeypatch):
    from distilltrace.marks import cli as marks_cli
    from distilltrace.marks.secret import Secret
    from tests.marks.test_tournament import tournament_stream

    secret = Secret(bytes(range(40, 72)))
    from distilltrace.marks.keys import make_watermark
    from distilltrace.marks.schemes import SchemeParams

    wm = make_watermark(SchemeParams(), make_wm().tokenizer, secret)
    key = write_key_file(tmp_path / "k.json", wm, secret)
    monkeypatch.setattr(marks_cli, "_tokenizer_for", lambda wm, spec: byte_tok)
    rng = np.random.default_rng(9)
    rows = [
        {"response": byte_tok.decode(tournament_stream(wm, 80, rng, vocab=ASCII)), "account": "A"}
        for _ in range(3)
    ] + [{"response": t, "account": 7} for t in _texts(rng, 3, 80)]
    f = tmp_path / "h.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["marks", "detect", "--key", str(key), str(f), "--group-column", "account"]
    code, out, err = _run([*argv, "--out", str(tmp_path / "o")], capsys)
    assert code == 0, err
    assert "account='A': 3 text(s)" in out and "1 flagged" in out
    assert secret.hex() not in out + err
    res = json.loads((tmp_path / "o" / "result.json").read_text())
    assert {g["group"] for g in res["groups"]} == {"A", "7"}
    f.write_text(json.dumps({"response": "x"}) + "\n")
    code, _, err = _run(argv, capsys)
    assert code == 2 and "account" in err and "Traceback" not in err
