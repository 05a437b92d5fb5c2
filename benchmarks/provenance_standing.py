"""Model-level false-accusation rates: the paired tests' margin against the standing check
(provenance.standing), on simulated independent models.

    .venv/bin/python -m benchmarks.provenance_standing [--worlds 1000] [--prompts 3000]

Two parts, both under the null (the suspect is one more independent model):
1. The margin rule in its limit of many prompts: closeness v ~ N(0, 1) per model; the
   suspect is accused when it beats every control by more than the controls' largest
   pairwise difference, i.e. v_S - max(v_C) > max(v_C) - min(v_C). Its rate per number
   of controls k (no prompts: the limit the per-prompt p-values reach).
2. The likelihood test in the project's score simulator (tests/provenance: per-model
   affinities of sd 0.15 between scorer and generator, `--prompts` prompts, 3 controls):
   the rate at which the test's p-value and the standing's p-values fall below alpha.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def margin_limit(k: int, n: int, rng: np.random.Generator) -> float:
    """P(v_S - max v_C > range v_C) for i.i.d. normal v (n Monte Carlo draws)."""
    x = rng.standard_normal((n, k + 1))
    s, c = x[:, 0], x[:, 1:]
    return float(np.mean(s - c.max(1) > c.max(1) - c.min(1)))


def likelihood_worlds(worlds: int, prompts: int, seed: int) -> dict[str, np.ndarray]:
    from distilltrace.provenance.likelihood import likelihood_test
    from distilltrace.provenance.simulate import simulated_scores as _sim_scores

    rng = np.random.default_rng(seed)
    ctl = ["c1", "c2", "c3"]
    out: dict[str, list[float]] = {"test": [], "standing": [], "rank": []}
    t0 = time.perf_counter()
    for i in range(worlds):
        sc = _sim_scores(rng, prompts, ctl, affinity_sd=0.15)
        r = likelihood_test(sc, "R", ctl, suspect="S", seed=i, n_resamples=199)
        st = r.details["standing"]
        out["test"].append(r.pvalue)
        out["standing"].append(st["pvalue"])
        out["rank"].append(st["pvalue_rank"])
        if (i + 1) % max(1, worlds // 10) == 0:
            el = time.perf_counter() - t0
            print(f"  {i + 1}/{worlds} worlds, {el:.0f} s, ETA "
                  f"{el / (i + 1) * (worlds - i - 1):.0f} s", flush=True)  # fmt: skip
    return {k: np.array(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", type=int, default=1000)
    ap.add_argument("--prompts", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    print("1. margin rule, many prompts: accusation rate of one more independent model")
    for k in (3, 4, 5, 8):
        print(f"  {k} controls: {margin_limit(k, 400_000, rng):.4f}")
    print(f"2. likelihood test, {a.worlds} worlds x {a.prompts} prompts, 3 controls")
    r = likelihood_worlds(a.worlds, a.prompts, a.seed)
    print("| alpha | test p <= alpha | standing p <= alpha | rank p <= alpha |")
    print("|---|---|---|---|")
    for al in (0.01, 0.05, 0.1, 0.25):
        print(f"| {al} | {np.mean(r['test'] <= al):.3f} | {np.mean(r['standing'] <= al):.3f} "
              f"| {np.mean(r['rank'] <= al):.3f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
