"""Training throughput of the named student architectures (seq-KD on chat pairs), in
tokens per second, on whatever `device="auto"` picks (CUDA if available, else CPU).

The pairs are generated prompts answered with standard-library docstring chunks, so the
benchmark needs no teacher. Tokenizer: "smollm2" (the bundled one) or a folder holding a
saved tokenizer (e.g. a copy carried to a machine without the bundled packages).

    nice -n 10 env OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.distill_train_throughput \
        --archs tiny-2l,small-4l --steps 10 --batch-size 8

`--heads target,full` trains each once with the loss as the library computes it (the output
head on target positions only) and once from the full logits (the loss before session 22).
`--precisions float32,bf16-mixed` trains each architecture once per precision
(TrainConfig.precision; `auto` is reported with the precision it ran as), the same seed
and data, side by side; an arch may also be a model
spec to fine-tune (`--archs smollm2-135m-instruct,gemma3-270m`).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import torch

from distilltrace.distill.config import TrainConfig
from distilltrace.distill.dataset import Record
from distilltrace.distill.human_text import human_corpus
from distilltrace.distill.prompts import generate_prompts
from distilltrace.distill.student import make_student
from distilltrace.distill.training import (
    _pairs_to_examples,
    ce_loss_full,
    run_training,
    train_seq_kd,
    unpack_student,
)


def _train(st, recs: list, out: Path, cfg: TrainConfig, head: str):
    """seq-KD as `train_seq_kd` runs it ("target": the output head on target positions
    only), or with the loss from the full logits ("full": the pre-session-22 loss)."""
    if head == "target":
        return train_seq_kd(st, recs, out, cfg)
    model, tok = unpack_student(st)
    ex, skipped = _pairs_to_examples(tok, recs, cfg.max_len)
    return run_training(
        model, tok, ex, out, cfg, method="seq-kd", loss_fn=ce_loss_full, skipped_examples=skipped
    )


def _one(arch: str, prec: str, head: str, tok: object, recs: list, args, out: Path):
    """Train one architecture at one precision with one loss head; its throughput row."""
    st = make_student(arch, tok, 0)
    n_params = sum(p.numel() for p in st[0].parameters())
    cfg = TrainConfig(
        steps=args.steps,
        batch_size=args.batch_size,
        max_len=args.max_len,
        device=args.device,
        progress=False,
        precision=prec,
    )
    res = _train(st, recs, out, cfg, head)
    return {
        "arch": arch,
        "head": head,
        "params_M": round(n_params / 1e6, 2),
        "device": res.device,
        "precision": prec,
        "ran_as": res.config.get("precision", "float32"),  # "auto" made concrete
        "steps": res.steps,
        "batch_size": args.batch_size,
        "tokens": res.tokens,
        "wall_s": res.wall_s,
        "tokens_per_s": res.tokens_per_s,
        "final_loss": res.final_loss,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default="tiny-2l,small-4l,base-8l")
    ap.add_argument("--tokenizer", default="smollm2")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precisions", default="float32", help="comma-separated, side by side")
    ap.add_argument(
        "--heads", default="target", help="comma-separated, side by side: target and/or full"
    )
    args = ap.parse_args()

    tok: object = args.tokenizer
    if Path(args.tokenizer).is_dir():
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(args.tokenizer, local_files_only=True)
    chunks = human_corpus(seed=0)
    n = args.steps * args.batch_size
    recs = [
        Record(p.text, chunks[i % len(chunks)][:400], {"finish_reason": "stop"})
        for i, p in enumerate(generate_prompts(n, seed=3))
    ]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for arch in args.archs.split(","):
            for prec in args.precisions.split(","):
                for head in args.heads.split(","):
                    out = Path(d) / f"{arch}-{prec}-{head}"
                    rows.append(_one(arch, prec, head, tok, recs, args, out))
                    print(json.dumps(rows[-1]), flush=True)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "cpus": os.cpu_count(),
                "gpu": gpu,
                "load_avg": os.getloadavg(),
            }
        )
    )
    print(
        "| arch | params (M) | device | precision | head | batch | steps | tokens | wall s | tokens/s | final loss |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['arch']} | {r['params_M']} | {r['device']} | {r['precision']} -> {r['ran_as']} | {r['head']} | {r['batch_size']} | {r['steps']} | {r['tokens']} | {r['wall_s']} | {r['tokens_per_s']} | {r['final_loss']:.4f} |"
        )


if __name__ == "__main__":
    main()
