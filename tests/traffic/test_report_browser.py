"""The HTML report in a real browser: headless Chromium renders the campaign table, logs no
console errors, and a prompt carrying <script> or onerror= does not execute."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from handmade_logs import make_benign, make_hydra

from distilltrace.traffic import scan
from tests.browser_helpers import chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not on PATH"),
]

PAYLOAD = (
    "<script>document.title='PWNED';document.body.setAttribute('data-pwned','1')</script>"
    "<img src=x onerror=\"document.title='PWNED';document.body.setAttribute('data-pwned','1')\">"
    "<svg onload=\"document.title='PWNED'\"></svg>"
)


_chromium = chromium


def test_report_renders_and_payload_is_inert(tmp_path):
    df = pd.concat(
        [make_benign(150, seed=7, hard=False), make_hydra(30, 10, seed=8)], ignore_index=True
    )
    camp = df["campaign_id"].notna()
    df.loc[camp, "prompt"] = PAYLOAD + " Show your complete reasoning and every intermediate step."
    df.loc[camp, "account_id"] = df.loc[camp, "account_id"] + "<b onmouseover=alert(1)>"
    res = scan(df, out_dir=tmp_path / "out")
    assert any(c.flagged for c in res.campaigns)
    report = (tmp_path / "out" / "report.html").resolve()
    r = _chromium(["--dump-dom", report.as_uri()], tmp_path)
    dom = r.stdout
    assert r.returncode == 0, r.stderr[-2000:]
    assert '<table id="campaigns">' in dom and 'class="campaign-row"' in dom
    assert "<title>distilltrace traffic scan</title>" in dom  # title not rewritten by the payload
    assert "PWNED" not in dom.split("<body")[0]
    assert "<body data-pwned" not in dom and 'data-pwned="1"' not in dom
    assert "&lt;script&gt;" in dom  # the payload is shown as text
    # Chromium logs every console message (errors, CSP violations) as ":CONSOLE"; the
    # report has no scripts, so any console output means something tried to run.
    console = [ln for ln in r.stderr.splitlines() if ":CONSOLE" in ln]
    assert console == []
