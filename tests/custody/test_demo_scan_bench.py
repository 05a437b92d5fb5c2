"""benchmarks/custody_demo_scan.py: the custody demo's traffic scanned alone."""

from __future__ import annotations

import json

from benchmarks.custody_demo_scan import main


def test_the_demo_population_lets_the_scan_find_seed_2s_campaign(tmp_path, capsys):
    """Seed 2's campaign was missed when the demo simulated 300 accounts (its 19 accounts
    and 27 look-alike accounts asking for as much were 30% of the log the scan calibrates
    against); at the demo's 1,000 it is found, with no benign account flagged, and the
    keyword baseline is scored on the same log."""
    from distilltrace.custody.demo import DemoConfig

    assert DemoConfig().n_accounts == 1000
    main(["--seeds", "2", "--accounts", str(DemoConfig().n_accounts), "--out", str(tmp_path)])
    (out,) = tmp_path.glob("custody-demo-scan-*.json")
    (run,) = json.loads(out.read_text())["runs"]
    assert run["found"] == run["campaign_accounts"] == 19 and run["benign_flagged"] == 0
    assert run["campaign_share"] < 0.05 and run["cluster_harvest_pvalue_adjusted"] < 1e-6
    assert {"keyword_found", "keyword_benign_flagged"} <= set(run)
    assert run["reference_warned"] is False and run["reference_discount_log10"] < 1
    assert "campaign flagged in 1 of 1 seeds" in capsys.readouterr().out


def test_at_300_accounts_seed_2_is_missed_and_the_scan_says_why(tmp_path):
    """The miss the demo's population size fixed: the scan cannot see the campaign among
    300 accounts, and its reference check warns that the population is not mostly benign
    (the intent signal's bulk 2.75 orders of magnitude beyond its null)."""
    main(["--seeds", "2", "--accounts", "300", "--out", str(tmp_path)])
    (out,) = tmp_path.glob("custody-demo-scan-*.json")
    (run,) = json.loads(out.read_text())["runs"]
    assert run["found"] == 0 and run["campaign_accounts"] == 19
    assert run["reference_warned"] is True and run["reference_discount_log10"] > 2
    main(["--seeds", "2", "--accounts", "300", "--out", str(tmp_path)])  # a second run of the day
    assert len(list(tmp_path.glob("custody-demo-scan-*.json"))) == 2  # the first is kept
