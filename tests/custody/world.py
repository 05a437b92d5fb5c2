"""A small custody world on tiny models: a marked byte teacher serves a log in which one
hydra campaign harvests it; a scan; a student distilled from the campaign's harvest."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "traffic"))
from handmade_logs import make_benign, make_hydra  # noqa: E402

PROV = {  # a provenance test sized for tiny byte models (as in tests/provenance)
    "pool_size": 300, "n_sampled": 16, "n_fingerprint": 16, "n_reverse": 8,
    "n_gap": 6, "max_new_tokens": 24, "prompt_source": "builtin", "batch_size": 16,
    "agreement_margin": 0.02, "budget": 120, "identity_probes": False,
}  # fmt: skip


class PrintableAscii:
    """Keeps the byte teacher's outputs printable ASCII (so text round-trips exactly)."""

    def __call__(self, input_ids, scores):
        mask = torch.full_like(scores, float("-inf"))
        mask[:, 5 + 32 : 5 + 127] = 0.0
        return scores + mask


def build_world(d: Path, student_epochs: int = 6) -> dict:
    from distilltrace.distill.dataset import Record
    from distilltrace.distill.student import make_student
    from distilltrace.distill.training import train_seq_kd
    from distilltrace.marks.keys import make_watermark, write_key_file
    from distilltrace.marks.schemes import SchemeParams, TokenizerBinding
    from distilltrace.marks.secret import Secret
    from distilltrace.models import load_model
    from distilltrace.models.tiny import make_tiny_model
    from distilltrace.provenance.membership import chat_input_tokens
    from distilltrace.traffic import scan

    teacher = load_model(str(make_tiny_model(d / "teacher", seed=5)))
    secret = Secret(bytes(range(32)))
    wm = make_watermark(
        SchemeParams(scheme="greenlist", context_width=1, delta=5.0),
        TokenizerBinding.of_model(teacher),
        secret,
    )
    write_key_file(d / "key.json", wm, secret)
    df = pd.concat(
        [make_benign(200, seed=2, hard=False), make_hydra(30, 10, seed=3)], ignore_index=True
    )
    camp = df["campaign_id"].notna().to_numpy()
    prompts = df.loc[camp, "prompt"].tolist()
    gens = teacher.generate(
        prompts, max_new_tokens=48, temperature=1.0, seed=0,
        logits_processors=[PrintableAscii(), *wm.logits_processors(teacher)],
    )  # fmt: skip
    df["response"] = ""
    df.loc[camp, "response"] = [g.text for g in gens]
    df[KEY_COL] = wm.key_id
    df.loc[camp, "temperature"] = 1.0  # the serving settings, as a provider logs them
    df.loc[camp, "max_tokens"] = 48
    # the prompt tokens our server bills for each campaign request (the handmade logs'
    # counts are random, which membership rules 3 read as a context the row does not show)
    df.loc[camp, "input_tokens"] = chat_input_tokens(teacher, prompts, [""] * len(prompts))
    df["timestamp"] = df["timestamp"].map(lambda t: t.isoformat())
    df["account_created_at"] = df["account_created_at"].map(
        lambda t: None if pd.isna(t) else t.isoformat()
    )
    log = d / "log.jsonl"
    with open(log, "w") as f:
        for r in df.drop(columns=["campaign_id"]).to_dict("records"):
            f.write(json.dumps({k: v for k, v in r.items() if v is not None and v == v}) + "\n")
    res = scan([str(log)], out_dir=d / "scan", content=False, progress=False)
    hyd = [c for c in res.campaigns if any(m.startswith("hyd-") for m in c.members)][0]
    recs = [Record(p, g.text) for p, g in zip(prompts, gens, strict=True)]
    st = make_student("tiny-2l", tokenizer="byte", seed=1)
    train_seq_kd(st, recs, d / "student", epochs=student_epochs, lr=2e-2, batch_size=32,
                 progress=False)  # fmt: skip
    controls = [load_model(str(make_tiny_model(d / f"ctl{i}", seed=20 + i))) for i in range(2)]
    return {
        "teacher": teacher, "student": load_model(str(d / "student")), "controls": controls,
        "log": log, "scan": d / "scan", "cluster": int(hyd.cluster_id), "key": d / "key.json",
        "campaign": hyd,
    }  # fmt: skip


KEY_COL = "watermark_key_id"
