"""Custody bundles on a small real world (tiny byte models, a real scan): build, verify
from the bundle alone, and tampering of every kind of file caught."""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from world import PROV, PrintableAscii, build_world

from distilltrace.cli import main
from distilltrace.custody import CustodyConfig, CustodyInputs, VerifyError, build_bundle
from distilltrace.custody.bundle import MANIFEST, SEAL, Manifest, add_files, seal
from distilltrace.custody.verify import verify_bundle
from tests.torch_threads import one_thread  # noqa: E402,F401 - autouse fixture


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    d = tmp_path_factory.mktemp("custody")
    # Sized for the bundle's files and their verification, not for the tests' power (no
    # radioactivity or provenance p-value is asserted here): a student of 6 epochs (after 2,
    # its greedy next token is the end of the answer everywhere, and prefix mode reads
    # nothing), and the provenance test without its control capability check
    # (tests/provenance covers it).
    w = build_world(d, student_epochs=6)
    prov = {**PROV, "capability_check": False}
    # sampled probe answers: greedy, a byte student this small repeats one phrase and gives
    # too few distinct tuples for the closed-mode test to run
    # prefix mode "on": the student's weights are local (open mode runs), and it is also
    # asked through its text completion, so both readings of the harvest are in the bundle
    # logprobs mode "on": the student's top-k log-probabilities along its greedy answers to
    # the probes, weighted against our (local) teacher's probabilities
    cfg = CustodyConfig(n_probes=24, max_new_tokens=48, temperature=0.7, provenance=prov,
                        prefix_mode="on", logprobs_mode="on", logprobs_top_k=8)  # fmt: skip
    inputs = CustodyInputs(
        [w["log"]], w["scan"], w["cluster"], [w["key"]], w["student"], w["teacher"],
        w["controls"], serving_processors=[PrintableAscii()],
    )  # fmt: skip
    notes: list[str] = []
    res = build_bundle(inputs, d / "bundle", cfg, note=notes.append)
    return {**w, "dir": d, "bundle": d / "bundle", "res": res, "notes": notes}


def _copy(built, name: str) -> Path:
    dst = built["dir"] / name
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(built["bundle"], dst)
    return dst


def test_bundle_verifies_with_and_without_the_secret(built):
    """Every claim's p-value is recomputed from the bundle alone and equals the report's;
    without the secret the mark statistics are named as not recomputed."""
    rep = built["res"].report
    names = [c["name"] for c in rep["claims"]]
    assert names == [
        "campaign", "harvest_mark", "harvest_membership", "radioactivity_closed",
        "radioactivity_open", "radioactivity_prefix", "radioactivity_logprobs", "provenance",
    ]  # fmt: skip
    camp = rep["claims"][0]
    scan_camp = built["campaign"]
    # the claim is the scan's own flagging rule: its two adjusted p-values, recomputed
    # from the bundle, equal the scan's, and they combine as 2 min(h, b if h <= 0.01 else 1)
    d = camp["details"]
    assert d["behaviour_pvalue_adjusted"] == pytest.approx(scan_camp.pvalue_adjusted, rel=1e-9)
    h = scan_camp.harvest_pvalue_adjusted
    assert d["harvest_pvalue_adjusted"] == pytest.approx(h, rel=1e-9)
    b = scan_camp.pvalue_adjusted if h <= d["harvest_alpha"] else 1.0
    assert camp["pvalue"] == pytest.approx(min(1.0, 2 * min(h, b)), rel=1e-9)
    assert camp["pvalue"] <= 1e-6  # the hydra asks for extraction-like outputs throughout
    assert rep["claims"][1]["pvalue"] <= 1e-10  # the harvest carries the mark
    v = verify_bundle(built["bundle"], built["key"], expect_digest=built["res"].manifest_sha256)
    assert set(v.recomputed) == set(names) and not v.not_recomputed
    for c in rep["claims"]:
        assert v.recomputed[c["name"]] == c["pvalue"]
    v2 = verify_bundle(built["bundle"])
    assert set(v2.recomputed) == {"campaign", "harvest_membership", "provenance"}
    assert set(v2.not_recomputed) == {
        "harvest_mark", "radioactivity_closed", "radioactivity_open", "radioactivity_prefix",
        "radioactivity_logprobs",
    }  # fmt: skip
    m = json.loads((built["bundle"] / MANIFEST).read_text())
    kinds = {f["kind"] for f in m["files"]}
    assert kinds == {
        "key_commitment", "tokenizer", "log_segment", "harvested", "campaign", "probe_prompts",
        "transcript", "model_identity", "report",
    }  # fmt: skip
    # the reference (our marking teacher) is local: its probabilities are recorded per
    # token, so verify can recompute either selection without it; with this green-list key
    # closed_selection "auto" keeps the window filter alone (claims.closed_selection)
    closed = rep["claims"][3]["details"]
    assert closed["max_reference_prob"] is None and closed["filter_min_count"] == 2
    rows = [json.loads(x) for x in (built["bundle"] / "transcripts" /
            "radioactivity_closed.jsonl").read_text().splitlines()]  # fmt: skip
    assert rows and all(len(r["reference_probs"]) == len(built["teacher"].tokenizer(
        r["output"], add_special_tokens=False)["input_ids"]) for r in rows)  # fmt: skip
    assert closed["n_tokens"] == sum(closed[k] for k in (
        "n_duplicate", "n_excluded", "n_filtered", "n_unselected")) + rep["claims"][3]["n"]  # fmt: skip
    assert "secret" not in (built["bundle"] / "key_commitment.json").read_text()
    assert m["key_commitment"]["key_id"] == rep["key_id"]


def test_build_announces_and_times_each_phase_outside_the_bundle(built):
    """Each phase is announced as it starts and its wall time noted as it ends; the times
    are in the build's result (where the time goes), never in the bundle's files."""
    sec, notes = built["res"].seconds, built["notes"]
    assert list(sec) == [
        "campaign", "harvest", "membership", "closed", "open", "prefix", "logprobs", "provenance",
    ]  # fmt: skip
    assert all(isinstance(s, float) and s >= 0 for s in sec.values())
    assert notes[0] == "campaign: reading the scan and the logs"
    for name in sec:
        done = [i for i, n in enumerate(notes) if n.startswith(f"{name}: done in ")]
        assert len(done) == 1, (name, notes)
    order = [next(i for i, n in enumerate(notes) if n.startswith(f"{k}: done in ")) for k in sec]
    assert order == sorted(order)
    assert not any(": skipped (" in n for n in notes)  # every phase ran in this build
    assert any(n.startswith("provenance: ") and "/" in n for n in notes)  # its own progress
    assert not any("done in" in p.read_text(errors="ignore")
                   for p in built["bundle"].rglob("*.json*") if p.is_file())  # fmt: skip


def test_a_phase_that_does_not_run_is_noted_as_skipped_with_its_reason():
    """A phase whose step returns a reason (a str) ends with "skipped (reason)", not with a
    "done in 0 s" that reads as if it ran; its time is still kept."""
    from distilltrace.custody.build import _Phases

    notes: list[str] = []
    phase = _Phases(notes.append)
    with phase("prefix", "suspect: prefix-mode radioactivity") as ph:
        r = phase.ran(ph, "open mode read the suspect's weights")
    with phase("open", "suspect: open-mode radioactivity") as ph:
        phase.ran(ph, object())
    assert r == "open mode read the suspect's weights"
    assert notes[:2] == ["suspect: prefix-mode radioactivity",
                         "prefix: skipped (open mode read the suspect's weights)"]  # fmt: skip
    assert notes[3].startswith("open: done in ") and set(phase.seconds) == {"prefix", "open"}


def test_prefix_claim_reads_the_harvest_through_text_completion(built):
    """Prefix mode's transcript holds one continuation per probed position (every 4th token
    of each harvested response after the key's window), the queries are its prompt in the
    suspect's format followed by our first tokens, and the claim enters the Holm family."""
    rep = built["res"].report
    by = {c["name"]: c for c in rep["claims"]}
    pre = by["radioactivity_prefix"]
    t = json.loads((built["bundle"] / "transcripts" / "radioactivity_prefix.json").read_text())
    assert len(t["heads"]) == pre["details"]["n_texts"]
    assert len(t["probes"]) == pre["details"]["n_queries"] >= pre["details"]["n_usable_probes"]
    assert pre["details"]["n_usable_probes"] >= 0.9 * pre["details"]["n_queries"]
    assert pre["details"]["stride"] == 4 and pre["details"]["new_tokens"] == 1
    assert {p["position"] % 4 for p in t["probes"]} == {1}  # context width 1, stride 4
    assert pre["n"] > 16 and pre["statistic"] is not None
    assert [c["name"] for c in rep["family"]["details"]["claims"]][5] == "radioactivity_prefix"
    harvested = [
        json.loads(x) for x in (built["bundle"] / "harvested.jsonl").read_text().splitlines()
    ]
    opened = json.loads((built["bundle"] / "transcripts" / "radioactivity_open.json").read_text())
    assert all(a > 0 for a in opened["starts"])  # open mode reads each response after its prompt
    assert len(harvested) == len(t["heads"])
    assert all(x["prompt"] in h for h, x in zip(t["heads"], harvested, strict=True))


def test_logprobs_claim_reads_the_suspects_lean_and_verify_recomputes_it(built, tmp_path):
    """Logprobs mode's transcript holds, per probe, the suspect's greedy answer, its top-k
    log-probabilities at each step and our model's probabilities of the candidates; verify
    recomputes the claim from them, and an edited probability fails it. Under "auto" a
    suspect that returns no log-probabilities is named as skipped; under "on" refused."""
    from distilltrace.custody import CustodyError
    from distilltrace.marks.secret import Secret

    rep = built["res"].report
    lp = {c["name"]: c for c in rep["claims"]}["radioactivity_logprobs"]
    where = built["bundle"] / "transcripts" / "radioactivity_logprobs.jsonl"
    rows = [json.loads(x) for x in where.read_text().splitlines()]
    probes = [json.loads(x)["prompt"] for x in
              (built["bundle"] / "probes.jsonl").read_text().splitlines()]  # fmt: skip
    assert [a["prompt"] for a in rows] == probes
    a = rows[0]
    assert len(a["top_ids"]) == len(a["chosen"]) == len(a["reference_probs"])
    assert len(a["top_ids"][0]) == 8 and len(a["reference_top_ids"][0]) == 8
    assert len(a["reference_probs"][0]) == 16
    assert lp["details"]["weights"] == "q - p (our model)" and lp["details"]["top_k"] == 8
    assert lp["n"] > 16 and lp["statistic"] is not None and "Chernoff" in lp["null"]
    older = _copy(built, "older-lp")  # the earlier layout: all 2k candidate ids stored
    p = older / "transcripts" / "radioactivity_logprobs.jsonl"
    old_rows = [{**{k: v for k, v in r.items() if k != "reference_top_ids"},
                 "reference_ids": [s + o for s, o in zip(r["top_ids"], r["reference_top_ids"],
                                                         strict=True)]} for r in rows]  # fmt: skip
    p.write_text("".join(json.dumps(r) + "\n" for r in old_rows))
    _reseal(older, Secret(bytes(range(32))))
    assert "radioactivity_logprobs" in verify_bundle(older, built["key"]).recomputed
    b = _copy(built, "forged-lp")
    p = b / "transcripts" / "radioactivity_logprobs.jsonl"
    for ans in rows:  # the suspect made to look surer of its top token everywhere
        for step in ans["top_logprobs"]:
            step[0] = -0.001
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _reseal(b, Secret(bytes(range(32))))
    with pytest.raises(VerifyError, match="radioactivity_logprobs"):
        verify_bundle(b, built["key"])

    w = built
    ok = dict(logs=[w["log"]], scan_dir=w["scan"], campaign=w["cluster"], key_files=[w["key"]])

    class TextOnly:  # an endpoint that answers but returns no log-probabilities
        info = w["student"].info

        def generate(self, prompts, **kw):
            return w["student"].generate(prompts, **kw)

    auto = CustodyConfig(n_probes=4, max_new_tokens=8, logprobs_mode="auto", prefix_mode="off")
    r = build_bundle(CustodyInputs(**ok, suspect=TextOnly()), tmp_path / "auto", auto)
    assert "logprobs mode cannot read this suspect" in r.report["skipped"]["radioactivity_logprobs"]
    with pytest.raises(CustodyError, match="logprobs mode: "):
        build_bundle(CustodyInputs(**ok, suspect=TextOnly()), tmp_path / "on",
                     CustodyConfig(n_probes=4, max_new_tokens=8, logprobs_mode="on"))  # fmt: skip
    with pytest.raises(CustodyError, match="logprobs_mode"):
        CustodyConfig(logprobs_mode="always")


def _forge_prefix(built, name: str, edit) -> Path:
    """A forger who holds the secret (so the HMAC holds) and edits the prefix transcript."""
    from distilltrace.marks.secret import Secret

    b = _copy(built, name)
    p = b / "transcripts" / "radioactivity_prefix.json"
    t = json.loads(p.read_text())
    edit(t)
    p.write_text(json.dumps(t))
    _reseal(b, Secret(bytes(range(32))))
    return b


def test_a_forged_prefix_transcript_fails_recomputation(built):
    """Edited continuations change the recomputed statistic; a dropped probe no longer
    matches the positions the stride gives: both fail, naming the claim or the file."""

    def blank(t):
        for p in t["probes"]:
            p["continuation"] = "e"

    with pytest.raises(VerifyError, match="radioactivity_prefix"):
        verify_bundle(_forge_prefix(built, "forged-cont", blank), built["key"])
    with pytest.raises(VerifyError, match="radioactivity_prefix.json: the probed positions"):
        verify_bundle(_forge_prefix(built, "forged-drop", lambda t: t["probes"].pop(3)),
                      built["key"])  # fmt: skip


def test_prefix_mode_auto_and_a_suspect_without_a_prompt_format(built, tmp_path):
    """ "auto" skips prefix mode when open mode read the weights; a suspect that exposes no
    prompt format (an endpoint given without --prefix-format) is named as skipped under
    "auto" and refused under "on"."""
    from distilltrace.custody import CustodyError

    w = built
    ok = dict(logs=[w["log"]], scan_dir=w["scan"], campaign=w["cluster"], key_files=[w["key"]])
    small = CustodyConfig(n_probes=4, max_new_tokens=8)
    r = build_bundle(CustodyInputs(**ok, suspect=w["student"]), tmp_path / "auto", small)
    assert "open mode read the suspect's weights" in r.report["skipped"]["radioactivity_prefix"]

    class Endpointish:  # generates, but has no weights and no chat template to show
        info = w["student"].info

        def generate(self, prompts, **kw):
            return w["student"].generate(prompts, **kw)

    r = build_bundle(CustodyInputs(**ok, suspect=Endpointish()), tmp_path / "ep", small)
    why = r.report["skipped"]["radioactivity_prefix"]
    assert "cannot ask this suspect" in why and "--prefix-format" in why
    # five claims skipped (membership, open, prefix, logprobs, provenance): the page lists
    # them in claim order whatever order report.json's sorted keys give, so it still verifies
    assert len(r.report["skipped"]) == 5
    assert r.report["skipped"]["radioactivity_logprobs"] == "logprobs mode turned off"
    verify_bundle(tmp_path / "ep", w["key"])
    # with our model given, membership still needs the suspect's scores
    r = build_bundle(CustodyInputs(**ok, suspect=Endpointish(), reference=w["teacher"]),
                     tmp_path / "ep2", small)  # fmt: skip
    assert "cannot score text" in r.report["skipped"]["harvest_membership"]
    with pytest.raises(CustodyError, match="prefix mode: .*prompt format"):
        build_bundle(CustodyInputs(**ok, suspect=Endpointish()), tmp_path / "on",
                     CustodyConfig(n_probes=4, max_new_tokens=8, prefix_mode="on"))  # fmt: skip
    with pytest.raises(CustodyError, match="prefix_mode"):
        CustodyConfig(prefix_mode="sometimes")


def test_cli_build_with_prefix_options(built, tmp_path, capsys):
    """`custody build --prefix-mode on --prefix-stride 8 --prefix-format P` records the
    pattern's queries; a bad mode is one line and exit 2."""
    w = built
    base = ["custody", "build", "--log", str(w["log"]), "--scan", str(w["scan"]),
            "--campaign", str(w["cluster"]), "--key", str(w["key"]),
            "--suspect", str(w["dir"] / "student"), "--n-probes", "4", "--no-open"]  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main([*base, "--prefix-mode", "on", "--prefix-stride", "8",
              "--prefix-format", "Q: {prompt}\\nA: ", "--out", str(tmp_path / "b")])  # fmt: skip
    assert e.value.code == 0
    cap = capsys.readouterr()
    out = cap.out
    assert "radioactivity_prefix" in out and "radioactivity_open" in out
    lines = [x for x in cap.err.splitlines() if "prefix mode: " in x]  # progress, with ETA
    assert lines and all(" s, ETA " in x for x in lines) and lines[-1].count("/") == 1
    t = json.loads((tmp_path / "b" / "transcripts" / "radioactivity_prefix.json").read_text())
    assert t["heads"][0].startswith("Q: ") and t["heads"][0].endswith("\nA: ")
    assert {p["position"] % 8 for p in t["probes"]} == {1}
    verify_bundle(tmp_path / "b", w["key"])
    with pytest.raises(SystemExit) as e:
        main([*base, "--prefix-mode", "maybe", "--out", str(tmp_path / "c")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "prefix_mode must be auto, on or off" in err and "Traceback" not in err


def test_cli_build_with_membership_options(built, tmp_path, capsys):
    """`--membership-fresh 2` draws two fresh answers per exchange (three answers scored in
    each transcript row, verify recomputes the claim); `--no-membership` skips it, saying so."""
    w = built
    base = ["custody", "build", "--log", str(w["log"]), "--scan", str(w["scan"]),
            "--campaign", str(w["cluster"]), "--key", str(w["key"]),
            "--suspect", str(w["dir"] / "student"), "--reference", str(w["dir"] / "teacher"),
            "--n-probes", "4", "--no-open", "--prefix-mode", "off"]  # fmt: skip
    with pytest.raises(SystemExit) as e:
        main([*base, "--membership-fresh", "2", "--out", str(tmp_path / "m")])
    assert e.value.code == 0
    assert "harvest_membership" in capsys.readouterr().out
    rows = (tmp_path / "m" / "transcripts" / "harvest_membership.jsonl").read_text().splitlines()
    assert rows and all(len(json.loads(r)["answers"]) == 3 for r in rows)
    assert verify_bundle(tmp_path / "m", w["key"]).recomputed["harvest_membership"] is not None
    with pytest.raises(SystemExit) as e:
        main([*base, "--no-membership", "--out", str(tmp_path / "n")])
    assert e.value.code == 0
    assert "harvest_membership     did not run: membership turned off" in capsys.readouterr().out


def _targets(bundle: Path) -> list[str]:
    """One file of each kind, plus the manifest and the seal; every transcript."""
    m = json.loads((bundle / MANIFEST).read_text())
    by_kind: dict[str, list[str]] = {}
    for f in m["files"]:
        by_kind.setdefault(f["kind"], []).append(f["path"])
    picks = [MANIFEST, SEAL]
    for kind, paths in sorted(by_kind.items()):
        picks += paths if kind in ("transcript", "report") else [max(paths, key=len)]
    return picks


def test_a_flipped_byte_in_any_kind_of_file_fails_naming_it(built):
    """100% of byte-flip trials across file kinds fail verification, naming the file."""
    rng = random.Random(0)
    trials = caught = 0
    for path in _targets(built["bundle"]):
        for trial in range(3):
            b = _copy(built, "tampered")
            p = b / path
            data = bytearray(p.read_bytes())
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
            p.write_bytes(bytes(data))
            trials += 1
            with pytest.raises(VerifyError) as e:
                verify_bundle(b, built["key"])
            name = Path(path).name if path not in (MANIFEST, SEAL) else path
            assert name in str(e.value) or (path == SEAL and MANIFEST in str(e.value)), (
                path, trial, str(e.value),
            )  # fmt: skip
            caught += 1
    assert caught == trials >= 30


def _reseal(b: Path, secret=None) -> None:
    """What a forger without the secret can do: re-hash every file and re-seal."""
    m = json.loads((b / MANIFEST).read_text())
    man = Manifest.from_dict(m)
    kinds = {f.path: f.kind for f in man.files}
    man.files = []
    add_files(b, man, [(b / p, k) for p, k in kinds.items()])
    seal(b, man, secret)


@pytest.mark.parametrize(
    "path,edit,needs",
    [
        ("harvested.jsonl", lambda t: t.replace('"response":"', '"response":"X', 1), "harvested"),
        ("report.json", lambda t: t.replace('"attributed": false', '"attributed": true'), "report"),
        ("campaign.json", lambda t: t.replace("0.", "0.0", 1), "campaign"),
        (
            "transcripts/harvest_membership.jsonl",
            lambda t: t.replace('"suspect_logprob":[-', '"suspect_logprob":[1', 1),
            "harvest_membership",
        ),
        (  # our count of one exchange's prompt tokens: its row is selected otherwise
            "transcripts/membership_context.jsonl",
            lambda t: re.sub(
                r'("our_input_tokens": ?)(\d+)', lambda m: f"{m[1]}{int(m[2]) + 1}", t, count=1
            ),  # fmt: skip
            "harvest_membership",
        ),
    ],
)
def test_a_consistently_rehashed_forgery_fails_recomputation(built, path, edit, needs):
    """A forger who edits a file and re-hashes and re-seals the manifest (no secret) is
    caught by the recomputation; with the secret, the HMAC already fails."""
    b = _copy(built, "forged")
    p = b / path
    new = edit(p.read_text())
    assert new != p.read_text()
    p.write_text(new)
    _reseal(b)
    with pytest.raises(VerifyError) as e:
        verify_bundle(b)
    assert needs in str(e.value)
    with pytest.raises(VerifyError, match="HMAC"):
        verify_bundle(b, built["key"])


def test_a_claim_that_differs_under_another_version_names_the_versions(built):
    """A bundle built by another distilltrace version whose claim does not recompute: the
    error says which versions, since a changed statistic can explain it."""
    from distilltrace import __version__

    b = _copy(built, "oldversion")
    m = json.loads((b / MANIFEST).read_text())
    m["software"]["version"] = "0.0.9"
    (b / MANIFEST).write_text(json.dumps(m))
    rep = json.loads((b / "report.json").read_text())
    for c in rep["claims"]:
        c["pvalue"] = c["pvalue"] / 2
    (b / "report.json").write_text(json.dumps(rep))
    _reseal(b)
    with pytest.raises(VerifyError) as e:
        verify_bundle(b)
    assert "differs from the reported" in str(e.value)
    assert f"built with distilltrace 0.0.9, this is {__version__}" in str(e.value)


def test_a_bundle_without_a_later_setting_verifies_as_built(built, tmp_path):
    """A bundle written before `closed_selection` existed recorded no such key and applied
    both selections: verify reads the recorded config, so it recomputes "both" (the
    claims' meaning of an absent key), not today's default "auto"."""
    from distilltrace.marks.secret import Secret

    w = built
    cfg = CustodyConfig(n_probes=8, max_new_tokens=24, closed_selection="both")
    ins = CustodyInputs([w["log"]], w["scan"], w["cluster"], [w["key"]], w["student"],
                        w["teacher"])  # fmt: skip
    b = build_bundle(ins, tmp_path / "old", cfg).out
    for name in (MANIFEST, "report.json"):
        d = json.loads((b / name).read_text())
        del d["config"]["closed_selection"]
        (b / name).write_text(json.dumps(d))
    _reseal(b, Secret(bytes(range(32))))
    v = verify_bundle(b, w["key"])
    rep = json.loads((b / "report.json").read_text())
    closed = [c for c in rep["claims"] if c["name"] == "radioactivity_closed"][0]
    assert v.recomputed["radioactivity_closed"] == closed["pvalue"]
    assert closed["details"]["max_reference_prob"] is not None  # both selections applied


def test_membership_leaves_out_exchanges_billed_for_more_than_their_row_shows(built, tmp_path):
    """Rules 3: an exchange whose logged input_tokens is not our encoding of the prompt its
    row shows was asked after text the row does not keep (earlier turns in a log without
    context_messages), so fresh answers drawn without it would not be draws of the served
    distribution: it is left out ("hidden_context") and counted. Our counts are recorded
    (transcripts/membership_context.jsonl), so verify selects the same exchanges."""
    from distilltrace.custody.claims import MEMBERSHIP_RULES

    w = built
    harvested = [json.loads(x) for x in (w["bundle"] / "harvested.jsonl").read_text().splitlines()]
    ours = {json.loads(x)["request_id"]: json.loads(x)["our_input_tokens"] for x in
            (w["bundle"] / "transcripts" / "membership_context.jsonl").read_text().splitlines()}  # fmt: skip
    assert set(ours) == {h["request_id"] for h in harvested}
    assert w["res"].report["config"]["membership_rules"] == MEMBERSHIP_RULES == 3
    hidden = {h["request_id"] for h in harvested[:5]}
    log = tmp_path / "log.jsonl"
    with open(log, "w") as f:
        for line in w["log"].read_text().splitlines():
            r = json.loads(line)
            if r.get("request_id") in hidden:
                r["input_tokens"] = ours[r["request_id"]] + 37  # an earlier turn, unlogged
            f.write(json.dumps(r) + "\n")
    cfg = CustodyConfig(n_probes=8, max_new_tokens=24, prefix_mode="off", logprobs_mode="off")
    ins = CustodyInputs([log], w["scan"], w["cluster"], [w["key"]], w["student"], w["teacher"])
    res = build_bundle(ins, tmp_path / "b", cfg)
    c = next(c for c in res.report["claims"] if c["name"] == "harvest_membership")
    assert c["details"]["left_out"]["hidden_context"] == 5
    assert c["n"] == min(len(harvested) - 5, 128)
    tested = {json.loads(x)["request_id"] for x in (res.out / "transcripts" /
              "harvest_membership.jsonl").read_text().splitlines()}  # fmt: skip
    assert not tested & hidden
    assert verify_bundle(res.out).recomputed["harvest_membership"] == c["pvalue"]


def test_wrong_secret_fails_and_cli_exit_codes(built, tmp_path, capsys):
    wrong = tmp_path / "wrong.hex"
    wrong.write_text("11" * 32)
    with pytest.raises(VerifyError, match="committed key id"):
        verify_bundle(built["bundle"], wrong)
    with pytest.raises(VerifyError, match="published digest"):
        verify_bundle(built["bundle"], expect_digest="0" * 64)
    with pytest.raises(SystemExit) as e:
        main(["custody", "verify", str(built["bundle"]), "--secret-file", str(built["key"])])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "OK:" in out and "recomputed radioactivity_closed" in out
    b = _copy(built, "cli-tampered")
    (b / "probes.jsonl").write_text((b / "probes.jsonl").read_text() + "\n")
    with pytest.raises(SystemExit) as e:
        main(["custody", "verify", str(b)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "probes.jsonl" in err and "Traceback" not in err


def test_report_explains_each_pvalue_and_escapes_text(built):
    from markupsafe import escape

    from distilltrace.custody.report import render

    html = (built["bundle"] / "report.html").read_text()
    for c in built["res"].report["claims"]:
        assert str(escape(c["meaning"]["shows"])) in html
        assert str(escape(c["meaning"]["not"])) in html
    rep = json.loads((built["bundle"] / "report.json").read_text())
    rep["campaign"]["label"] = "<script>alert(1)</script>"
    out = render(rep)
    assert "<script>alert(1)" not in out and "&lt;script&gt;" in out


def test_provenance_claim_shows_each_test_per_control(built):
    """The provenance claim carries each test's p-value and, per control, the difference it
    tested and its p-value: the intersection-union p-value of a test is the largest over
    the controls, and the claim's is Bonferroni over the tests. The page shows the table."""
    rep = json.loads((built["bundle"] / "report.json").read_text())
    prov = [c for c in rep["claims"] if c["name"] == "provenance"][0]
    d = prov["details"]
    assert set(d["per_test"]) == set(d["per_test_pvalue"]) and d["per_test"]
    for name, t in d["per_test"].items():
        assert t["pvalue"] == d["per_test_pvalue"][name]
        assert set(t["per_control"]) <= set(d["controls"]) and t["per_control"]
        ps = [v["pvalue"] for v in t["per_control"].values() if v["pvalue"] is not None]
        assert ps and t["pvalue"] >= max(ps) - 1e-12  # intersection-union: the largest
    assert prov["pvalue"] == pytest.approx(
        min(1.0, len(d["per_test"]) * min(d["per_test_pvalue"].values()))
    )
    html = (built["bundle"] / "report.html").read_text()
    assert all(f"<td>{name}</td>" in html for name in d["per_test"])
    assert f"{d['controls'][0]}: difference / p" in html


def test_report_shows_the_model_level_standing(built):
    """With 3 or more controls the provenance claim carries each test's model-level
    standing (provenance.standing); the page states it and the rank p-value's floor."""
    from distilltrace.custody.report import render

    rep = json.loads((built["bundle"] / "report.json").read_text())
    prov = [c for c in rep["claims"] if c["name"] == "provenance"][0]
    assert "Model-level standing" not in render(rep)  # this world has 2 controls
    prov["details"]["standing"] = {
        "likelihood": {"statistic": 13.4, "pvalue": 0.0028, "pvalue_rank": 0.25, "n": 3}
    }
    html = render(rep)
    assert "Model-level standing" in html and "13.4 spreads above" in html
    assert "Student's t with 2 degrees of freedom" in html and "rank among 4 models" in html
    assert "can fall below 0.25" in " ".join(html.split())


def test_report_flags_per_control_pvalues_at_the_monte_carlo_floor(built):
    """A per-control p-value that is the sign-flip test's floor 1 / (B + 1) is marked
    <sup>floor</sup> in its cell, with the note that says what that means; the claim lists
    such controls per test (`monte_carlo_floor`)."""
    from distilltrace.custody.report import render

    rep = json.loads((built["bundle"] / "report.json").read_text())
    d = [c for c in rep["claims"] if c["name"] == "provenance"][0]["details"]
    floor = d["monte_carlo_floor"]
    assert all(set(v) <= set(d["controls"]) and k in d["per_test"] for k, v in floor.items())
    d["monte_carlo_floor"] = {}
    assert "<sup>floor</sup>" not in render(rep)
    name = sorted(d["per_test"])[0]
    ctl = sorted(d["per_test"][name]["per_control"])[0]
    d["monte_carlo_floor"] = {name: [ctl]}
    html = render(rep)
    assert html.count("<sup>floor</sup>") == 2  # the cell and the note
    assert "Monte Carlo floor 1 / (B + 1)" in " ".join(html.split())


def test_tests_stopped_before_they_ran_are_not_shown_as_evidence(built):
    """A test that counts as p = 1 without looking at data (stopped because the earlier
    tests had decided, or a greedy test whose stream drew no probe) is listed in the
    claim's `not_run` with why, and the page shows "not run" instead of p = 1."""
    from distilltrace.custody.claims import _not_run
    from distilltrace.custody.report import render
    from distilltrace.provenance.agreement import GreedyAgreement
    from distilltrace.provenance.result import TestResult, decided_test
    from distilltrace.provenance.stream import StreamRecord

    stream = StreamRecord.empty(("a", "b"))
    stream.stop_reason = "not run: the fixed-sample tests already reached 0.0025"
    greedy = GreedyAgreement().run(SimpleNamespace(stream=stream))
    tests = {"lexical_fingerprint": decided_test("lexical_fingerprint", "H0", 0.0025, 1e-9),
             "greedy_agreement": greedy,
             "likelihood": TestResult("likelihood", "H0", 1e-9, n=40),
             "likelihood_reverse": TestResult("likelihood_reverse", "H0", 1.0, n=80)}  # fmt: skip
    assert greedy.pvalue == 1.0 and greedy.n == 0
    why = _not_run(tests)
    assert set(why) == {"lexical_fingerprint", "greedy_agreement"}
    assert "stopping level 0.0025" in why["lexical_fingerprint"]
    assert (
        "no greedy probe drawn" in why["greedy_agreement"] and "0.0025" in why["greedy_agreement"]
    )

    rep = json.loads((built["bundle"] / "report.json").read_text())
    d = [c for c in rep["claims"] if c["name"] == "provenance"][0]["details"]
    assert d["not_run"] == {}  # the test world's tests all ran
    assert "not run<sup>*</sup>" not in render(rep)
    name = sorted(d["per_test"])[0]
    d["not_run"] = {name: "not run (counted as p = 1): <b>decided</b>"}
    html = " ".join(render(rep).split())
    assert f"<td>{name}</td><td>not run<sup>*</sup></td>" in html
    assert html.count('<td class="muted">not run</td>') == len(d["controls"])
    assert "the test looked at no data" in html and "&lt;b&gt;decided" in html


def test_provenance_recomputed_from_the_transcripts_alone(built, tmp_path):
    """`recompute_provenance` (and the standing benchmark on it) replays the bundle's
    provenance transcript with no model: the same claim as the report's."""
    from benchmarks.custody_standing import main, rows
    from distilltrace.custody.verify import recompute_provenance

    rep = json.loads((built["bundle"] / "report.json").read_text())
    prov = [c for c in rep["claims"] if c["name"] == "provenance"][0]
    again = recompute_provenance(built["bundle"]).to_dict()
    assert again["pvalue"] == prov["pvalue"] and again["details"]["per_test"] == prov[
        "details"]["per_test"]  # fmt: skip
    rs = rows(built["bundle"])
    assert {r["test"] for r in rs} == set(prov["details"]["per_test"])
    assert all(r["standing_pvalue"] is None for r in rs)  # 2 controls
    assert main([str(built["bundle"])]) == 0
    with pytest.raises(VerifyError, match="manifest.json"):
        recompute_provenance(tmp_path)


def test_a_bundle_written_before_per_test_evidence_verifies(built):
    """Bundles written before the provenance claim carried `per_test` (same version) still
    verify: a detail added since is compared only when the bundle has it."""
    from distilltrace.custody.report import render
    from distilltrace.marks.secret import Secret

    b = _copy(built, "before-per-test")
    rep = json.loads((b / "report.json").read_text())
    assert rep["claims"][-1]["name"] == "provenance"
    per_test = rep["claims"][-1]["details"].pop("per_test")
    assert rep["claims"][-1]["details"].pop("standing") == {}  # 2 controls: none measured
    assert isinstance(rep["claims"][-1]["details"].pop("monte_carlo_floor"), dict)
    (b / "report.json").write_text(json.dumps(rep, sort_keys=True))
    (b / "report.html").write_text(render(json.loads((b / "report.json").read_text())))
    _reseal(b, Secret(bytes(range(32))))
    assert "difference / p" not in (b / "report.html").read_text()
    v = verify_bundle(b, built["key"])
    assert "provenance" in v.recomputed
    name = sorted(per_test)[0]
    per_test[name]["pvalue"] = 0.5 if per_test[name]["pvalue"] != 0.5 else 0.25
    rep["claims"][-1]["details"]["per_test"] = per_test
    (b / "report.json").write_text(json.dumps(rep, sort_keys=True))
    (b / "report.html").write_text(render(json.loads((b / "report.json").read_text())))
    _reseal(b, Secret(bytes(range(32))))
    with pytest.raises(VerifyError, match="details differ"):  # present: compared in full
        verify_bundle(b, built["key"])


def test_build_refuses_bad_inputs(built, tmp_path):
    from distilltrace.custody import CustodyError

    w = built
    ok = dict(logs=[w["log"]], scan_dir=w["scan"], campaign=w["cluster"], key_files=[w["key"]],
              suspect=w["student"])  # fmt: skip
    bad = [
        ({"campaign": 10**6}, "not a campaign"),
        ({"scan_dir": tmp_path}, "scan folder"),
        ({"key_files": []}, "one key"),
        ({"logs": [tmp_path / "nope.jsonl"]}, "not found"),
    ]
    for i, (change, msg) in enumerate(bad):
        with pytest.raises(CustodyError, match=msg):
            build_bundle(CustodyInputs(**{**ok, **change}), tmp_path / f"o{i}")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(CustodyError, match="not an empty folder"):
        build_bundle(CustodyInputs(**ok), tmp_path / "full")


def test_cli_build_checks_its_folder_before_loading_a_model(built, tmp_path, capsys):
    """`custody build --out` that cannot take a bundle is one line and exit 2, before the
    suspect is loaded (it does not exist here, and is never reached)."""
    w = built
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    base = ["custody", "build", "--log", str(w["log"]), "--scan", str(w["scan"]),
            "--campaign", str(w["cluster"]), "--key", str(w["key"]),
            "--suspect", str(tmp_path / "no-such-model")]  # fmt: skip
    for out, says in ((tmp_path / "full", "not an empty folder"),
                      (tmp_path / "full" / "x" / "b", "is a file, so no folder")):  # fmt: skip
        with pytest.raises(SystemExit) as e:
            main([*base, "--out", str(out)])
        err = capsys.readouterr().err
        assert e.value.code == 2 and says in err and "no-such-model" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full"]  # nothing left behind


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not on PATH")
def test_report_renders_in_headless_chromium(built, tmp_path):
    import subprocess

    from distilltrace.custody.report import render

    rep = json.loads((built["bundle"] / "report.json").read_text())
    rep["campaign"]["label"] = "<img src=x onerror=\"document.title='PWNED'\">"
    page = tmp_path / "report.html"
    page.write_text(render(rep))
    args = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom", page.resolve().as_uri()]  # fmt: skip
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Custody report" in r.stdout and "What each p-value shows" in r.stdout
    assert "PWNED" not in r.stdout.split("<body")[0]


def test_campaign_claim_is_calibrated_on_null_groups():
    """Null: the members are a random sample of the population, so their behaviour and
    harvest tails are independent Uniform(0, 1). The campaign claim (the scan's two routes
    combined by a union bound) must reject at most alpha of 4,000 null groups, with and
    without harvest tails, and with several members per customer unit."""
    import numpy as np

    from distilltrace.custody.claims import campaign_claim
    from distilltrace.stats import binomial_slack

    rng = np.random.default_rng(7)
    n = 4000
    for with_harvest in (True, False):
        ps = []
        for _ in range(n):
            k = int(rng.integers(2, 12))
            c = {
                "members": [f"a{i}" for i in range(k)],
                "units": [f"u{i // 2}" for i in range(k)],
                "member_tail_p": rng.uniform(size=k).tolist(),
                "n_clusters_tested": 1,
                "harvest_alpha": 0.2,  # large, so that the joint route is exercised
            }
            if with_harvest:
                c["member_harvest_log10_tails"] = {
                    s: (-np.log10(rng.uniform(size=k))).tolist() for s in ("elicitation", "intent")
                }
            ps.append(campaign_claim(c).pvalue)
        ps = np.asarray(ps)
        for alpha in (0.01, 0.05, 0.2):
            assert (ps <= alpha).mean() <= alpha + binomial_slack(n, alpha)


def test_closed_selection_picks_one_selection_by_the_scheme():
    """ "auto": with our model's probabilities, a distortion-free scheme scores only the
    tokens it was unsure of and drops the window filter; a green list keeps the window
    filter only; without probabilities the window filter. "both" (old bundles) keeps both."""
    from types import SimpleNamespace

    from distilltrace.custody.claims import closed_selection
    from distilltrace.marks.schemes import SchemeParams

    tour = SimpleNamespace(impl=SchemeParams("tournament").impl)
    green = SimpleNamespace(impl=SchemeParams("greenlist").impl)
    auto = CustodyConfig().to_dict()
    assert auto["closed_selection"] == "auto"
    assert closed_selection(tour, auto, True) == (None, True)
    assert closed_selection(tour, auto, False) == (2, False)
    assert closed_selection(green, auto, True) == (2, False)
    old = {k: v for k, v in auto.items() if k != "closed_selection"}  # a bundle before "auto"
    assert closed_selection(tour, old, True) == (2, True)
    assert closed_selection(green, {**auto, "max_reference_prob": None}, True) == (2, False)
    with pytest.raises(Exception, match="closed_selection must be auto or both"):
        CustodyConfig(closed_selection="neither")


def test_membership_claim_finds_the_harvest_in_the_student(built):
    """Every harvested exchange is tested or counted as left out; the transcript holds the
    served answer first, as the log has it, under the logged settings; the claim's numbers
    are the rank test's on the recorded scores. (This byte student, 6 epochs on 300 strings
    of random printable bytes, barely memorises them: the claim's power is asserted on
    SmolLM2 in the demo test, and on scores in tests/provenance/test_membership.py.)"""
    from distilltrace.provenance.membership import membership_test, per_char_score

    rep = built["res"].report
    c = next(c for c in rep["claims"] if c["name"] == "harvest_membership")
    d = c["details"]
    harvested = [
        json.loads(x) for x in (built["bundle"] / "harvested.jsonl").read_text().splitlines()
    ]
    assert c["n"] + sum(d["left_out"].values()) == len(harvested)
    assert c["n"] == min(len(harvested), 128) and d["k"] == 1
    rows = [json.loads(x) for x in (built["bundle"] / "transcripts" /
            "harvest_membership.jsonl").read_text().splitlines()]  # fmt: skip
    by_id = {h["request_id"]: h for h in harvested}
    for r in rows:
        assert r["answers"][0] == by_id[r["request_id"]]["response"]
        assert r["settings"] == {"temperature": 1.0, "max_tokens": 48, "top_p": 1.0,
                                 "system_prompt": False}  # fmt: skip
        assert len(r["answers"]) == len(r["suspect_logprob"]) == len(r["reference_logprob"]) == 2
    sc = [[per_char_score(a, b, t) for a, b, t in zip(r["suspect_logprob"], r["reference_logprob"],
                                                      r["answers"], strict=True)] for r in rows]  # fmt: skip
    t = membership_test([x[0] for x in sc], [x[1:] for x in sc], seed=0)
    assert (c["pvalue"], c["statistic"], d["rank_sum"]) == (t.pvalue, t.statistic, t.rank_sum)
    assert d["served_beats_every_fresh"] == sum(x[0] > x[1] for x in sc)


@pytest.mark.parametrize("system", ["", "Reply only with the word ZEBRA, in capitals."])
def test_membership_claim_is_calibrated_on_suspects_that_never_saw_the_answers(built, system):
    """Null: the suspect's weights do not depend on the served answers. Served answers are
    drawn anew for each of 30 trials (the teacher, the key and the server's processors,
    temperature 1, seed = trial), fresh ones by the build's own code; the suspects are
    the two controls (random models that never saw either). Of the 60 p-values at most
    alpha + binomial slack fall at or below 0.05 and 0.2, and the test is not trivially
    conservative (some fall below 0.5). With a system prompt (rules 2) the served answers
    are drawn after it as serve draws them (`draw_after_system`, the server's answers in
    tests/provenance/test_membership_system.py) and the fresh ones after it too."""
    import numpy as np

    from distilltrace.custody.build import _fresh_answers
    from distilltrace.marks.keys import load_watermark
    from distilltrace.provenance.membership import (
        draw_after_system,
        score_exchanges,
        test_logprobs,
    )
    from distilltrace.stats import binomial_slack

    teacher, wm = built["teacher"], load_watermark(built["key"])
    harvested = [
        json.loads(x) for x in (built["bundle"] / "harvested.jsonl").read_text().splitlines()
    ]
    prompts = sorted({h["prompt"] for h in harvested})[:24]
    procs = [PrintableAscii(), *wm.logits_processors(teacher)]
    st = [{"temperature": 1.0, "top_p": 1.0, "max_tokens": 24}] * len(prompts)
    systems = [system] * len(prompts)
    ps = []
    for trial in range(30):
        kw = dict(max_new_tokens=24, temperature=1.0, seed=trial, logits_processors=procs)
        served = (draw_after_system(teacher, prompts, systems, **kw) if system
                  else [g.text for g in teacher.generate(prompts, **kw)])  # fmt: skip
        cfg = CustodyConfig(membership_seed=10_000 + trial)
        fresh = _fresh_answers(teacher, wm, prompts, st, cfg, [PrintableAscii()], systems)
        answers = [[s, *f] for s, f in zip(served, fresh, strict=True)]
        for suspect in built["controls"]:
            s_lp, r_lp = score_exchanges(suspect, teacher, prompts, answers)
            ps.append(test_logprobs(s_lp, r_lp, answers, seed=trial).pvalue)
    ps = np.asarray(ps)
    for a in (0.05, 0.2):
        assert (ps <= a).mean() <= a + binomial_slack(len(ps), a), ps
    assert (ps <= 0.5).mean() >= 0.2, ps


def test_jsonl_rows_keep_unicode_line_separators_inside_their_text(tmp_path):
    """JSON Lines rows are separated by "\\n" only: U+0085, U+2028 and U+2029 inside a
    string are written raw (ensure_ascii=False), and a model's answer may hold them (a tiny
    byte model's transcript did, and verification failed on it)."""
    from distilltrace.custody.bundle import read_jsonl

    rows = [{"response": "a\x85b\u2028c\u2029d\x1ce"}, {"response": "plain"}]
    p = tmp_path / "t.jsonl"
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    assert read_jsonl(p) == rows


@pytest.fixture
def served_student(built):
    """The world's student behind the project's own OpenAI-compatible server (loopback,
    started here): an API-only suspect. Yields its spec and the server's context, which
    the test leaves (stopping the server) before it verifies."""
    import contextlib

    from distilltrace.gateway.demo import serve_in_thread
    from distilltrace.serve.app import create_app

    with contextlib.ExitStack() as stack:
        base = stack.enter_context(serve_in_thread(create_app(built["student"])))
        yield f"openai:{base}/v1;model=student", stack


def test_an_endpoint_suspect_is_bundled_and_verified_without_querying_it_again(
    built, served_student, tmp_path
):
    """The API-only case over real HTTP: the suspect is identified by its endpoint and the
    hashes of what it answered (no weights), open mode is skipped as not local, and verify
    recomputes every claim that ran from the transcripts after the server has stopped."""
    from distilltrace.models import load_model

    spec, server = served_student
    w = built
    prov = {**PROV, "capability_check": False, "budget": 80}
    cfg = CustodyConfig(n_probes=8, max_new_tokens=24, temperature=0.7, provenance=prov,
                        prefix_mode="off", logprobs_mode="auto")  # fmt: skip
    inputs = CustodyInputs(
        [w["log"]], w["scan"], w["cluster"], [w["key"]], load_model(spec), w["teacher"],
        w["controls"], serving_processors=[PrintableAscii()], tokenizer=w["student"].tokenizer,
    )  # fmt: skip
    res = build_bundle(inputs, tmp_path / "b", cfg)
    rep = res.report
    ran = {c["name"]: c["pvalue"] for c in rep["claims"] if c["pvalue"] is not None}
    # the project's server returns scores and top-k log-probabilities, so the suspect-side
    # claims that need them run through the API too
    assert set(ran) == {
        "campaign", "harvest_mark", "harvest_membership", "radioactivity_closed",
        "radioactivity_logprobs", "provenance",
    }, rep["skipped"]  # fmt: skip
    assert (
        rep["skipped"]["radioactivity_open"] == "the suspect's weights are not local (an endpoint)"
    )
    suspect = json.loads((tmp_path / "b" / "models.json").read_text())["suspect"]
    assert suspect["backend"] == "openai" and suspect["spec"] == spec
    assert "weights" not in suspect["supports"]
    # the identity the server states for what it serves: the student's own
    assert suspect["extra"]["served_identity"] == w["student"].info.identity
    server.close()  # the server stops: verify must not need the suspect
    v = verify_bundle(tmp_path / "b", w["key"], expect_digest=res.manifest_sha256)
    assert set(v.recomputed) == set(ran) and not v.not_recomputed
    for name, p in ran.items():
        assert v.recomputed[name] == p, name


def test_a_campaign_named_by_its_accounts(built, tmp_path):
    """--campaign as accounts: the scan's own group, named by its members in any order,
    gives the cluster's claim; another set (one member dropped) is tested as one more
    group than the scan tested; the CLI reads a list and @FILE; unknown accounts fail."""
    from distilltrace.custody import CustodyError
    from distilltrace.custody.build import _scan_campaign
    from distilltrace.custody.claims import campaign_claim
    from distilltrace.custody.cli import _campaign
    from distilltrace.custody.logs import customer_units, member_lines

    def claim(camp):
        lines = member_lines(Path(built["log"]), set(camp["members"]))
        rows = [json.loads(x) for x in lines]
        return campaign_claim({**camp, "units": customer_units(rows, camp["members"])})

    by_id = _scan_campaign(built["scan"], built["cluster"])
    members = by_id["members"]
    assert len(members) >= 3
    by_list = _scan_campaign(built["scan"], list(reversed(members)))
    assert by_list == by_id
    assert claim(by_list).pvalue == claim(by_id).pvalue <= 1e-6
    fewer = _scan_campaign(built["scan"], members[1:])
    assert fewer["label"] == f"{len(members) - 1} named accounts"
    assert fewer["n_clusters_tested"] == by_id["n_clusters_tested"] + 1
    assert fewer["scan_pvalue_adjusted"] is None
    assert claim(by_id).pvalue < claim(fewer).pvalue <= 1  # fewer members, one more group
    f = tmp_path / "accounts.txt"
    f.write_text("\n".join(members) + "\n\n")
    assert _campaign(f"@{f}") == members
    assert _campaign(" , ".join(members)) == members
    assert _campaign(str(built["cluster"])) == built["cluster"]
    with pytest.raises(CustodyError, match="file not found"):
        _campaign(f"@{tmp_path / 'none.txt'}")
    with pytest.raises(CustodyError, match="are not in"):
        _scan_campaign(built["scan"], [*members, "no-such-account"])
