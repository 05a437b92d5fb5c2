"""Evaluation metrics on handmade scan outputs with hand-computed answers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from distilltrace.errors import InputError
from distilltrace.traffic.evaluate import average_precision, binary_metrics, evaluate, roc_auc


def test_auc_by_hand():
    y = np.array([1, 1, 0, 0, 0])
    s = np.array([0.9, 0.4, 0.5, 0.1, 0.2])
    # pairs (pos, neg): 0.9 beats all 3, 0.4 beats 0.1 and 0.2 -> 5/6
    assert roc_auc(y, s) == pytest.approx(5 / 6)
    # ranking: 0.9(+) 0.5(-) 0.4(+) -> AP = 1/2 * 1 + 1/2 * 2/3
    assert average_precision(y, s) == pytest.approx(0.5 + 1 / 3)
    # ties count half for ROC and share one threshold for PR
    assert roc_auc([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert average_precision([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert roc_auc([1, 1], [0.1, 0.2]) is None
    assert average_precision([0, 0], [0.1, 0.2]) is None


def test_binary_metrics_by_hand():
    m = binary_metrics([1, 1, 1, 0, 0, 0, 0], [1, 1, 0, 1, 0, 0, 0])
    assert (m.tp, m.fp, m.fn, m.tn) == (2, 1, 1, 3)
    assert m.precision == pytest.approx(2 / 3)
    assert m.recall == pytest.approx(2 / 3)
    assert m.fpr == pytest.approx(1 / 4)
    assert m.f1 == pytest.approx(2 / 3)
    assert m.roc_auc is None
    assert binary_metrics([0, 0], [0, 0]).precision is None


def _handmade(tmp_path, with_requests: bool):
    # accounts: A1, A2 in campaign c1 (hydra), A3 is a reseller with one campaign request (c2),
    # B1..B4 benign; B1 and B2 belong to a hard-case group
    rows = [
        ("r1", "A1", "hydra-1"),
        ("r2", "A1", "hydra-1"),
        ("r3", "A2", "hydra-1"),
        ("r4", "A3", None),
        ("r5", "A3", "reseller_mixed-2"),
        ("r6", "A3", None),
        ("r7", "B1", None),
        ("r8", "B2", None),
        ("r9", "B3", None),
        ("r10", "B4", None),
    ]
    logs = pd.DataFrame(rows, columns=["request_id", "account_id", "campaign_id"])
    logs["timestamp"] = pd.Timestamp("2026-03-02", tz="UTC")
    logs["prompt"] = "x"
    lp = tmp_path / "logs.parquet"
    logs.to_parquet(lp)
    truth = {
        "campaigns": [
            {"campaign_id": "hydra-1", "archetype": "hydra"},
            {"campaign_id": "reseller_mixed-2", "archetype": "reseller_mixed"},
        ],
        "groups": [
            {
                "name": "university_nat_1",
                "kind": "hard_case",
                "description": "NAT <b>",
                "accounts": ["B1", "B2"],
            },
            {"name": "individuals", "kind": "benign", "description": ""},
        ],
    }
    (tmp_path / "logs.parquet.truth.json").write_text(json.dumps(truth))
    scan = tmp_path / "scan"
    scan.mkdir()
    acc = pd.DataFrame(
        {
            "account_id": ["A1", "A2", "A3", "B1", "B2", "B3", "B4"],
            "flagged": [True, True, False, True, False, False, False],
            "risk": [9.0, 8.0, 3.0, 7.0, 1.0, 0.5, 2.0],
            "cluster_id": [1, 1, 2, 3, 4, 5, 6],
        }
    )
    acc.to_parquet(scan / "accounts.parquet")
    if with_requests:
        req = pd.DataFrame(
            {
                "request_id": ["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9", "r10"],
                "flagged": [True, True, True, False, True, False, True, False, False, False],
                "score": [0.9, 0.8, 0.85, 0.1, 0.7, 0.2, 0.75, 0.05, 0.3, 0.15],
            }
        )
        req.to_parquet(scan / "requests.parquet")
    return scan, lp


def test_evaluate_from_account_flags(tmp_path):
    scan, lp = _handmade(tmp_path, with_requests=False)
    ev = evaluate(scan, lp)
    a = ev.accounts
    # campaign accounts: A1, A2, A3 ; flagged: A1, A2, B1
    assert (a.tp, a.fp, a.fn, a.tn) == (2, 1, 1, 3)
    assert a.precision == pytest.approx(2 / 3) and a.recall == pytest.approx(2 / 3)
    assert a.fpr == pytest.approx(1 / 4)
    # risk ranks: A1 9, A2 8, B1 7, A3 3, B4 2, B2 1, B3 .5: positives beat 4+4+3 of 4 negatives each
    assert a.roc_auc == pytest.approx(11 / 12)
    # requests inherit account flags: campaign requests r1 r2 r3 r5; flagged r1 r2 r3 (A1, A2), r7 (B1)
    r = ev.requests
    assert ev.request_source == "account flags"
    assert (r.tp, r.fp, r.fn, r.tn) == (3, 1, 1, 5)
    camps = {c["campaign_id"]: c for c in ev.campaigns}
    assert camps["hydra-1"]["found"] and camps["hydra-1"]["account_fraction_flagged"] == 1.0
    assert not camps["reseller_mixed-2"]["found"]
    assert camps["reseller_mixed-2"]["archetype"] == "reseller_mixed"
    hard = {h["group"]: h for h in ev.hard_cases}
    assert hard["university_nat_1"]["n_flagged"] == 1 and hard["university_nat_1"][
        "flagged_accounts"
    ] == ["B1"]
    assert ev.targets["all_campaigns_found"] is False
    assert ev.targets["no_hard_case_flagged"] is False


def test_evaluate_from_request_scores(tmp_path):
    scan, lp = _handmade(tmp_path, with_requests=True)
    ev = evaluate(scan, lp)
    r = ev.requests
    assert ev.request_source == "requests.parquet"
    # y: r1 r2 r3 r5 positive; flagged r1 r2 r3 r5 r7
    assert (r.tp, r.fp, r.fn, r.tn) == (4, 1, 0, 5)
    # scores: positives .9 .8 .85 .7; negatives .1 .2 .75 .05 .3 .15 -> only .7 < .75 loses
    assert r.roc_auc == pytest.approx(23 / 24)
    # ranking .9+ .85+ .8+ .75- .7+ ...: AP = (1 + 1 + 1 + 4/5) / 4
    assert r.pr_auc == pytest.approx((3 + 0.8) / 4)


def test_evaluate_cli_writes_escaped_html(tmp_path):
    from typer.testing import CliRunner

    from distilltrace.cli import app

    scan, lp = _handmade(tmp_path, with_requests=True)
    r = CliRunner().invoke(app, ["traffic", "evaluate", str(scan), str(lp)])
    assert r.exit_code == 0, r.output
    data = json.loads((scan / "eval.json").read_text())
    assert data["accounts"]["tp"] == 2
    html = (scan / "eval.html").read_text()
    assert "NAT &lt;b&gt;" in html and "NAT <b>" not in html


def test_evaluate_bad_inputs(tmp_path):
    scan, lp = _handmade(tmp_path, with_requests=False)
    with pytest.raises(InputError, match="accounts.parquet"):
        evaluate(tmp_path, lp)
    pd.DataFrame({"request_id": ["r1"], "account_id": ["A1"]}).to_parquet(
        tmp_path / "nolabel.parquet"
    )
    with pytest.raises(InputError, match="campaign_id"):
        evaluate(scan, tmp_path / "nolabel.parquet")
    with pytest.raises(InputError, match="not found"):
        evaluate(scan, tmp_path / "missing.parquet")


def test_evaluate_reads_jsonl_and_csv_logs(tmp_path):
    scan, lp = _handmade(tmp_path, with_requests=False)
    logs = pd.read_parquet(lp)
    logs["timestamp"] = "2026-03-02T00:00:00Z"
    logs.to_json(tmp_path / "logs.jsonl", orient="records", lines=True)
    logs.to_csv(tmp_path / "logs.csv", index=False)
    for name in ("logs.jsonl", "logs.csv"):
        ev = evaluate(scan, tmp_path / name)
        assert (ev.accounts.tp, ev.accounts.fp, ev.accounts.fn, ev.accounts.tn) == (2, 1, 1, 3)
        assert ev.hard_cases == []  # no truth sidecar next to these files


def test_campaign_and_cluster_purity_by_hand(tmp_path):
    # campaign x: X1 X2 X3 flagged, X1 X2 in cluster 7, X3 in cluster 9 -> dominant 7, share 2/3
    # campaign y: Y1 Y2 flagged, both in cluster 9 -> dominant 9, share 1
    # cluster 9 therefore mixes two true campaigns (X3, Y1, Y2) plus benign B1:
    #   n_campaigns 2, purity 2/4 (label y); cluster 7 is pure; B2 (not flagged) is ignored
    rows = [
        ("r1", "X1", "x-1"),
        ("r2", "X2", "x-1"),
        ("r3", "X3", "x-1"),
        ("r4", "Y1", "y-2"),
        ("r5", "Y2", "y-2"),
        ("r6", "B1", None),
        ("r7", "B2", None),
    ]
    logs = pd.DataFrame(rows, columns=["request_id", "account_id", "campaign_id"])
    logs["timestamp"] = pd.Timestamp("2026-03-02", tz="UTC")
    logs["prompt"] = "x"
    lp = tmp_path / "logs.parquet"
    logs.to_parquet(lp)
    scan = tmp_path / "scan"
    scan.mkdir()
    pd.DataFrame(
        {
            "account_id": ["X1", "X2", "X3", "Y1", "Y2", "B1", "B2"],
            "flagged": [True, True, True, True, True, True, False],
            "risk": [9.0, 9.0, 8.0, 8.0, 8.0, 7.0, 1.0],
            "cluster_id": [7, 7, 9, 9, 9, 9, 9],
        }
    ).to_parquet(scan / "accounts.parquet")
    ev = evaluate(scan, lp)
    camps = {c["campaign_id"]: c for c in ev.campaigns}
    assert camps["x-1"]["dominant_cluster"] == 7
    assert camps["x-1"]["dominant_cluster_share"] == pytest.approx(2 / 3)
    assert camps["y-2"]["dominant_cluster"] == 9
    assert camps["y-2"]["dominant_cluster_share"] == 1.0
    cl = {c["cluster_id"]: c for c in ev.clusters}
    assert set(cl) == {7, 9}
    assert cl[7]["campaigns"] == ["x-1"] and cl[7]["n_campaigns"] == 1 and cl[7]["purity"] == 1.0
    assert cl[9]["campaigns"] == ["x-1", "y-2"] and cl[9]["n_campaigns"] == 2
    assert cl[9]["n_flagged_accounts"] == 4 and cl[9]["n_benign_flagged"] == 1
    assert cl[9]["majority_label"] == "y-2" and cl[9]["purity"] == pytest.approx(0.5)
    p = ev.purity
    assert p["n_flagged_clusters"] == 2 and p["n_clusters_mixing_campaigns"] == 1
    assert p["max_campaigns_per_cluster"] == 2
    assert p["min_dominant_cluster_share"] == pytest.approx(2 / 3)
    assert p["mean_dominant_cluster_share"] == pytest.approx((2 / 3 + 1) / 2)
    # the existing metrics are untouched by the purity fields
    assert ev.accounts.tp == 5 and ev.accounts.fp == 1
    assert json.loads(json.dumps(ev.to_dict()))["purity"] == p
