"""The custody demo's whole chain on tiny models, on every machine: the quick demo on real
models (test_custody_demo.py) runs only where the CPU multiplies bfloat16 natively, so this
test keeps its wiring checked everywhere (serve over HTTP, the log, the scan, distillation,
both bundles, verify and the tampered copy). Sized for the wiring, not for power: no
suspect's p-value is asserted, only that every claim ran and the verdicts follow Holm."""

from __future__ import annotations

import json

import pytest
from world import PROV

from tests.torch_threads import one_thread  # noqa: F401 - autouse fixture

pytestmark = pytest.mark.timeout(1200)


def test_demo_chain_runs_end_to_end_on_tiny_models(tmp_path):
    from statsmodels.stats.multitest import multipletests

    from distilltrace.custody import claims as C
    from distilltrace.custody.claims import SUSPECT_SIDE
    from distilltrace.custody.demo import DemoConfig, run_demo
    from distilltrace.models.tiny import make_tiny_model

    teacher = make_tiny_model(tmp_path / "teacher", seed=5)
    cfg = DemoConfig(teacher=str(teacher), student=str(teacher), max_tokens=24, clients=16,
                     epochs=1, lr=1e-3, batch_size=16, n_probes=16,
                     provenance={**PROV, "capability_check": False})  # fmt: skip
    claims = {C.CAMPAIGN, C.HARVEST_MARK, C.MEMBERSHIP, C.RADIO_CLOSED, C.RADIO_OPEN,
              C.PROVENANCE}  # fmt: skip
    notes: list[str] = []
    res = run_demo(tmp_path / "demo", config=cfg, note=notes.append)
    assert res.campaign["flagged"] and res.campaign["true_accounts_found"] > 0
    assert res.harvested > 0
    assert res.targets["verify_passes_both"]
    assert res.targets["tampered_copy_fails"] and "harvested.jsonl" in res.tampered_error
    for name, b in res.bundles.items():
        p = b["pvalues"]
        # every claim the demo makes ran on both students: prefix mode only where the
        # weights are not open, logprobs mode only when asked
        assert set(p) == claims, (name, b["skipped"])
        assert set(b["skipped"]) == set(SUSPECT_SIDE) - claims, name
        # None: the test ran and found too little to score (a tiny student repeats one
        # phrase, so closed mode may see few distinct tuples); never attributed on it
        assert all(v is None or 0.0 <= v <= 1.0 for v in p.values()), (name, p)
        ps = [v for v in p.values() if v is not None]
        holm = bool(multipletests(ps, alpha=0.01, method="holm")[0].all())
        assert b["attributed"] == (holm and len(ps) == len(p)), (name, p)
        assert set(b["recomputed"]) == set(p), name
    # the log bills what the server counted, so membership tests every harvested
    # exchange (none read as asked after unlogged context: membership rules 3)
    report = json.loads((tmp_path / "demo" / "bundle-harvested" / "report.json").read_text())
    m = next(c for c in report["claims"] if c["name"] == "harvest_membership")
    assert m["details"]["left_out"]["hidden_context"] == 0
    assert m["n"] == min(res.harvested, 128)
    assert any(n.startswith("HTTP:") for n in notes)
    assert json.loads((tmp_path / "demo" / "demo.json").read_text())["targets"] == res.targets


def test_demo_checks_its_folder_before_any_work(tmp_path, capsys):
    """A folder the demo cannot write into is one readable line and exit 2, before a model
    is loaded (the teacher here does not exist, and is never reached)."""
    from distilltrace.cli import main

    (tmp_path / "afile").write_text("x")
    for out, says in ((tmp_path / "afile", "is a file, not a folder"),
                      (tmp_path / "afile" / "sub", "is a file, so no folder can be made")):  # fmt: skip
        with pytest.raises(SystemExit) as e:
            main(["custody", "demo", "--out", str(out), "--teacher", str(tmp_path / "none")])
        cap = capsys.readouterr()
        assert e.value.code == 2 and says in cap.err, cap.err
        assert "Traceback" not in cap.err and "serving" not in cap.err + cap.out


def test_the_demo_seed_gives_other_null_students(tmp_path, monkeypatch):
    """`custody demo --seed K` reaches the benign and control students' ShareGPT samples:
    seed 0 keeps the samples 0..3 of every earlier run, another seed draws four others, so
    repeated demos repeat the null on other models (before session 38 every seed trained
    the same four)."""
    from distilltrace.cli import main
    from distilltrace.custody import demo as D
    from distilltrace.custody.bundle import CustodyError
    from distilltrace.distill import dataset, student, training

    assert [D.null_data_seed(0, j) for j in range(4)] == [0, 1, 2, 3]
    seen: list[int] = []
    monkeypatch.setattr(dataset, "sharegpt_records", lambda n, seed, clip: seen.append(seed) or [])
    monkeypatch.setattr(student, "make_student", lambda *a, **k: None)
    monkeypatch.setattr(
        training,
        "train_seq_kd",
        lambda *a, **k: type("R", (), {"first_loss": 1.0, "final_loss": 1.0})(),
    )
    harvest = [{"prompt": "p", "response": "r"}]
    for seed, want in ((0, [0, 1, 2, 3]), (2, [2000, 2001, 2002, 2003])):
        seen.clear()
        D._students(D.DemoConfig(seed=seed), harvest, tmp_path / str(seed), lambda m: None)
        assert seen == want

    got = {}

    def fake_run_demo(out, tier, **kw):
        got.update(kw)
        raise CustodyError("stopped here")

    monkeypatch.setattr(D, "run_demo", fake_run_demo)
    with pytest.raises(SystemExit):
        main(["custody", "demo", "--out", str(tmp_path / "d"), "--seed", "7"])
    assert got["seed"] == 7


def test_a_campaign_the_scan_did_not_flag_is_one_line_naming_its_cluster():
    """The demo cannot build a chain without a flagged campaign; the error says where the
    campaign's accounts went (the candidate cluster holding most, its adjusted p and the
    flagging level) and what to do, instead of only that it was missed."""
    from types import SimpleNamespace as NS

    from distilltrace.custody import CustodyError
    from distilltrace.custody.demo import _found

    def camp(cid, members, flagged, p):
        return NS(cluster_id=cid, name=f"cluster {cid}", members=members, flagged=flagged,
                  pvalue_adjusted=p)  # fmt: skip

    truth = {f"a{i}" for i in range(19)}
    other = camp(22, ["x", "y"], True, 1e-5)
    near = camp(7, sorted(truth), False, 1.0)
    res = NS(campaigns=[other, near, camp(9, ["a1", "z"], False, 0.5)],
             summary={"campaign_alpha": 0.001})  # fmt: skip
    with pytest.raises(CustodyError) as e:
        _found(res, truth, seed=2)
    msg = str(e.value)
    assert "cluster 7 held 19 of its 19 accounts, adjusted p = 1" in msg
    assert "flagging level 0.001" in msg and "seed 2" in msg and "\n" not in msg
    with pytest.raises(CustodyError, match="no candidate cluster held any of its accounts"):
        _found(NS(campaigns=[other], summary={}), truth)
    near.flagged = True
    assert _found(res, truth) is near
