"""Traffic simulator: determinism, schema, hard cases and campaign archetypes as claimed."""

from __future__ import annotations

import json
import re
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from distilltrace.traffic.simulate import (
    ARCHETYPES,
    SCHEMA,
    SimConfig,
    simulate,
    truth_of,
    truth_path,
    write_logs,
)
from distilltrace.traffic.simulate.population import build_population

REQUIRED = ["request_id", "timestamp", "account_id", "prompt"]


@pytest.fixture(scope="module")
def sim():
    tbl = simulate(2500, 7, seed=3)
    df = tbl.to_pandas()
    return tbl, df, truth_of(tbl)


def _group(truth, prefix):
    return [g for g in truth["groups"] if g["name"].startswith(prefix)]


def _campaign(truth, arche):
    return next(c for c in truth["campaigns"] if c["archetype"] == arche)


def test_deterministic_and_seed_dependent():
    a = simulate(300, 2, seed=5)
    b = simulate(300, 2, seed=5)
    c = simulate(300, 2, seed=6)
    assert a.equals(b)
    assert truth_of(a) == truth_of(b)
    assert not a.equals(c)


def test_schema_and_ground_truth(sim):
    tbl, df, truth = sim
    assert tbl.schema.remove_metadata() == SCHEMA
    for c in REQUIRED:
        assert df[c].notna().all()
    assert df["request_id"].is_unique
    start = pd.Timestamp(truth["window"]["start"])
    end = pd.Timestamp(truth["window"]["end"])
    assert df["timestamp"].min() >= start
    assert df["timestamp"].max() < end + pd.Timedelta(hours=4)
    # every optional column is populated (nullable ones only where the schema allows)
    for c in [
        "org_id",
        "api_key_id",
        "account_created_at",
        "signup_path",
        "client_ip",
        "asn",
        "asn_type",
        "country",
        "user_agent",
        "tls_fingerprint",
        "model",
        "input_tokens",
        "output_tokens",
        "status",
    ]:
        assert df[c].notna().all(), c
    assert df["payment_fingerprint"].notna().mean() > 0.9
    assert set(df["asn_type"]) == {
        "residential",
        "mobile",
        "datacenter",
        "proxy",
        "education",
        "business",
    }
    assert set(df["status"]) == {"ok", "refused", "error", "rate_limited"}
    assert df.loc[df["status"] == "ok", "response"].notna().all()
    assert (
        df.loc[
            df["model"].isin(["atlas-2-reasoning", "atlas-3"]) & (df["status"] == "ok"),
            "reasoning_tokens",
        ].notna()
    ).all()
    assert df.loc[df["model"].isin(["atlas-2", "atlas-2-mini"]), "reasoning_tokens"].isna().all()
    assert (df["account_created_at"] <= df["timestamp"]).all()
    # an account is a campaign account iff any of its requests carries a campaign_id,
    # and those are exactly the accounts the ground truth lists
    camp_accts = set(df.loc[df["campaign_id"].notna(), "account_id"])
    listed = {a for c in truth["campaigns"] for a in c["accounts"]}
    assert camp_accts <= listed
    assert len(listed - camp_accts) <= 0.1 * len(
        listed
    )  # a few rotated-out hydra accounts may be idle
    assert {c["archetype"] for c in truth["campaigns"]} == set(ARCHETYPES)
    assert set(df["campaign_id"].dropna()) == {c["campaign_id"] for c in truth["campaigns"]}


def test_nat_and_cgnat_hard_cases(sim):
    _, df, truth = sim
    uni = set(_group(truth, "university_nat")[0]["accounts"])
    u = df[df["account_id"].isin(uni)]
    per_ip = u[u["asn_type"] == "education"].groupby("client_ip")["account_id"].nunique()
    assert per_ip.max() >= 100
    mob = df[df["asn_type"] == "mobile"].groupby("client_ip")["account_id"].nunique()
    assert mob.max() >= 20
    vpn = set(_group(truth, "corporate_vpn")[0]["accounts"])
    v = df[df["account_id"].isin(vpn) & (df["asn_type"] == "proxy")]
    assert v["org_id"].nunique() >= 3  # unrelated companies share the proxy egress
    # homework bursts: many students of one university active in the same hour
    hours = u.assign(h=u["timestamp"].dt.floor("h")).groupby("h")["account_id"].nunique()
    assert hours.max() >= 25


def test_enterprise_harness_labelling_reseller(sim):
    _, df, truth = sim
    ent = df[df["account_id"].isin(_group(truth, "enterprise_app")[0]["accounts"])]
    assert ent["org_id"].nunique() == 1 and ent["account_id"].nunique() <= 3
    assert ent["api_key_id"].nunique() >= 2
    skeleton = ent["prompt"].str.slice(0, 40)
    assert skeleton.value_counts().iloc[0] / len(ent) >= 0.9
    assert len(ent) > df.groupby("account_id").size().quantile(0.999)  # a top-volume sender

    h = df[df["account_id"].isin(_group(truth, "eval_harness")[0]["accounts"])]
    assert 3 <= h["account_id"].nunique() <= 6 and (h["asn_type"] == "datacenter").all()
    assert h["prompt"].str.contains("step by step|Think through", case=False).mean() > 0.75
    assert h["prompt"].nunique() < len(h) / 2  # the same benchmark, run again and again
    assert "atlas-3" in set(h["model"])  # benchmarked on release day too

    lab = df[df["account_id"].isin(_group(truth, "data_labelling")[0]["accounts"])]
    assert lab["account_id"].nunique() >= 50
    assert lab["org_id"].nunique() == 1 and lab["payment_fingerprint"].nunique() == 1

    res = df[df["account_id"].isin(_group(truth, "reseller")[0]["accounts"])]
    assert res["account_id"].nunique() == 1 and (res["signup_path"] == "reseller").all()
    assert len(res) > 1000


def test_campaign_archetypes(sim):
    _, df, truth = sim
    window_start = pd.Timestamp(truth["window"]["start"])

    hy = df[df["campaign_id"] == _campaign(truth, "hydra")["campaign_id"]]
    n_acc = hy["account_id"].nunique()
    assert n_acc >= 30
    ok = hy[hy["status"] != "rate_limited"]
    assert ok.groupby(["account_id", hy["timestamp"].dt.date]).size().max() <= 100
    cards = hy.groupby("payment_fingerprint")["account_id"].nunique()
    assert cards.max() >= 3  # cards reused across subsets
    assert hy["client_ip"].str.rsplit(".", n=1).str[0].nunique() <= 6  # a few /24s
    assert hy["tls_fingerprint"].nunique() <= 3
    assert hy["timestamp"].dt.hour.nunique() == 24  # round the clock
    assert (
        hy.groupby("account_id")["account_created_at"].first()
        > window_start - pd.Timedelta(days=10)
    ).all()
    assert set(hy["asn_type"]) <= {"datacenter", "proxy"}

    sh = df[df["campaign_id"] == _campaign(truth, "single_heavy")["campaign_id"]]
    assert sh["account_id"].nunique() == 1 and len(sh) > 1000

    rm = _campaign(truth, "reseller_mixed")
    acct = rm["accounts"][0]
    share = (df.loc[df["account_id"] == acct, "campaign_id"].notna()).mean()
    assert 0.03 <= share <= 0.08  # 5% configured

    pa_ = df[df["campaign_id"] == _campaign(truth, "paraphrased")["campaign_id"]]
    skel = pa_["prompt"].map(lambda s: re.sub(r"\d+", "#", s)[:30])
    assert skel.value_counts().iloc[0] / len(pa_) < 0.05  # no dominant template
    # every template of its wording family, leads and item-first layouts (the families have
    # 8-14 templates per language, so fewer distinct openings than the 2,750 composed
    # elicitation phrasings of the old single wording)
    assert skel.nunique() / len(pa_) > 0.05
    assert (pa_["asn_type"] == "residential").all()

    sl = df[df["campaign_id"] == _campaign(truth, "slow_low")["campaign_id"]]
    assert sl.groupby("account_id").size().max() / 7 <= 45
    assert set(sl["asn_type"]) == {"residential"}

    pv = df[df["campaign_id"] == _campaign(truth, "release_pivot")["campaign_id"]]
    first_seen = df.loc[df["model"] == "atlas-3", "timestamp"].min()
    assert first_seen >= pd.Timestamp(truth["release"]["first_seen_after"])
    new = pv[pv["model"] == "atlas-3"]
    assert new.groupby("account_id")["timestamp"].min().max() - first_seen < pd.Timedelta(days=1)
    per_day_new = new.groupby(new["timestamp"].dt.date).size().max()
    per_day_old = pv[pv["model"] != "atlas-3"].groupby(pv["timestamp"].dt.date).size().max()
    assert per_day_new > 3 * per_day_old


def test_elicitation_wording_varies(sim):
    _, df, _ = sim
    camp = df[df["campaign_id"].notna()]["prompt"]
    # no single phrase covers the campaign traffic
    for phrase in ["step by step", "show your work", "reasoning", "think"]:
        assert camp.str.contains(phrase, case=False).mean() < 0.6, phrase
    # and benign users ask for step-by-step explanations too
    benign = df[df["campaign_id"].isna()]["prompt"]
    assert benign.str.contains("step by step", case=False).sum() > 100


def test_default_mix_campaign_fraction():
    pop = build_population(20000, 7, seed=0)
    frac = (pop.cols["campaign"] >= 0).mean()
    # pool_farm (4.6 %) and proxy_mismatch (3.1 %) are large, low-volume account fleets
    assert 0.07 <= frac <= 0.11
    assert pop.n == 20000


def test_benign_only_and_formats(tmp_path):
    cfg = SimConfig(n_accounts=300, days=1, seed=2, campaigns=())
    info = write_logs(tmp_path / "b.jsonl", cfg)
    assert info["campaign_rows"] == 0 and info["rows"] > 0
    rows = [json.loads(x) for x in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert len(rows) == info["rows"]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", rows[0]["timestamp"])
    assert all(r["campaign_id"] is None for r in rows)
    assert isinstance(rows[0]["input_tokens"], int)
    info = write_logs(tmp_path / "b.csv", SimConfig(n_accounts=300, days=1, seed=2))
    csv = pd.read_csv(tmp_path / "b.csv")
    assert len(csv) == info["rows"] and csv["campaign_id"].notna().any()
    info = write_logs(tmp_path / "b.parquet", SimConfig(n_accounts=300, days=1, seed=2))
    assert pq.read_metadata(tmp_path / "b.parquet").num_rows == info["rows"]
    t = truth_of(pq.read_schema(tmp_path / "b.parquet"))
    assert t == json.loads(truth_path(tmp_path / "b.parquet").read_text())


def test_bad_config_is_one_line_error(tmp_path):
    from typer.testing import CliRunner

    from distilltrace.cli import app

    r = CliRunner().invoke(
        app, ["traffic", "simulate", "--out", str(tmp_path / "x.parquet"), "--accounts", "50"]
    )
    assert r.exit_code != 0
    r = CliRunner().invoke(
        app,
        [
            "traffic",
            "simulate",
            "--out",
            str(tmp_path / "x.parquet"),
            "--accounts",
            "300",
            "--days",
            "1",
            "--campaigns",
            "hydra,bogus",
        ],
    )
    assert r.exit_code != 0


def test_cli_simulate(tmp_path):
    from typer.testing import CliRunner

    from distilltrace.cli import app

    r = CliRunner().invoke(
        app,
        [
            "traffic",
            "simulate",
            "--out",
            str(tmp_path / "s.parquet"),
            "--accounts",
            "300",
            "--days",
            "1",
            "--seed",
            "4",
            "--campaigns",
            "hydra",
        ],
    )
    assert r.exit_code == 0, r.output
    t = pq.read_table(tmp_path / "s.parquet")
    assert set(pa.compute.unique(t["campaign_id"]).drop_null().to_pylist()) == {"hydra-1"}


def test_vectorised_speed():
    t0 = time.perf_counter()
    tbl = simulate(4000, 7, seed=11)
    dt = time.perf_counter() - t0
    assert tbl.num_rows > 150_000
    assert dt < 60  # ~200k rows take a few seconds; measured in benchmarks/traffic_quality.py


def test_parallel_days_match_serial(tmp_path):
    cfg = SimConfig(n_accounts=400, days=2, seed=8)
    write_logs(tmp_path / "serial.parquet", cfg, workers=1)
    write_logs(tmp_path / "parallel.parquet", cfg, workers=2)
    assert pq.read_table(tmp_path / "serial.parquet").equals(
        pq.read_table(tmp_path / "parallel.parquet")
    )
