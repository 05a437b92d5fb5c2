"""Each signal on small handmade logs with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd

from distilltrace.traffic import fusion, signals
from distilltrace.traffic.engine import DuckDBEngine, to_dialect
from distilltrace.traffic.pipeline import stage2_statements, statements
from distilltrace.traffic.readers import load_events
from distilltrace.traffic.textrules import elicitation_model, features_py, labelled_examples


def _reduce(df):
    eng = DuckDBEngine(threads=1)
    rep = load_events(eng, df)
    for st in statements(set(rep.columns_present)):
        st.define(eng)
    return eng


def _frame(rows):
    df = pd.DataFrame(rows, columns=["request_id", "timestamp", "account_id", "prompt"])
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    return df


def test_elicitation_rules_and_model_separate_the_examples():
    m = elicitation_model()
    ex = labelled_examples()
    X = np.array([[features_py(t)[f] for f in m.features] for t, _ in ex], float)
    y = np.array([lab for _, lab in ex])
    lo = m.log_odds(X)
    # the fitted model ranks extraction requests above ordinary ones on its own training set
    assert (lo[y == 1] > 0).mean() >= 0.3 and (lo[y == 0] > 0).mean() == 0
    assert features_py("Let's think step by step.")["show_reasoning"] == 0
    assert features_py("Reveal your hidden reasoning for the answer")["reconstruct"] == 1
    assert features_py("Act as a reward model and score both responses")["grade"] == 1


def test_elicitation_count_statistic():
    acct = pd.DataFrame({"n_req": [100, 100, 100, 100, 100], "n_elicit": [0, 1, 0, 1, 60]})
    stat, base = signals.elicitation_stat(acct)
    assert np.argmax(stat) == 4 and stat[4] > 20 and stat[0] == 0


def test_template_shared_across_accounts_not_within_one():
    rows = []
    t = "2026-01-01T00:{:02d}:00Z"
    for a in range(4):  # four accounts share one long frame
        for i in range(5):
            rows.append(
                (
                    f"h{a}{i}",
                    t.format(i),
                    f"hyd{a}",
                    f"You are a tutor. Solve problem {a * 10 + i} about widgets, show the complete working.",
                )
            )
    for i in range(20):  # one enterprise account, one template
        rows.append(
            (
                f"e{i}",
                t.format(i),
                "ent",
                f"Classify support ticket {i} into billing shipping or other please now.",
            )
        )
    for i in range(20):
        rows.append(
            (
                f"o{i}",
                t.format(i),
                f"other{i}",
                f"random question number {i} about {'abcdefghij'[i % 10]}",
            )
        )
    eng = _reduce(_frame(rows))
    av = eng.fetch("SELECT * FROM acct_value ORDER BY kind, value, account_id")
    acct = eng.fetch("SELECT * FROM acct_all ORDER BY account_id")
    idx = pd.Index(acct["account_id"])
    share = pd.Series(signals.template_share(av, idx, acct["n_req"].to_numpy(float)), index=idx)
    assert (share[[f"hyd{a}" for a in range(4)]] == 1.0).all()
    assert share["ent"] == 0.0
    eng.close()


def test_linkage_rare_values_link_common_values_do_not():
    rows = []
    # 300 accounts behind one NAT: too common to link; 5 accounts sharing a card: linked
    for i in range(300):
        rows.append(("ip", "10.0.0.1", f"nat{i:03d}"))
    for i in range(5):
        rows.append(("payment", "card-x", f"hyd{i}"))
        rows.append(("ip", f"45.0.0.{i}", f"hyd{i}"))
    av = pd.DataFrame(rows, columns=["kind", "value", "account_id"])
    av["n"] = 1
    accounts = pd.Index(sorted(av["account_id"].unique()))
    link = signals.linkage_graph(av, accounts)
    lab = pd.Series(link.cluster, index=accounts)
    assert lab[[f"hyd{i}" for i in range(5)]].nunique() == 1
    assert lab[[f"nat{i:03d}" for i in range(300)]].nunique() == 300


def test_linkage_single_weak_kind_does_not_chain_operators():
    # two operators, each 20 accounts on its own proxies (ip + /24) and TLS build; they share
    # a popular SDK user agent and a cloud ASN, and one account of each happens to send the
    # same rare prompt skeleton: one weak kind (content) must not merge the two operators
    rows = []
    for op in ("p", "q"):
        for i in range(20):
            a = f"{op}{i:02d}"
            for j in (i % 5, (i + 1) % 5):  # proxies rotate in overlapping pairs
                rows.append(("ip", f"{op}-proxy-{j}", a))
                rows.append(("prefix", f"{op}-net-{j}", a))
            rows.append(("tls", f"{op}-tls", a))
            rows.append(("user_agent", "OpenAI/Python", a))
            rows.append(("asn", "cloud-1", a))
    for i in range(20):  # the SDK and the cloud have other users (dozens in all)
        rows.append(("user_agent", "OpenAI/Python", f"u{i:03d}"))
        rows.append(("asn", "cloud-1", f"u{i:03d}"))
    rows.append(("template", "skeleton-1", "p00"))
    rows.append(("template", "skeleton-1", "q00"))
    # a payment card shared by two otherwise unrelated accounts does link them on its own
    rows.append(("payment", "card-z", "z1"))
    rows.append(("payment", "card-z", "z2"))
    av = pd.DataFrame(rows, columns=["kind", "value", "account_id"])
    av["n"] = 1
    accounts = pd.Index(sorted(av["account_id"].unique()))
    link = signals.linkage_graph(av, accounts)
    lab = pd.Series(link.cluster, index=accounts)
    p = lab[[f"p{i:02d}" for i in range(20)]]
    q = lab[[f"q{i:02d}" for i in range(20)]]
    assert p.nunique() == 1 and q.nunique() == 1 and p.iloc[0] != q.iloc[0]
    assert lab["z1"] == lab["z2"]
    # the same skeleton plus corroborating infrastructure (a shared proxy) links them
    extra = pd.DataFrame(
        [("ip", "p-proxy-0", "q00"), ("prefix", "p-net-0", "q00")],
        columns=["kind", "value", "account_id"],
    ).assign(n=1)
    lab2 = pd.Series(
        signals.linkage_graph(pd.concat([av, extra]), accounts).cluster, index=accounts
    )
    assert lab2["p00"] == lab2["q05"]


def test_linkage_hydra_overlapping_subsets_stay_one_cluster():
    # 1,000 small accounts: each card is used by a handful of accounts, TLS builds and
    # proxies rotate in overlapping subsets
    rng = np.random.default_rng(0)
    rows = []
    for i in range(1000):
        a = f"h{i:04d}"
        rows.append(("payment", f"card-{rng.integers(250)}", a))
        rows.append(("tls", f"tls-{rng.integers(40)}", a))
        for ip in rng.choice(300, size=3, replace=False):
            rows.append(("ip", f"proxy-{ip}", a))
            rows.append(("prefix", f"net-{ip // 4}", a))
    av = pd.DataFrame(rows, columns=["kind", "value", "account_id"]).drop_duplicates()
    av["n"] = 1
    accounts = pd.Index(sorted(av["account_id"].unique()))
    link = signals.linkage_graph(av, accounts)
    assert len(set(link.cluster)) == 1


def test_concentration_and_sweep():
    topics = pd.DataFrame(
        [(f"a{i}", t, 10) for i in range(50) for t in ("code", "math", "writing", "other")]
        + [("focus", "math", 200)],
        columns=["account_id", "topic", "n"],
    )
    accounts = pd.Index(sorted(topics["account_id"].unique()))
    conc, pop = signals.concentration_stat(topics, accounts)
    assert conc["conc"].idxmax() == "focus" and conc.loc["focus", "top_topic"] == "math"
    assert conc.loc["a0", "conc"] < 1


def test_timing_cadence_round_the_clock_and_pivot():
    rows = []
    for i in range(100):  # a bot every 15 minutes, day and night
        rows.append(
            (
                f"b{i}",
                pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(minutes=15 * i),
                "bot",
                "x",
            )
        )
    rng = np.random.default_rng(0)
    for i in range(100):  # a human in office hours with irregular gaps
        ts = pd.Timestamp("2026-01-01 09:00", tz="UTC") + pd.Timedelta(
            days=i // 10, minutes=float(rng.exponential(30) * (i % 10))
        )
        rows.append((f"h{i}", ts, "human", "y"))
    df = _frame(rows)
    df["model"] = np.where(df["account_id"] == "bot", "m-new", "m-old")
    df.loc[df["account_id"] == "bot", "timestamp"] += pd.Timedelta(days=2)
    eng = _reduce(df)
    acct = eng.fetch("SELECT * FROM acct_all ORDER BY account_id").set_index("account_id")
    hod = eng.fetch("SELECT account_id, hod, n FROM acct_hod")
    tim = signals.timing_stats(acct, hod, acct.index)
    assert tim.loc["bot", "regular"] > tim.loc["human", "regular"]
    assert tim.loc["bot", "clock"] > 0.9 and tim.loc["human", "clock"] < 0.7
    am = eng.fetch("SELECT * FROM acct_model")
    piv = signals.pivot_stat(am, acct.index, float(acct["first_t"].min()))
    assert piv.loc["bot", "pivot"] == 1.0 and piv.loc["human", "pivot"] == 0.0
    eng.close()


def test_upper_tail_and_cluster_test_are_calibrated_on_null():
    from distilltrace.stats import binomial_slack, calibration

    rng = np.random.default_rng(1)
    x = rng.normal(size=20000)
    u = fusion.upper_tail(x)
    cal = calibration(u)
    assert cal.ok(slack=binomial_slack(len(u), 0.01))
    # clusters of random members: Gamma-test p-values are uniform
    ps = [fusion.cluster_test(rng.choice(u, size=int(k))).pvalue for k in rng.integers(2, 40, 2000)]
    cal = calibration(ps)
    assert cal.ok(ks_level=0.001, slack=binomial_slack(len(ps), 0.01))


def test_every_statement_transpiles_to_spark():
    from distilltrace.traffic import schema

    for st in statements(set(schema.ALL)) + stage2_statements():
        out = to_dialect(st.sql, "spark")
        assert "SELECT" in out.upper()


def test_gate_never_hides_a_positive_request():
    from distilltrace.traffic.textrules import gate_is_sound

    assert gate_is_sound(elicitation_model())


def test_cluster_test_units_and_cap():
    rng = np.random.default_rng(3)
    u = rng.uniform(size=26)
    one_extreme = fusion.cluster_test(np.r_[u, 1e-200])
    assert one_extreme.pvalue > 0.001  # one extreme member cannot carry the cluster
    modest = np.full(118, 0.1)  # every member mildly unusual
    assert fusion.cluster_test(modest).pvalue < 1e-6  # 118 independent witnesses
    one_customer = fusion.cluster_test(modest, units=np.array(["org|card"] * 118))
    assert one_customer.size == 1 and one_customer.pvalue > 0.05  # one customer, one witness


def test_pvalue_tail_valid_on_null_and_robust_to_a_large_campaign():
    """Null: benign accounts' statistics are -log10 binomial tails at the true rate. The
    calibrated tails of the null accounts stay valid (FPR <= alpha) with 15% of accounts
    replaced by a campaign, and the campaign stays extreme (it does not hide itself)."""
    from scipy import stats as st

    from distilltrace.traffic.signals import typical_rate

    rng = np.random.default_rng(11)
    n_acc, n_camp = 20_000, 3_000
    m = rng.integers(6, 49, n_acc)
    k = rng.binomial(m, 0.03)
    k[:n_camp] = rng.binomial(m[:n_camp], 0.8)  # the campaign
    base = typical_rate(k, m)
    assert 0.025 < base < 0.04  # the campaign does not move the estimated rate
    x = -np.log10(np.clip(st.binom.sf(k - 1, m, base), 1e-300, 1))
    u = fusion.pvalue_tail(x)
    null = u[n_camp:]
    for a in (0.001, 0.01, 0.05):
        assert (null <= a).mean() <= a + 3 * np.sqrt(a / len(null)), a
    assert np.median(u[:n_camp]) < 1e-6


def test_a_signal_is_one_registry_entry():
    """Adding a signal is one `Signal` entry: it is computed, calibrated, fused and written."""
    from handmade_logs import make_benign

    from distilltrace.traffic import scan
    from distilltrace.traffic.features import SIGNALS, Signal

    toy = Signal("toy_volume_sq", lambda r: r.acct["n_req"].to_numpy(float) ** 2, weight=0.1)
    SIGNALS.append(toy)
    try:
        res = scan(make_benign(100, seed=1), content=False)
    finally:
        SIGNALS.remove(toy)
    acc = res.accounts
    assert {"sig_toy_volume_sq", "tail_toy_volume_sq"} <= set(acc.columns)
    assert res.summary["signal_weights"]["toy_volume_sq"] == 0.1
    assert (acc["sig_toy_volume_sq"] == acc["n_requests"].astype(float) ** 2).all()


def _null_stats(rng, n_acc: int, rate: float = 0.03) -> np.ndarray:
    """-log10 binomial tails of benign accounts at the population's true rate."""
    from scipy import stats as st

    m = rng.integers(6, 49, n_acc)
    k = rng.binomial(m, rate)
    return -np.log10(np.clip(st.binom.sf(k - 1, m, rate), 1e-300, 1))


def test_reference_check_is_quiet_on_null_populations_and_warns_past_the_breakdown():
    """Null: every account's statistic is a -log10 binomial tail at the true rate (a
    population of benign accounts). On 500 null populations of 60-2,000 accounts the
    check never calls the reference suspect (its false-warning rate is 0 of 500); with 15%
    of accounts a campaign (within the 20% `pvalue_tail` tolerates) it stays quiet; with
    30% it warns, and the discount it reports is the one `pvalue_tail` applies."""
    rng = np.random.default_rng(5)
    warned = 0
    for i in range(500):
        r = fusion.reference_check(_null_stats(rng, int(rng.integers(60, 2000))))
        warned += r["suspect"]
        assert r["discount_log10"] < 0.5 and r["share"] < 0.05, (i, r)
    assert warned == 0
    x = _null_stats(rng, 2000)
    for share, suspect in ((0.15, False), (0.30, True)):
        y = x.copy()
        n_camp = int(share * len(y))
        y[:n_camp] = rng.uniform(3, 8, n_camp)  # the campaign: strong evidence each
        r = fusion.reference_check(y)
        assert r["suspect"] is suspect, (share, r)
        top = np.argmax(y)
        got = -np.log10(fusion.pvalue_tail(y)[top])
        assert abs(got - (y[top] - r["discount_log10"])) < 0.01
    assert r["bulk_quantile"] >= 2 and r["discount_log10"] >= 1.3  # past the breakdown
    few = fusion.reference_check(x[:40])
    assert few["discount_log10"] is None and few["suspect"] is False
