"""Key files written by earlier versions still load and detect exactly as they did.

tests/marks/data holds key files written before schemes became registered classes and
before the tokenizer fingerprint was unified (data/README.md): format /2 files (with the
MAC, fingerprint "261:<24 hex>") and format /1 files (no MAC), plus the key ids, window
seeds, per-tuple scores, test statistics and processor outputs the old code computed."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from distilltrace.marks.detect import TupleScorer
from distilltrace.marks.keys import KEY_FORMAT, LegacyKeyWarning, load_watermark, upgrade_key_file
from distilltrace.models.identity import tokenizer_fingerprint

DATA = Path(__file__).parent / "data"
EXPECTED = json.loads((DATA / "key_fixture_expected.json").read_text())
CASES = [(v, name) for v in (1, 2) for name in ("greenlist", "gumbel")]


def _load(version: int, name: str):
    path = DATA / f"key_v{version}_{name}.json"
    if version == 1:
        with pytest.warns(LegacyKeyWarning):
            return load_watermark(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a /2 file loads silently: its MAC still verifies
        return load_watermark(path)


@pytest.mark.parametrize("version,name", CASES)
def test_old_key_files_load_and_score_as_before(version, name, byte_tok):
    exp = EXPECTED["keys"][name]
    wm = _load(version, name)
    assert wm.key_id == exp["key_id"] and wm.scheme == name
    # the recorded fingerprint is the old format; the same tokenizer is still accepted
    assert wm.tokenizer.fingerprint == EXPECTED["tokenizer_fingerprint"]
    assert wm.tokenizer.fingerprint != tokenizer_fingerprint(byte_tok)
    wm.check_tokenizer(byte_tok)
    ids = EXPECTED["ids"]
    seeds = wm.sequence_seeds(ids[:20])
    assert [str(int(s)) for s in seeds] == exp["seeds"]
    toks = np.array(ids[wm.context_width : 20])
    # to 1e-12: libm's vectorised log1p may differ in the last bit between CPUs
    scores = [float(x) for x in wm.tuple_scores(seeds, toks)]
    assert scores == pytest.approx(exp["tuple_scores"], rel=1e-12, abs=0)
    sc = TupleScorer(wm)
    sc.add_sequence(ids)
    t = sc.test(min_scored=1)
    assert t.n_scored == exp["n_scored"]
    assert (t.statistic, t.log10_pvalue) == pytest.approx(
        (exp["statistic"], exp["log10_pvalue"]), rel=1e-12, abs=0
    )


@pytest.mark.parametrize("name", ["greenlist", "gumbel"])
def test_old_key_files_mark_generation_as_before(name):
    exp = EXPECTED["keys"][name]
    wm = _load(2, name)
    ids = torch.tensor(EXPECTED["processor_input"]["ids"])
    g = torch.Generator().manual_seed(EXPECTED["processor_input"]["scores_seed"])
    scores = torch.randn(2, 261, generator=g)
    out = wm.impl.processor(wm)(ids, scores.clone())
    if name == "greenlist":
        assert (out - scores).round(decimals=4).tolist() == exp["processor_bonus"]
    else:
        assert torch.argmax(out, -1).tolist() == exp["processor_argmax"]


def test_old_key_with_another_tokenizer_is_refused():
    from distilltrace.marks.schemes import TokenizerMismatchError
    from distilltrace.models.tiny import byte_tokenizer

    other = byte_tokenizer()
    other.add_tokens(["<extra>"])
    with pytest.raises(TokenizerMismatchError):
        _load(2, "greenlist").check_tokenizer(other)


def test_upgrading_an_old_file_keeps_its_fingerprint_and_loads(tmp_path, byte_tok):
    new = upgrade_key_file(DATA / "key_v1_greenlist.json", tmp_path / "up.json")
    d = json.loads(new.read_text())
    assert (
        d["format"] == KEY_FORMAT
        and d["tokenizer"]["fingerprint"] == (EXPECTED["tokenizer_fingerprint"])
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        wm = load_watermark(new)
    wm.check_tokenizer(byte_tok)
    assert wm.key_id == EXPECTED["keys"]["greenlist"]["key_id"]
