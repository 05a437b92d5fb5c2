"""`distilltrace serve --watermark KEYFILE`: outputs over HTTP carry the mark and the key id."""

from __future__ import annotations

import httpx
import pytest

from distilltrace.marks.detect import MARKED, detect_texts
from distilltrace.marks.keys import load_watermark, make_watermark, write_key_file
from distilltrace.marks.schemes import SchemeParams, TokenizerBinding
from distilltrace.marks.secret import Secret


@pytest.mark.slow
def test_served_outputs_are_marked_and_name_the_key_id(tmp_path):
    from distilltrace.models import load_model
    from distilltrace.models.tiny import make_tiny_model
    from tests.serve_helpers import running_server

    # briefly trained on ASCII text, so outputs decode and re-encode to the same bytes
    texts = [
        f"Item {i}: the {w} is {v} and plain."
        for i, (w, v) in enumerate(
            zip(["cat", "sea", "sun", "map"] * 4, ["red", "big", "old", "new"] * 4, strict=True)
        )
    ]
    folder = make_tiny_model(tmp_path / "tiny", seed=4, train_texts=texts, train_steps=30)
    model = load_model(str(folder))
    secret = Secret(bytes(range(1, 33)))  # fixed: the run is deterministic
    wm = make_watermark(
        SchemeParams(scheme="greenlist", delta=3.0), TokenizerBinding.of_model(model), secret
    )
    key = write_key_file(tmp_path / "key.json", wm, secret)
    texts, plain = [], []
    with running_server(str(folder), watermark=key, env={"OMP_NUM_THREADS": "1"}) as base:
        with httpx.Client(base_url=base, timeout=120) as c:
            for i in range(4):
                r = c.post(
                    "/chat/completions",
                    json={
                        "messages": [{"role": "user", "content": f"Say something, {i}."}],
                        "max_tokens": 150,
                        "temperature": 1.0,
                        "seed": i,
                    },
                )
                assert r.status_code == 200, r.text
                body = r.json()
                assert body["watermark"] == {"key_id": wm.key_id}
                assert secret.hex() not in r.text
                texts.append(body["choices"][0]["message"]["content"])
    for i in range(4):  # the same model unmarked, locally
        plain += [
            g.text for g in model.generate([f"Say something, {i}."], 150, temperature=1.0, seed=i)
        ]
    loaded = load_watermark(key)
    rep = detect_texts(loaded, texts, model.tokenizer)
    assert rep.pooled.verdict == MARKED and rep.pooled.pvalue < 1e-6, rep.pooled
    rep0 = detect_texts(loaded, plain, model.tokenizer)
    assert rep0.pooled.pvalue > 1e-3
