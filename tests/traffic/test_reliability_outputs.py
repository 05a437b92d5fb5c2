"""Reliability of a scan's outputs: --out checked before any work, files all or nothing
(also under kill -9), extreme values never break the report, no -0.0, no leaked paths."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from handmade_logs import make_benign, make_hydra
from typer.testing import CliRunner

from distilltrace.errors import InputError
from distilltrace.traffic import outputs, scan
from distilltrace.traffic.outputs import OUTPUT_FILES, prepare_out_dir


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "distilltrace.cli", "traffic", "scan", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".distilltrace-" in p.name)


@pytest.fixture(scope="module")
def tiny_log(tmp_path_factory):
    df = pd.concat(
        [make_benign(60, seed=0, hard=False), make_hydra(12, 6, seed=1)], ignore_index=True
    )
    path = tmp_path_factory.mktemp("tiny") / "tiny.parquet"
    df.to_parquet(path, index=False)
    return path


# ------------------------------------------------------------------ 3. --out before any work


def _scan_must_not_run(monkeypatch):
    import distilltrace.traffic.scanner as scanner

    def boom(*a, **k):
        raise AssertionError("the scan ran before --out was checked")

    monkeypatch.setattr(scanner, "scan", boom)


def test_out_is_a_file_is_refused_before_any_work(tmp_path, monkeypatch, tiny_log):
    from distilltrace.cli import app

    _scan_must_not_run(monkeypatch)
    f = tmp_path / "taken"
    f.write_text("x")
    r = CliRunner().invoke(app, ["traffic", "scan", str(tiny_log), "--out", str(f)])
    assert isinstance(r.exception, InputError), r.output
    assert str(r.exception) == f"--out {f}: is a file, not a folder"
    assert f.read_text() == "x"


def test_out_is_a_file_one_line_error(tmp_path, tiny_log):
    f = tmp_path / "taken"
    f.write_text("x")
    r = _cli(str(tiny_log), "--out", str(f))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: --out {f}: is a file, not a folder"]


def test_out_without_write_permission_refused_before_any_work(tmp_path, monkeypatch, tiny_log):
    """Simulated with os.access (the tests may run as root, who may write anywhere)."""
    from distilltrace.cli import app

    _scan_must_not_run(monkeypatch)
    locked = tmp_path / "locked"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(
        outputs.os,
        "access",
        lambda p, m, *a, **k: False if Path(p) == locked and m & os.W_OK else real(p, m, *a, **k),
    )
    r = CliRunner().invoke(app, ["traffic", "scan", str(tiny_log), "--out", str(locked)])
    assert isinstance(r.exception, InputError), r.output
    assert "no permission to write" in str(r.exception)
    r = CliRunner().invoke(app, ["traffic", "scan", str(tiny_log), "--out", str(locked / "sub")])
    assert isinstance(r.exception, InputError)
    assert f"no permission to write in {locked}" in str(r.exception)


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a read-only folder")
def test_out_in_read_only_folder_real_permissions(tmp_path, tiny_log):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        r = _cli(str(tiny_log), "--out", str(ro / "out"))
    finally:
        ro.chmod(0o755)
    assert r.returncode == 2 and "no permission to write" in r.stderr


def test_out_holding_other_files_is_refused(tmp_path, monkeypatch, tiny_log):
    from distilltrace.cli import app

    _scan_must_not_run(monkeypatch)
    d = tmp_path / "mine"
    d.mkdir()
    (d / "thesis.tex").write_text("precious")
    r = CliRunner().invoke(app, ["traffic", "scan", str(tiny_log), "--out", str(d)])
    assert isinstance(r.exception, InputError)
    assert "thesis.tex" in str(r.exception)
    assert (d / "thesis.tex").read_text() == "precious"


def test_prepare_out_dir_for_the_library(tmp_path):
    """The helper `scanner.scan` calls first: checks, returns an uncreated staging path."""
    with pytest.raises(InputError, match="is a file"):
        f = tmp_path / "f"
        f.write_text("")
        prepare_out_dir(f)
    st = prepare_out_dir(tmp_path / "out")
    assert st.parent == tmp_path and st.name.startswith(".out.distilltrace-partial-")
    assert not st.exists() and not (tmp_path / "out").exists()
    assert prepare_out_dir(st) == st  # idempotent
    assert prepare_out_dir(None) is None


# ------------------------------------------------------------------ 3. all or nothing


def test_previous_scan_replaced_whole(tmp_path, tiny_log):
    out = tmp_path / "out"
    scan(tiny_log, out_dir=out)
    (out / "summary.json").write_text('{"stale": true}')
    (out / "timings.json").unlink()
    (out / "eval.json").write_text("{}")  # `traffic evaluate` of the previous scan
    r = _cli(str(tiny_log), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    assert "stale" not in json.loads((out / "summary.json").read_text())
    assert _leftovers(tmp_path) == []


def test_failed_scan_leaves_out_untouched(tmp_path, monkeypatch, tiny_log):
    out = tmp_path / "out"
    res = scan(tiny_log, out_dir=out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(outputs, "render_report", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        scan(tiny_log, out_dir=out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _leftovers(tmp_path) == []
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        scan(tiny_log, out_dir=fresh)
    assert not fresh.exists() and _leftovers(tmp_path) == []
    assert res.files["report"] == str(out / "report.html")


def test_cli_failed_scan_leaves_no_folder(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("request_id,timestamp,account_id\n1,2026-01-01T00:00:00Z,a\n")
    r = _cli(str(bad), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert not (tmp_path / "o").exists() and _leftovers(tmp_path) == []


def test_outputs_validated_before_the_move(tmp_path, monkeypatch, tiny_log):
    """A file missing or short of rows at the end: an error, and nothing moved in place."""
    real = outputs._write_all

    def lossy(result, out):
        files = real(result, out)
        (out / "campaigns.json").unlink()
        return files

    monkeypatch.setattr(outputs, "_write_all", lossy)
    with pytest.raises(outputs.OutputError, match="campaigns.json"):
        scan(tiny_log, out_dir=tmp_path / "o")
    assert not (tmp_path / "o").exists() and _leftovers(tmp_path) == []


#: Run `traffic scan` with one step of the output writer held: it writes a marker file,
#: then sleeps until killed. The kill then lands at a known point, not by a race.
_HELD_SCAN = """
import sys, time, pathlib
from distilltrace.traffic import outputs
marker, point = pathlib.Path(sys.argv[1]), sys.argv[2]
def hold(*args, **kwargs):
    marker.write_text(point)
    time.sleep(600)
setattr(outputs, point, hold)
sys.argv = ["distilltrace", *sys.argv[3:]]
from distilltrace.cli import main
main()
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "point",
    ["render_report", "_commit"],  # half the files written; every file written and checked
)
def test_kill_9_during_scan_leaves_no_partial_output(tmp_path, tiny_log, point):
    out, marker = tmp_path / "out", tmp_path / "held"
    cmd = [sys.executable, "-c", _HELD_SCAN, str(marker), point]
    cmd += ["traffic", "scan", str(tiny_log), "--out", str(out), "--no-content"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 540
    while proc.poll() is None and not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"the scan ended before it could be killed: {proc.stderr.read()}"
    assert marker.exists(), "the scan never reached the held step"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    left = _leftovers(tmp_path)
    assert len(left) == 1 and left[0].startswith(".out.distilltrace-partial-"), left
    assert any((tmp_path / left[0]).iterdir())  # killed while its files were being written
    assert not out.exists()  # no partial --out folder
    r = _cli(str(tiny_log), "--out", str(out), "--no-content")  # the next run cleans up
    assert r.returncode == 0, r.stderr
    assert _leftovers(tmp_path) == []
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)


# ------------------------------------------------------------------ 2. report never crashes


def _timeline_campaign(days):
    from types import SimpleNamespace

    return SimpleNamespace(timeline=[{"day": d, "requests": 3, "accounts": 2} for d in days])


@pytest.mark.parametrize(
    "days",
    [[-719_162, -719_161], [2_932_896], [10**7], [-(10**9)], [20_000, 2_932_896]],
)
def test_timeline_with_extreme_days_does_not_crash(days):
    assert outputs._timeline_png(_timeline_campaign(days)) is None


def test_timeline_normal_days_drawn():
    assert outputs._timeline_png(_timeline_campaign([20_500, 20_501])).startswith("data:image/png")


@pytest.mark.parametrize("stamp", ["0001-01-01 00:00:00", "9999-12-31 23:59:59", "12026-01-01"])
def test_extreme_timestamp_in_a_campaign_account_scan_completes(tmp_path, stamp):
    df = pd.concat(
        [make_benign(80, seed=2, hard=False), make_hydra(15, 8, seed=3)], ignore_index=True
    )
    df["timestamp"] = df["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    hit = df.index[df["campaign_id"].notna()][0]
    df.loc[hit, "timestamp"] = stamp
    out = tmp_path / "out"
    res = scan(df, out_dir=out)
    assert (out / "report.html").exists() and (out / "summary.json").exists()
    assert res.summary["rows_quarantined"] == 1
    (reason,) = res.summary["load"]["quarantine_reasons"]
    assert reason.startswith("timestamp: ")


# ------------------------------------------------------------------ 5. -0.0 and leaked paths


def test_no_negative_zero_in_outputs(tmp_path, tiny_log):
    out = tmp_path / "out"
    res = scan(tiny_log, out_dir=out)
    assert (res.accounts["risk"] == 0).any()  # the case that used to show as -0.0
    for name in ("accounts.parquet", "requests.parquet"):
        t = pq.read_table(out / name).to_pandas()
        for c in t.columns:
            if t[c].dtype.kind == "f":
                x = t[c].to_numpy()
                assert not np.any((x == 0) & np.signbit(x)), (name, c)
    for name in ("campaigns.json", "summary.json"):
        assert "-0.0" not in (out / name).read_text(), name
    html = (out / "report.html").read_text()
    assert ">-0.0" not in html and " -0.0" not in html


def test_num_filter_and_json_drop_the_sign_of_zero():
    from distilltrace.report import to_jsonable
    from distilltrace.report.render import num

    assert math.copysign(1, to_jsonable(-0.0)) == 1.0
    assert json.dumps(to_jsonable({"a": [-0.0, np.float64(-0.0)]})) == '{"a": [0.0, 0.0]}'
    assert num(-0.0) == "0.00" and num(-0.001, "%.2f") == "0.00" and num(-1.5, "%.1f") == "-1.5"
    assert num(-0.0, "%s") == "0.0" and num(None, "%s") == "None"


def test_requests_written_by_the_engine_get_no_negative_zero(tmp_path):
    import pyarrow as pa

    p = tmp_path / "r.parquet"
    pq.write_table(pa.table({"score": [-0.0, 1.0, float("nan")], "id": ["a", "b", "c"]}), p)
    outputs._fix_negative_zero_parquet(p)
    x = pq.read_table(p).column("score").to_numpy()
    assert not np.signbit(x[0]) and x[1] == 1.0 and np.isnan(x[2])


def test_tail_of_extreme_values_gives_no_overflow_warning():
    from distilltrace.traffic.fusion import upper_tail

    x = np.r_[np.random.default_rng(0).exponential(1.0, 300), -1e4, -np.inf, np.nan, 1e6]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's RuntimeWarning (overflow in exp) would raise
        got = upper_tail(x)
    assert np.isfinite(got).all() and got[-1] < 1e-100
    assert got[-2] == 1.0 and got[-3] > 0.99 and got[-4] > 0.99  # the bulk: empirical tail


def test_scan_stderr_leaks_no_source_path(tmp_path):
    """An account created in 1970 next to fresh ones made the exp in the tail overflow:
    numpy's warning printed .../fusion.py:NN on stderr."""
    df = make_benign(120, seed=4, hard=False)
    df["account_created_at"] = df["timestamp"] - pd.Timedelta(days=30)
    first = df["account_id"].iloc[0]
    df.loc[df["account_id"] == first, "account_created_at"] = pd.Timestamp("1970-01-02", tz="UTC")
    p = tmp_path / "old.parquet"
    df.to_parquet(p, index=False)
    r = _cli(str(p), "--out", str(tmp_path / "o"))
    assert r.returncode == 0, r.stderr
    assert "fusion.py" not in r.stderr and "Warning" not in r.stderr, r.stderr


def test_scan_help_states_the_out_contract_as_flowing_text():
    """Rich help kept the docstring's hard line breaks after its first paragraph, so a
    terminal narrower than the source's lines showed ragged half-lines."""
    from distilltrace.cli import app

    r = CliRunner().invoke(app, ["traffic", "scan", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "staging folder next to it and moved into place" in r.output, r.output
