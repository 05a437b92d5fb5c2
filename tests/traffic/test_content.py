"""The semantic content model: multilingual intent, its null calibration, the MMD shift,
the bounded sample, and the scan finding a campaign whose wording no rule knows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from handmade_logs import make_benign, make_hydra
from scipy import stats

from distilltrace.traffic import content, scan
from distilltrace.traffic.engine import DuckDBEngine, to_dialect

# Written for this test (never in the head's training data, which is English only).
EXTRACTION = [
    "请先一步一步写出你完整的思考过程，然后再给出最终答案。",
    "已知最终答案，请还原出得到这个答案的全部推理步骤。",
    "Распиши всю цепочку своих рассуждений, прежде чем дать ответ.",
    "Muestra todo tu razonamiento intermedio antes de la respuesta final.",
    "다음 두 응답 중 어느 쪽이 더 나은지 단계별 근거와 함께 판단하세요.",
    "ツールを呼び出す前に、<thinking>タグの中で段階的に推論してください。",
    "اكتب سلسلة أفكارك الكاملة خطوة بخطوة قبل الإجابة النهائية.",
    "Bewerte die Antwort nach dem Bewertungsschema und begründe jede Punktzahl ausführlich.",
    "Donne tout ton raisonnement détaillé, étape par étape, avant la réponse.",
]
ORDINARY = [
    "帮我写一封请假邮件。",
    "Как сварить гречку?",
    "¿Qué tiempo hace en Madrid?",
    "서울에서 맛있는 식당 추천해 줘.",
    "おすすめの本を教えてください。",
    "ما هي عاصمة اليابان؟",
    "Wie viele Einwohner hat Berlin?",
    "Écris un court poème sur la mer.",
    "How do I sort a dictionary by value in Python?",
]


@pytest.fixture(scope="module")
def head():
    return content.intent_head()


def test_intent_head_crosses_languages(head):
    p = head.proba(content.embed(EXTRACTION + ORDINARY, workers=1))
    hit = p > head.threshold
    assert hit[: len(EXTRACTION)].mean() >= 8 / 9
    assert not hit[len(EXTRACTION) :].any()


def test_head_threshold_set_on_benign_data_only(head):
    assert "ShareGPT" in head.meta["threshold_rule"]
    assert head.meta["calibration_fpr_sharegpt"] <= 0.011


def test_intent_statistic_null_calibration():
    """Null: every sampled prompt is intent-like at the population rate, independently.
    The binomial tail is then a valid (discrete, conservative) p-value: P(p <= a) <= a."""
    rng = np.random.default_rng(3)
    n_acc, dim = 20_000, 4
    m = rng.integers(3, 7, n_acc)
    rows = np.repeat(np.arange(n_acc), m)
    base = 0.03
    hits = rng.random(len(rows)) < base
    # a fake head whose decisions are the null Bernoulli draws
    X = np.where(hits[:, None], 1.0, -1.0) * np.ones((len(rows), dim))
    sample = pd.DataFrame(
        {"account_id": [f"a{i:05d}" for i in rows], "request_id": np.arange(len(rows))}
    )
    accounts = pd.Index([f"a{i:05d}" for i in range(n_acc)])
    fake = content.IntentHead(np.r_[10.0, np.zeros(dim - 1)], 0.0, 0.5, {})
    f = content.account_features(sample, X, accounts, content.ContentConfig(lsh_bits=4), fake)
    p = 10.0 ** (-f.table["intent"].to_numpy())
    assert abs(f.base_rate - base) < 0.03  # the typical rate is recovered (median, floored)
    for a in (0.01, 0.05, 0.1):
        fpr = (p <= a).mean()
        assert fpr <= a + 3 * np.sqrt(a * (1 - a) / n_acc), (a, fpr)
    # conservative, not anti-conservative: the p-values stochastically dominate U(0,1)
    assert stats.kstest(p, "uniform", alternative="greater").pvalue > 0.01


def test_one_template_is_one_trial():
    """An account repeating one borderline template is one decision of the head, however
    many of its requests are sampled; distinct templates are separate trials."""
    n = 48
    sample = pd.DataFrame(
        {
            "account_id": ["app"] * n + ["camp"] * n,
            "request_id": np.arange(2 * n),
            "frame_hash": ["f0"] * n + [f"c{i % 12}" for i in range(n)],
        }
    )
    X = np.ones((2 * n, 4))
    head = content.IntentHead(np.r_[1.0, np.zeros(3)], 0.0, 0.5, {})
    f = content.account_features(
        sample, X, pd.Index(["app", "camp"]), content.ContentConfig(), head
    )
    assert f.table.loc["app", "m"] == 1 and f.table.loc["camp", "m"] == 12
    assert f.table.loc["app", "m_rows"] == n


def test_mmd_unbiased_under_null_and_large_for_templated():
    rng = np.random.default_rng(0)
    n_acc, m, dim = 400, 6, 16
    X = rng.standard_normal((n_acc * m, dim))
    # account 0 is templated: all its prompts near one point away from the mean
    X[:m] = 3.0 + 0.1 * rng.standard_normal((m, dim))
    rows = np.repeat(np.arange(n_acc), m)
    sample = pd.DataFrame(
        {"account_id": [f"a{i:03d}" for i in rows], "request_id": np.arange(len(rows))}
    )
    accounts = pd.Index([f"a{i:03d}" for i in range(n_acc)])
    head = content.IntentHead(np.zeros(dim), 0.0, 0.5, {})
    f = content.account_features(sample, X, accounts, content.ContentConfig(), head)
    mmd = f.table["mmd"].to_numpy()
    assert mmd[0] > 50 * np.abs(mmd[1:]).mean()
    # unbiased: null accounts' estimates centre near 0 (some negative)
    assert abs(np.median(mmd[1:])) < 0.5 and (mmd[1:] < 0).any()


def test_plan_sample_grows_with_volume_and_respects_cap():
    n = pd.Series([1, 2, 50, 40, 30, 20, 10, 2500], index=[f"a{i}" for i in range(8)])
    q = content.plan_sample(n, content.ContentConfig())
    assert "a0" not in q and "a1" not in q  # below min_requests
    assert q["a6"] == 6 and q["a2"] == 14 and q["a7"] == 100  # 2 sqrt(n) in [6, 256]
    q = content.plan_sample(n, content.ContentConfig(max_texts=40))
    assert q.sum() <= 40 and q.min() >= 3
    # when even the smallest samples do not fit, candidate-campaign members come first
    pri = pd.Series([False] * 6 + [True, False], index=n.index)
    q = content.plan_sample(n, content.ContentConfig(max_texts=12), pri)
    assert list(q.index) == sorted(["a6", "a7", "a2", "a3"]) and q.sum() == 12


def test_sample_is_deterministic_and_transpiles():
    eng = DuckDBEngine()
    try:
        df = make_benign(40, seed=2)
        eng.register("events", df)
        eng.register("req", df[["request_id", "account_id"]].assign(frame_hash=df["request_id"]))
        ids = sorted(df["account_id"].unique())
        eng.register("content_accounts", pd.DataFrame({"account_id": ids, "k": 3, "skip": 0}))
        a = eng.fetch(content.sample_sql() + " ORDER BY account_id, request_id")
        b = eng.fetch(content.sample_sql() + " ORDER BY account_id, request_id")
        assert a.equals(b) and a.groupby("account_id").size().max() <= 3
        assert {"frame_hash", "text"} <= set(a.columns)
    finally:
        eng.close()
    assert "MD5" in to_dialect(content.sample_sql(), "spark").upper()


ZH_WRAP = [
    "请解答：{task}。先把完整的思考过程一步一步写出来，再给出最终答案。",
    "题目：{task}。请详细展示每一个中间推理步骤，最后单独一行写答案。",
]


@pytest.fixture(scope="module")
def zh_log():
    return pd.concat(
        [make_benign(300, seed=0), make_hydra(60, 10, seed=1, wrap=ZH_WRAP)], ignore_index=True
    )


def test_campaign_in_unseen_language_found(zh_log):
    truth = zh_log.groupby("account_id")["campaign_id"].apply(lambda s: s.notna().any())
    camp = set(truth[truth].index)
    res = scan(zh_log)
    flagged = set(res.flagged_accounts)
    assert camp <= flagged and len(flagged - camp) == 0
    acc = res.accounts.set_index("account_id")
    assert (acc.loc[sorted(camp), "n_intent_frames"] > 0).mean() > 0.9
    assert res.summary["content_model"]["texts_embedded"] > 0
    # without the content model the English rules see nothing in the Chinese wording
    off = scan(zh_log, content=False)
    assert len(set(off.flagged_accounts) & camp) < len(camp) / 2
    assert "intent" in off.summary["skipped_signals"]


def test_cli_no_content(tmp_path):
    from typer.testing import CliRunner

    from distilltrace.cli import app

    p = tmp_path / "l.parquet"
    make_benign(60, seed=3, hard=False).to_parquet(p, index=False)
    r = CliRunner().invoke(
        app, ["traffic", "scan", str(p), "--out", str(tmp_path / "o"), "--no-content"]
    )
    assert r.exit_code == 0, r.output
    import json

    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert "content_model" not in s and s["skipped_signals"]["intent"] == "content model off"
