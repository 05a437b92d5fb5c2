"""The fused scan end to end: expected campaigns, calibration, determinism, outputs, CLI."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pyarrow.parquet as pq
from handmade_logs import make_benign, make_hydra
from typer.testing import CliRunner

from distilltrace.traffic import scan


def _truth(df):
    return df.groupby("account_id")["campaign_id"].apply(lambda s: s.notna().any())


def test_hydra_found_hard_cases_not_flagged(small_log, tmp_path):
    path, df = small_log
    res = scan(path, out_dir=tmp_path / "out")
    truth = _truth(df)
    flagged = set(res.flagged_accounts)
    campaign_accounts = set(truth[truth].index)
    assert flagged == campaign_accounts  # exact: the hydra, nothing else
    flagged_camps = [c for c in res.campaigns if c.flagged]
    assert len(flagged_camps) == 1 and set(flagged_camps[0].members) == campaign_accounts
    assert flagged_camps[0].shared_infrastructure and flagged_camps[0].examples
    for name in (
        "accounts.parquet",
        "requests.parquet",
        "campaigns.json",
        "summary.json",
        "report.html",
        "quarantine.parquet",
    ):
        assert (tmp_path / "out" / name).exists()
    acc = pq.read_table(tmp_path / "out" / "accounts.parquet").to_pandas()
    assert {"account_id", "flagged", "risk", "cluster_id"} <= set(acc.columns)
    req = pq.read_table(tmp_path / "out" / "requests.parquet").to_pandas()
    assert req.loc[req["flagged"], "account_id"].isin(campaign_accounts).all()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["n_campaigns"] == 1 and summary["skipped_signals"] == {}


def test_benign_only_flags_at_most_the_stated_rate():
    df = make_benign(3000, seed=5)
    res = scan(df)
    n = res.summary["n_accounts"]
    assert res.summary["n_campaigns"] == 0
    assert res.summary["n_flagged_accounts"] <= max(1, int(res.summary["account_alpha"] * (n + 1)))


def test_determinism_byte_identical(small_log, tmp_path):
    path, _ = small_log
    digests = []
    for k in range(2):
        out = tmp_path / f"o{k}"
        scan(path, out_dir=out)
        digests.append(
            tuple(
                hashlib.sha256((out / f).read_bytes()).hexdigest()
                for f in ("accounts.parquet", "campaigns.json", "requests.parquet")
            )
        )
    assert digests[0] == digests[1]


def test_report_escapes_markup(tmp_path):
    df = pd.concat(
        [make_benign(200, seed=2, hard=False), make_hydra(30, 10, seed=3)], ignore_index=True
    )
    evil = "<script>document.title='pwned'</script><img src=x onerror=\"document.title='pwned'\">"
    df.loc[df["campaign_id"].notna(), "prompt"] = (
        evil + " Show your complete reasoning and every step. \x00\x07"
    )
    res = scan(df, out_dir=tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text()
    assert any(c.flagged for c in res.campaigns)
    assert "<script>document" not in html and "<img src=x" not in html
    assert "&lt;script&gt;" in html and "\x00" not in html


def test_missing_optional_columns_skip_signals(tmp_path):
    df = make_benign(100, seed=4, hard=False)[["request_id", "timestamp", "account_id", "prompt"]]
    p = tmp_path / "min.csv"
    df.to_csv(p, index=False)
    res = scan([p])
    assert set(res.summary["skipped_signals"]) == {
        "linkage",
        "young_account",
        "release_pivot",
        "signup_path",
        "client_mismatch",
    }


def test_empty_file_gives_empty_valid_report(tmp_path):
    p = tmp_path / "e.jsonl"
    p.write_text("")
    res = scan([p], out_dir=tmp_path / "out")
    assert res.summary["n_accounts"] == 0 and len(res.accounts) == 0
    assert (tmp_path / "out" / "report.html").exists()
    assert json.loads((tmp_path / "out" / "campaigns.json").read_text()) == {"campaigns": []}


def test_one_account_log(tmp_path):
    """A log of a single account (a gateway's first minutes) scans: no linkage, no crash."""
    df = make_benign()
    one = df[df["account_id"] == df["account_id"].iloc[0]]
    res = scan(one, out_dir=tmp_path / "out", content=False)
    assert res.summary["n_accounts"] == 1 and len(res.accounts) == 1
    assert res.summary["n_requests"] == len(one)


def test_required_columns_only(tmp_path):
    """A log with only the schema's required columns (nothing to link accounts by) scans."""
    df = make_benign()[["request_id", "timestamp", "account_id", "prompt"]]
    res = scan(df, out_dir=tmp_path / "out", content=False)
    assert res.summary["n_requests"] == len(df)
    assert res.summary["n_accounts"] == df["account_id"].nunique()


def test_cli_scan_and_one_line_errors(small_log, tmp_path):
    from distilltrace.cli import app

    path, _ = small_log
    r = CliRunner().invoke(app, ["traffic", "scan", str(path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    assert "1 campaign(s)" in r.output and "report:" in r.output
    bad = tmp_path / "x.csv"
    bad.write_text("request_id,timestamp,account_id\n1,2026-01-01T00:00:00Z,a\n")
    import subprocess
    import sys

    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "distilltrace.cli",
            "traffic",
            "scan",
            str(bad),
            "--out",
            str(tmp_path / "o2"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: {bad}: missing required column 'prompt'"]


def test_a_scan_says_what_limits_it_on_the_command_line_and_in_the_report(tmp_path):
    """A log of 30 accounts: every tail is a rank among them, so no account can be flagged
    on its own; the scan says so in summary.json, on the command line and in report.html
    (and says nothing of the kind on a population of hundreds: `small_log`'s tests)."""
    from distilltrace.cli import app

    path = tmp_path / "few.parquet"
    make_benign(30, seed=3, hard=False).to_parquet(path, index=False)
    r = CliRunner().invoke(app, ["traffic", "scan", str(path), "--out", str(tmp_path / "o"),
                                 "--no-content"])  # fmt: skip
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    (w,) = summary["warnings"]
    assert w.startswith("only 30 accounts") and "no account can be flagged on its own" in w
    assert f"warning: {w}" in r.output
    page = (tmp_path / "o" / "report.html").read_text()
    assert 'id="warnings"' in page and "only 30 accounts" in page
    assert set(summary["reference"]) == {"elicitation"}  # the harvest signals computed


def test_a_population_of_hundreds_gives_no_reference_warning(small_log, tmp_path):
    path, _ = small_log
    res = scan(str(path), out_dir=tmp_path / "o", content=False)
    assert res.summary["warnings"] == [] and res.summary["n_campaigns"] == 1
    ref = res.summary["reference"]["elicitation"]
    assert ref["suspect"] is False and ref["discount_log10"] < 1
    assert 'id="warnings"' not in (tmp_path / "o" / "report.html").read_text()
