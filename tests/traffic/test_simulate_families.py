"""Simulator families: wording x language campaigns, family selection and hold-out, benign
look-alikes, the new archetypes' infrastructure, real prompts in the background."""

from __future__ import annotations

import re

import numpy as np
import pyarrow.parquet as pq
import pytest

from distilltrace.errors import InputError
from distilltrace.traffic.simulate import (
    ARCHETYPES,
    LANGUAGES,
    LOOKALIKES,
    WORDINGS,
    SimConfig,
    families,
    family_config,
    simulate,
    truth_of,
)
from distilltrace.traffic.simulate import wordings as W
from distilltrace.traffic.simulate.langs import pack
from distilltrace.traffic.simulate.network import CLIENT_INDEX, ClientTable

SLOT = re.compile(r"\{(item|answer|resp_a|resp_b|response|rubric|scale|tools|open|close)\}")
CJK = re.compile(r"[\u4e00-\u9fff]")
LINKS = [
    "client_ip",
    "tls_fingerprint",
    "user_agent",
    "payment_fingerprint",
    "org_id",
    "api_key_id",
]


@pytest.fixture(scope="module")
def sim():
    tbl = simulate(2500, 7, seed=3)
    return tbl.to_pandas(), truth_of(tbl)


def _camp(df, truth, arche):
    c = next(c for c in truth["campaigns"] if c["archetype"] == arche)
    return df[df["campaign_id"] == c["campaign_id"]], c


def test_families_and_family_config():
    f = families()
    assert f["archetypes"] == list(ARCHETYPES) and len(ARCHETYPES) == 10
    assert f["wordings"] == list(WORDINGS) and len(WORDINGS) == 7
    assert f["languages"] == list(LANGUAGES) and set(LANGUAGES) >= {"en", "zh", "ar", "ko"}
    assert {"chat_relay", "research_burst", "eval_harness"} <= set(f["lookalikes"])
    only = family_config("wordings", "reconstruct", n_accounts=500, seed=2)
    assert only.wordings == ("reconstruct",) and only.n_accounts == 500 and only.seed == 2
    held = family_config("languages", ["zh", "ko"], hold_out=True)
    assert set(held.languages) == set(LANGUAGES) - {"zh", "ko"}
    assert family_config("archetypes", "pool_farm").campaigns == ("pool_farm",)
    assert "chat_relay" not in family_config("lookalikes", "chat_relay", hold_out=True).lookalikes
    with pytest.raises(InputError):
        family_config("wordings", "bogus")
    with pytest.raises(InputError):
        family_config("colours", "red")
    with pytest.raises(InputError):
        SimConfig(languages=("xx",)).validate()
    with pytest.raises(InputError):
        SimConfig(wordings=()).validate()  # campaigns need a wording


def test_small_populations_fit():
    from distilltrace.traffic.simulate.population import build_population

    for n in (300, 1000):
        pop = build_population(n, 2, seed=0)
        assert pop.n == n
        assert len(pop.groups[-1].accounts) >= 0.15 * n  # room left for individuals
    with pytest.raises(InputError):
        SimConfig(n_accounts=299).validate()


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_wording_template_renders(language):
    rng = np.random.default_rng(7)
    lp = pack(language)
    for wording in WORDINGS:
        texts = W.render_all(rng, wording, language, per=3).to_pylist()
        assert len(texts) == 3 * len(lp.families[wording]) >= 24
        for t in texts:
            assert t.strip() and not SLOT.search(t), (wording, language, t)
        if language in ("zh", "ja"):
            assert all(CJK.search(t) for t in texts)


def test_scripted_spec_is_a_house_style():
    rng = np.random.default_rng(1)
    spec = W.make_spec(rng, "agentic_think", "de", "scripted", (0.0, 0.0, 1.0))
    assert 3 <= len(spec.templates) <= 5 and spec.tag >= 0
    text = W.campaign_text(rng, spec, 400).to_pylist()
    open_tag = W.TAGS[spec.tag][0]
    assert all(open_tag in t for t in text)  # one thinking-tag convention per operator
    assert len(set(text)) > 350  # the items still vary


def test_language_and_wording_selection():
    tbl = simulate(400, 2, seed=1, languages=("zh",), wordings=("reconstruct", "preference_ab"))
    truth = truth_of(tbl)
    assert {c["language"] for c in truth["campaigns"]} == {"zh"}
    assert {c["wording"] for c in truth["campaigns"]} <= {"reconstruct", "preference_ab"}
    assert {c["archetype"] for c in truth["campaigns"]} == set(ARCHETYPES)
    camp = tbl.filter(tbl["campaign_id"].is_valid())["prompt"].to_pylist()
    assert len(camp) > 1000
    assert all(CJK.search(p) for p in camp)
    # no English family wording leaks into a Chinese-only log
    assert not any(re.search(r"(?i)step by step|reasoning|final answer", p) for p in camp)


def test_default_mix_covers_families(sim):
    _, truth = sim
    camps = truth["campaigns"]
    assert len({c["wording"] for c in camps}) == len(WORDINGS)  # 10 campaigns, 7 families
    assert len({c["language"] for c in camps}) >= 7
    for c in camps:
        assert {"id", "archetype", "wording", "language", "accounts"} <= set(c)


def test_lookalike_groups_and_variants(sim):
    df, truth = sim
    hard = [g for g in truth["groups"] if g["kind"] == "hard_case"]
    assert all(g.get("lookalike") in LOOKALIKES and g.get("variant") for g in hard)
    assert {g["lookalike"] for g in hard} == set(LOOKALIKES)
    variants = {}
    for g in hard:
        variants.setdefault(g["lookalike"], set()).add(g["variant"])
        assert g["accounts"], g["name"]
    assert variants["chat_relay"] == {
        "dc_40_keys",
        "two_orgs_one_card_120_keys",
        "bursty_10_keys",
    }
    assert variants["research_burst"] == {
        "cot_faithfulness_2_accounts",
        "eval_sweep_3_days",
        "university_course_30_students",
    }
    for g in hard:
        if g["lookalike"] not in ("chat_relay", "research_burst"):
            continue
        rows = df[df["account_id"].isin(g["accounts"])]
        assert len(rows) > 100 and rows["campaign_id"].isna().all(), g["name"]
        if g["lookalike"] == "chat_relay":
            assert rows["tls_fingerprint"].nunique() == 1 and rows["user_agent"].nunique() == 1
            assert rows["payment_fingerprint"].nunique() == 1
            assert set(rows["asn_type"]) == {"datacenter"}
            assert rows["prompt"].nunique() > 0.9 * len(rows)  # diverse real prompts
        else:
            assert set(rows["signup_path"]) <= {"research", "education"}
    cot = next(g for g in hard if g["variant"] == "cot_faithfulness_2_accounts")
    rows = df[df["account_id"].isin(cot["accounts"])]
    assert rows["timestamp"].dt.date.nunique() <= 2 and len(cot["accounts"]) == 2
    # a look-alike family can be left out of a log (the hold-out case)
    held = truth_of(simulate(400, 1, seed=2, lookalikes=("eval_harness",), campaigns=()))
    assert {g.get("lookalike") for g in held["groups"] if g["kind"] == "hard_case"} == {
        "eval_harness"
    }


def test_pool_farm_infrastructure(sim):
    df, truth = sim
    pf, c = _camp(df, truth, "pool_farm")
    n = pf["account_id"].nunique()
    assert n >= 40 and len(c["accounts"]) >= 40
    assert pf["client_ip"].nunique() <= 150 and set(pf["asn_type"]) == {"datacenter"}
    assert pf["asn"].nunique() <= 2
    assert pf["client_ip"].str.rsplit(".", n=1).str[0].nunique() >= 2  # a few /24s
    assert pf["tls_fingerprint"].nunique() == 2
    for col in LINKS:  # no single exact value links the whole farm
        assert pf.groupby(col)["account_id"].nunique().max() < n, col
    assert pf.groupby("payment_fingerprint")["account_id"].nunique().max() <= 15
    created = pf.groupby("account_id")["account_created_at"].first()
    assert created.max() - created.min() <= np.timedelta64(3, "D")
    # the TLS values are the ordinary scripted-client ones that benign developers present
    benign = df[df["campaign_id"].isna()]
    assert benign["tls_fingerprint"].isin(set(pf["tls_fingerprint"])).sum() > 100


def test_proxy_mismatch_infrastructure(sim):
    df, truth = sim
    pm, _ = _camp(df, truth, "proxy_mismatch")
    assert pm["account_id"].nunique() >= 20
    assert pm["user_agent"].str.startswith("Mozilla/5.0").all()
    assert pm["user_agent"].str.contains("Chrome|Firefox|Safari").all()
    table = ClientTable.standard()
    scripted = {
        table.tls[table.tls_of_client[CLIENT_INDEX[x]][0]] for x in ("requests", "httpx", "curl")
    }
    assert set(pm["tls_fingerprint"]) <= scripted  # the UA contradicts the TLS stack
    assert set(pm["asn_type"]) == {"residential"} and pm["country"].nunique() >= 5
    assert (pm.groupby("payment_fingerprint")["account_id"].nunique() == 1).all()
    benign = df[df["campaign_id"].isna() & df["tls_fingerprint"].isin(scripted)]
    assert benign["user_agent"].str.contains("python-requests|python-httpx|curl").mean() > 0.9


def test_reconstruct_daily_and_reseller_agentic(sim):
    df, truth = sim
    rd, c = _camp(df, truth, "reconstruct_daily")
    assert rd["account_id"].nunique() == 1 and c["wording"] == "reconstruct"
    per_day = rd.groupby(rd["timestamp"].dt.date).size()
    assert len(per_day) == 7 and per_day.min() >= 100
    ra, c = _camp(df, truth, "reseller_agentic")
    acct = df[df["account_id"] == c["accounts"][0]]
    assert (acct["signup_path"] == "reseller").all() and c["wording"] == "agentic_think"
    share = acct["campaign_id"].notna().mean()
    assert 0.15 < share < 0.6 and abs(share - c["share"]) < 0.05
    assert acct.loc[acct["campaign_id"].isna(), "prompt"].nunique() > 1000  # relayed users


def test_real_prompts_in_background(sim):
    from distilltrace.traffic.simulate import realprompts as R

    df, truth = sim
    pool = set(R.pool().to_pylist())
    indiv = next(g for g in truth["groups"] if g["name"] == "individuals")
    rows = df[df["account_id"].isin(indiv.get("accounts", []) or [])]
    if rows.empty:  # the ordinary group lists no accounts: everyone outside other groups
        listed = {a for g in truth["groups"] for a in g.get("accounts", [])}
        listed |= {a for c in truth["campaigns"] for a in c["accounts"]}
        rows = df[~df["account_id"].isin(listed)]
    real = rows["prompt"].isin(pool).mean()
    assert 0.5 < real < 0.85  # 70 % of ordinary users' prompts are real
    # an account walks the pool: no account repeats a real prompt within a day
    r = rows[rows["prompt"].isin(pool) & (rows["prompt"].str.len() > 40)]
    r = r.assign(day=r["timestamp"].dt.date)
    dup = r.duplicated(["account_id", "day", "prompt"]).mean()
    assert dup < 0.01
    keep = tuple(x for x in LOOKALIKES if x != "chat_relay")  # relays always relay real prompts
    none = simulate(300, 1, seed=4, real_prompts=0.0, campaigns=(), lookalikes=keep)
    texts = none["prompt"].to_pylist()
    assert np.mean([t in pool for t in texts]) < 0.01  # only chance collisions with templates


def test_cli_families(tmp_path):
    from typer.testing import CliRunner

    from distilltrace.cli import app

    out = tmp_path / "f.parquet"
    args = ["traffic", "simulate", "--out", str(out), "--accounts", "300", "--days", "1"]
    r = CliRunner().invoke(
        app,
        args
        + ["--campaigns", "pool_farm,proxy_mismatch", "--wordings", "grader_rubric"]
        + ["--languages", "es,ko"],
    )
    assert r.exit_code == 0, r.output
    truth = truth_of(pq.read_schema(out))
    assert {c["archetype"] for c in truth["campaigns"]} == {"pool_farm", "proxy_mismatch"}
    assert {c["wording"] for c in truth["campaigns"]} == {"grader_rubric"}
    assert {c["language"] for c in truth["campaigns"]} <= {"es", "ko"}
    r = CliRunner().invoke(app, args + ["--languages", "klingon"])
    assert r.exit_code != 0
