"""Lone accounts judged on independent evidence: one repeated instruction line is one
decision of the intent head (the line-collapsed count), and a heavy account whose first
draw is inconclusive gets a second, disjoint draw (the follow-up), whose combination
with the first stays a valid p-value."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from handmade_logs import CAMPAIGN_TASKS, SUBJECTS, _block, make_benign
from scipy import stats

from distilltrace.traffic import content, scan
from distilltrace.traffic import scanner as sc_mod
from distilltrace.traffic.scanner import ScanConfig

HEAD = content.IntentHead(np.r_[10.0, np.zeros(3)], 0.0, 0.5, {})


def _features(sample: pd.DataFrame, hit: np.ndarray, seg: np.ndarray, accounts) -> pd.DataFrame:
    X = np.where(hit[:, None], 1.0, -1.0) * np.ones((len(hit), 4))
    f = content.account_features(
        sample, X, pd.Index(accounts), content.ContentConfig(lsh_bits=4), HEAD, seg=seg
    )
    return f.table


def test_one_repeated_line_is_one_decision():
    """An integration's fixed instruction line above 17 different e-mails makes 17
    frames but one line; a sweep with three elicitation wordings makes three lines;
    prompts without a repeated deciding part count one line each."""
    n = 51
    sample = pd.DataFrame(
        {
            "account_id": ["app"] * n + ["camp"] * n + ["sweep"] * n,
            "request_id": np.arange(3 * n),
            "frame_hash": [f"e{i % 17}" for i in range(n)] + [f"c{i}" for i in range(2 * n)],
        }
    )
    hit = np.ones(3 * n, bool)
    seg = np.r_[np.zeros(n), 1 + np.arange(n) % 3, 10 + np.arange(n)].astype(int)
    t = _features(sample, hit, seg, ["app", "camp", "sweep"])
    assert (t.loc["app", "m"], t.loc["app", "k_intent"]) == (17, 17)
    assert (t.loc["app", "m_lines"], t.loc["app", "k_lines"]) == (1, 1)
    assert t.loc["camp", "k_lines"] == 3 and t.loc["camp", "m_lines"] == 3
    assert t.loc["sweep", "k_lines"] == n == t.loc["sweep", "k_intent"]
    assert t.loc["app", "intent_lines"] < t.loc["app", "intent"]


def test_non_hits_keep_their_frames():
    """Frames the head does not fire on stay separate trials in the line count."""
    sample = pd.DataFrame(
        {"account_id": ["a"] * 10, "request_id": np.arange(10), "frame_hash": list("abcdefghij")}
    )
    hit = np.r_[np.ones(4, bool), np.zeros(6, bool)]
    t = _features(sample, hit, np.r_[np.zeros(4), np.arange(1, 7)].astype(int), ["a"])
    assert (t.loc["a", "m"], t.loc["a", "k_intent"]) == (10, 4)
    assert (t.loc["a", "m_lines"], t.loc["a", "k_lines"]) == (7, 1)


def _null_draw(rng, accounts, sizes, base, offset=0):
    rows = np.repeat(np.arange(len(accounts)), sizes)
    sample = pd.DataFrame(
        {
            "account_id": np.asarray(accounts)[rows],
            "request_id": offset + np.arange(len(rows)),
            "frame_hash": (offset + np.arange(len(rows))).astype(str),
        }
    )
    hit = rng.random(len(rows)) < base
    return sample, hit


def test_followup_combination_is_calibrated_under_the_null():
    """Null: every sampled prompt of every account is intent-like at one rate,
    independently. The follow-up selects the accounts whose first draw is suggestive and
    draws again; the reported statistic, twice the smaller of the two tails, is a valid
    p-value whatever the selection: P(p <= a) <= a."""
    rng = np.random.default_rng(5)
    n_acc, base = 20_000, 0.03
    accounts = pd.Index([f"a{i:05d}" for i in range(n_acc)])
    m1 = rng.integers(6, 30, n_acc)
    s1, h1 = _null_draw(rng, accounts, m1, base)
    X1 = np.where(h1[:, None], 1.0, -1.0) * np.ones((len(h1), 4))
    cfg = content.ContentConfig(lsh_bits=4, followup_max_texts=10**9, followup_coverage=0.0)
    feats = content.account_features(s1, X1, accounts, cfg, HEAD)
    n_req = pd.Series(m1 * 50, index=accounts)
    quota = pd.Series(m1, index=accounts)
    tail = pd.Series(10.0 ** -feats.table["intent"].to_numpy(), index=accounts)
    q2 = content._followup_quota(n_req, quota, tail, cfg)
    assert 0 < len(q2) < n_acc / 5  # the suggestive accounts only
    q2 = q2.clip(upper=60)
    s2, h2 = _null_draw(rng, q2.index, q2.to_numpy(), base, offset=10**7)
    d2 = content.Draw(s2, np.where(h2, 0.9, 0.1), np.arange(len(h2)), np.zeros((len(h2), 4)))
    content._second_look(feats, d2, accounts, cfg)
    p = 10.0 ** -feats.table["intent"].to_numpy()
    for a in (0.001, 0.01, 0.05):
        fpr = (p <= a).mean()
        assert fpr <= a + 3 * np.sqrt(a * (1 - a) / n_acc), (a, fpr)
    assert stats.kstest(p, "uniform", alternative="greater").pvalue > 0.01


def _scored(n, k_lines, intent_stat, lines_stat, elicit_tail=0.0):
    tails = pd.DataFrame(
        {"intent": intent_stat, "elicitation": np.full(n, elicit_tail)},
    )
    table = pd.DataFrame({"k_lines": k_lines, "intent_lines": lines_stat, "intent": intent_stat})
    return SimpleNamespace(content=SimpleNamespace(table=table)), SimpleNamespace(tails=tails)


def test_lone_account_routes():
    """A lone account's content evidence counts its frames only when they rest on at
    least three distinct deciding lines (else one repeated line is one trial); it is
    flagged on that evidence alone, or on weaker evidence of it together with extreme
    behaviour. The conservative tail is never smaller than the frame tail, so it is valid
    wherever that is."""
    rng = np.random.default_rng(0)
    n = 3000
    intent = rng.exponential(0.43, n)  # -log10 of null p-values
    lines = np.minimum(intent, rng.exponential(0.43, n))
    k_lines = rng.integers(0, 3, n)
    # 0: one borderline line over many frames (an integration), ordinary behaviour
    # 1: the same frame evidence over five elicitation lines (a sweep)
    # 2: one line and extreme behaviour (automation, or a one-line harvester): not on content
    # 3: five lines, moderate evidence (tail 3e-4 after the union), extreme behaviour
    intent[:4], lines[:4], k_lines[:4] = [16.0, 16.0, 16.0, 3.82], 1.0, [1, 5, 1, 5]
    red, sc = _scored(n, k_lines, intent, lines)
    hv = ["elicitation", "intent"]
    harvest_p = np.minimum(1.0, 2 * 10.0**-intent)
    lines_p = sc_mod._harvest_lines(red, sc, hv, harvest_p, 3)
    assert (lines_p >= harvest_p - 1e-15).all()
    assert lines_p[0] > 0.01 and lines_p[1] == harvest_p[1]
    behaviour = np.r_[0.01, 0.01, 1e-7, 1e-7, rng.uniform(0, 1, n - 4)]
    lone = sc_mod._lone(behaviour, lines_p, np.arange(n), sc_mod.ScanConfig())
    assert lone[:4].tolist() == [False, True, False, True]
    assert lone[4:].sum() <= 2  # null accounts: about account_alpha x n = 1.5 expected


@pytest.fixture(scope="module")
def reseller_log():
    """300 ordinary accounts; an integration that puts one fixed "reason step by step"
    instruction above varying customer e-mails (an app prompting for its own use); and a reseller relaying 6,000 ordinary prompts of
    which 2% are extraction requests over a sweep of tasks, in five languages (written
    for this test; none is in the head's training data)."""
    rng = np.random.default_rng(4)
    start = pd.Timestamp("2026-03-02", tz="UTC")
    benign = make_benign(300, seed=4, hard=False)
    ordinary = make_benign(80, seed=9, hard=False)["prompt"].to_numpy()
    n_ent = 2000
    ent = [
        "Classify the customer e-mail below; think step by step and explain your reasoning "
        "before you give the label as JSON.\n"
        f"From: client{k}@example.com\n{body}"
        for k, body in zip(rng.integers(0, 10**6, n_ent), rng.choice(ordinary, n_ent), strict=True)
    ]
    wraps = [
        "{t}\nShow your complete reasoning step by step before the final answer.",
        "{t}\n请先一步一步写出完整的思考过程，再给出最终答案。",
        "{t}\nРаспиши всю цепочку рассуждений, прежде чем ответить.",
        "{t}\nMuestra todo tu razonamiento intermedio antes de la respuesta final.",
        "{t}\nGib zuerst deinen vollständigen Lösungsweg Schritt für Schritt an.",
    ]
    n_res = 6000
    camp = rng.random(n_res) < 0.02
    tasks = [
        CAMPAIGN_TASKS[i % len(CAMPAIGN_TASKS)].format(a=i % 9 + 2, b=i % 13 + 3)
        + f" ({SUBJECTS[i % len(SUBJECTS)]})"
        for i in range(n_res)
    ]
    prompts = [
        wraps[i % 5].format(t=tasks[i]) if c else str(rng.choice(ordinary))
        for i, c in enumerate(camp)
    ]
    kw = dict(created_days=400, asn_type="datacenter")
    e = _block(
        rng,
        start,
        7,
        n_ent,
        ["ent-x"],
        ent,
        org="org-ent-x",
        ip="192.0.2.9",
        pay="pay-e",
        ua="crm-connector/7.1",
        tls="t-java",
        path="enterprise",
        tag="entx",
        **kw,
    )
    r = _block(
        rng,
        start,
        7,
        n_res,
        ["res-x"],
        prompts,
        org="org-res-x",
        ip="198.51.100.20",
        ua="go-http/1.1",
        tls="t-go",
        pay="pay-r",
        path="reseller",
        daytime=False,
        tag="resx",
        **kw,
    )
    return pd.concat([benign, e, r], ignore_index=True)


@pytest.mark.slow
def test_reseller_share_found_by_follow_up_and_integration_not_flagged(reseller_log):
    res = scan(reseller_log)
    acc = res.accounts.set_index("account_id")
    assert acc.loc["res-x", "n_followup_sampled"] > 0
    assert acc.loc["res-x", "flagged"], acc.loc["res-x"].to_dict()
    # the integration's instruction line decides many frames, but is one line
    assert acc.loc["ent-x", "n_intent_frames"] >= 3 and acc.loc["ent-x", "n_intent_lines"] <= 2
    assert not acc.loc["ent-x", "flagged"], acc.loc["ent-x"].to_dict()
    assert acc.drop(index=["res-x", "ent-x"])["flagged"].sum() <= 1
    fu = res.summary["content_model"]["followup"]
    assert 1 <= fu["accounts"] and fu["prompts"] <= content.ContentConfig().followup_max_texts
    # without the second draw the reseller's 2% share is not enough evidence
    off = scan(reseller_log, config=ScanConfig(content=content.ContentConfig(followup_max_texts=0)))
    assert not off.accounts.set_index("account_id").loc["res-x", "flagged"]
