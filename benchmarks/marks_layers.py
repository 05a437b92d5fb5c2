"""Choosing the tournament depth m: expected detection efficiency per scored tuple on real
SmolLM2 next-token distributions, against the Gumbel-max score.

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python -m benchmarks.marks_layers

SmolLM2 answers 12 generated prompts (temperature 0.7, 120 tokens) unmarked; every step's
warped next-token distribution is recorded (its top 2,000 tokens). For every third step
and 4 random keys (fresh random g-bits), the tournament winner's distribution p_m gives
the exact expected excess E_{p_m}[sum of g-bits] - m/2 of one tuple; divided by the null
standard deviation sqrt(m)/2 it is the expected z per tuple ("efficiency"): a text of n
scored tuples has expected z = efficiency * sqrt(n). The Gumbel-max line is the same for
the score -log(1-u) of the picked token (null mean 1, sd 1).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from distilltrace.models import load_model
from distilltrace.prompts import generate_prompts


class Recorder:
    """A logits processor that records each row's warped distribution (top 2,000)."""

    def __init__(self) -> None:
        self.dists: list[np.ndarray] = []

    def __call__(self, ids, scores):
        for r in torch.softmax(scores.double(), -1):
            self.dists.append(torch.topk(r, 2000).values.numpy())
        return scores


def main() -> None:
    torch.set_num_threads(2)
    model = load_model("smollm2-135m-instruct")
    rec = Recorder()
    prompts = [p.text for p in generate_prompts(12, seed=11)]
    model.batch_size = 12
    t0 = time.time()
    model.generate(prompts, max_new_tokens=120, temperature=0.7, seed=0, logits_processors=[rec])
    print(f"generation {time.time() - t0:.0f} s, {len(rec.dists)} distributions")
    rng = np.random.default_rng(0)
    for m in (1, 2, 4, 8, 12, 16, 20, 30, 40):
        ex = []
        for q in rec.dists[::3]:
            q = q / q.sum()
            for _ in range(4):
                g = rng.integers(0, 2, size=(len(q), m)).astype(float)
                p = q.copy()
                for layer in range(m):
                    p = p * (1 + g[:, layer] - p @ g[:, layer])
                ex.append(p @ g.sum(1) - m / 2)
        ex = np.array(ex)
        eff = ex.mean() / np.sqrt(m / 4)
        print(f"m={m}: mean excess {ex.mean():.3f}, efficiency (z per tuple) {eff:.4f}")
    gz = []
    for q in rec.dists[::3]:
        q = q / q.sum()
        for _ in range(4):
            u = rng.random(len(q))
            j = np.argmax(np.log(u) / q)
            gz.append(-np.log1p(-u[j]) - 1)
    print(f"gumbel: efficiency (z per tuple) {np.mean(gz):.4f}")
    ent = [-(q / q.sum() * np.log(q / q.sum() + 1e-300)).sum() for q in rec.dists]
    print(f"mean entropy {np.mean(ent):.3f} nats")


if __name__ == "__main__":
    main()
