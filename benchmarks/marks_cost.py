"""The mark's generation cost: SmolLM2 with and without the default mark (tournament), on
the same prompts and seeds, locally and through serve's batcher, in one run.

(a) local ``model.generate``, batch 16, temperature 0.7: unmarked and marked alternate
``--reps`` times (ABBA order);
(b) serve's continuous batcher in-process (no HTTP), ``--clients`` closed-loop clients
(each sends its next prompt when its answer arrives) at temperature 0.7, max batch 8:
unmarked and marked alternate the same way.

Each phase runs in a fresh process of its own (``--phase``): run in one process after the
local batch-16 phase, the served phase ran about 30% slower in both arms, and its marked arm
lost 13% of tokens/s against a processor share of 3.3% (a fresh process: 2%; see
docs/benchmarks.md).

Reported per arm: tokens, decoding steps, wall seconds, tokens/s, milliseconds per step,
and the watermark processor's own time and its share of the wall time. Answers of other
lengths change a batch's tokens/s by themselves (a static batch decodes until its longest
answer ends, a marked answer is often longer), so the cost at equal work is the time per
decoding step, marked against unmarked, and the processor's share. Target
(issue #15): generation with the mark within 5% of tokens/s, also under the batched serve.

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.marks_cost \
        [--prompts 32] [--tokens 150] [--serve-tokens 64] [--clients 8] [--reps 2]
        [--model smollm2-135m-instruct] [--out OUT.json] [--phase both|local|served]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import replace
from typing import Any

from benchmarks.serve_batching import PROMPTS


class Timed:
    """A processor whose calls (one batch, or ``process_rows``) are timed."""

    def __init__(self, proc: Any, clock: list[float]):
        self.proc, self.clock = proc, clock

    def _run(self, f, *a):
        t = time.perf_counter()
        try:
            return f(*a)
        finally:
            self.clock[0] += time.perf_counter() - t

    def __call__(self, input_ids, scores):
        return self._run(self.proc, input_ids, scores)

    def process_rows(self, seqs, scores):
        return self._run(self.proc.process_rows, seqs, scores)


def _row(name: str, tokens: int, wall: float, proc_s: float, steps: int) -> dict[str, Any]:
    return {
        "arm": name,
        "tokens": tokens,
        "steps": steps,
        "wall_s": round(wall, 2),
        "tokens_per_s": round(tokens / wall, 1),
        "ms_per_step": round(1000 * wall / steps, 2),
        "processor_s": round(proc_s, 3),
        "processor_share": round(proc_s / wall, 4),
    }


def local_runs(model, wm, a, clock) -> list[dict]:
    from distilltrace.bench.marks import _gen, make_config
    from distilltrace.prompts import generate_prompts

    cfg = make_config("quick", {"batch_size": 16, "temperature": 0.7})
    prompts = [p.text for p in generate_prompts(a.prompts, seed=11)]
    arms = {"unmarked": [], "marked": [Timed(p, clock) for p in wm.logits_processors(model)]}
    _gen(model, prompts[:2], cfg, 4, arms["marked"])  # warm-up
    out = []
    for rep in range(a.reps):
        for name in ("unmarked", "marked") if rep % 2 == 0 else ("marked", "unmarked"):
            clock[0] = 0.0
            t = time.perf_counter()
            gens = _gen(model, prompts, replace(cfg, seed=rep), a.tokens, arms[name])
            wall = time.perf_counter() - t
            lens = [len(g.token_ids) for g in gens]
            # a static batch decodes until its longest answer ends
            steps = sum(max(lens[i : i + 16]) for i in range(0, len(lens), 16))
            out.append(_row(name, sum(lens), wall, clock[0], steps))
            print(json.dumps({"local": out[-1]}), flush=True)
    return out


def served_runs(model, wm, a, clock) -> list[dict]:
    from distilltrace.serve.batching import BatchConfig, Batcher, Row

    work = PROMPTS[: a.prompts] * 2
    arms = {"unmarked": [], "marked": [Timed(p, clock) for p in wm.logits_processors(model)]}

    def run(procs: list, prompts: list[str], n_tok: int, n_clients: int) -> tuple:
        b = Batcher(model, procs, BatchConfig(max_batch=8))
        todo, counts, lock = collections.deque(prompts), [], threading.Lock()

        def client() -> None:
            while True:
                with lock:
                    if not todo:
                        return
                    p = todo.popleft()
                ids = model.encode_messages([{"role": "user", "content": p}])
                row = Row(label=p, ids=ids, max_tokens=n_tok, temperature=0.7, seed=1)
                counts.append(len(b.submit([row])[0].result()[0].token_ids))

        threads = [threading.Thread(target=client) for _ in range(n_clients)]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        wall = time.perf_counter() - t
        b.close()
        return sum(counts), wall, b.stats.steps

    run(arms["marked"], work[:2], 4, 2)  # warm-up
    out = []
    for rep in range(a.reps):
        for name in ("unmarked", "marked") if rep % 2 == 0 else ("marked", "unmarked"):
            clock[0] = 0.0
            tokens, wall, steps = run(arms[name], work, a.serve_tokens, a.clients)
            out.append(_row(name, tokens, wall, clock[0], steps))
            print(json.dumps({"served": out[-1]}), flush=True)
    return out


def summary(rows: list[dict]) -> dict[str, Any]:
    """Summed over the reps: tokens/s of each arm, their ratio, time per decoding step and
    its ratio (the cost at equal work: answers of other lengths change tokens/s by
    themselves), the processor's share of the marked wall time."""
    tot = {
        n: [sum(r[k] for r in rows if r["arm"] == n) for k in ("tokens", "wall_s", "steps")]
        for n in ("unmarked", "marked")
    }
    rate = {n: t / w for n, (t, w, _) in tot.items()}
    per_step = {n: w / st for n, (_, w, st) in tot.items()}
    proc = sum(r["processor_s"] for r in rows if r["arm"] == "marked")
    share = proc / tot["marked"][1]
    return {
        "tokens_per_s_unmarked": round(rate["unmarked"], 1),
        "tokens_per_s_marked": round(rate["marked"], 1),
        "ratio_marked_vs_unmarked": round(rate["marked"] / rate["unmarked"], 3),
        "ms_per_step_unmarked": round(1000 * per_step["unmarked"], 2),
        "ms_per_step_marked": round(1000 * per_step["marked"], 2),
        "step_time_ratio_marked_vs_unmarked": round(per_step["marked"] / per_step["unmarked"], 3),
        "processor_share": round(share, 4),
        "target_processor_share_le_5pct_met": share <= 0.05,
        "target_step_time_within_5pct_met": per_step["marked"] <= 1.05 * per_step["unmarked"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=150, help="new tokens per local answer")
    ap.add_argument("--serve-tokens", type=int, default=64, help="max_tokens per served answer")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the result as JSON here")
    ap.add_argument("--phase", choices=["both", "local", "served"], default="both")
    a = ap.parse_args()
    if not 1 <= a.prompts <= len(PROMPTS) or a.reps < 1 or a.clients < 1:
        ap.error(f"--prompts must be in 1..{len(PROMPTS)}, --reps and --clients >= 1")
    if a.phase != "both":
        print("RESULT " + json.dumps(run_phase(a)), flush=True)
        # the batcher's worker thread may still be in torch at interpreter exit, which
        # can abort the process ("terminate called without an active exception")
        os._exit(0)
    load0 = os.getloadavg()
    res: dict[str, Any] = {"model": a.model, "torch_threads": os.environ.get("OMP_NUM_THREADS")}
    for phase in ("local", "served"):
        res.update(_child(phase))
    res |= {"loadavg_start": load0, "loadavg_end": os.getloadavg()}
    res["date_utc"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    text = json.dumps(res, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


def _child(phase: str) -> dict[str, Any]:
    """One phase in a fresh process (the same arguments); its progress lines pass through."""
    args, argv = [], iter(sys.argv[1:])
    for x in argv:
        if x == "--phase":
            next(argv, None)
        elif not x.startswith("--phase="):
            args.append(x)
    cmd = [sys.executable, "-m", "benchmarks.marks_cost", *args, "--phase", phase]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
        print(line, flush=True)
    raise SystemExit(f"the {phase} phase printed no result")


def run_phase(a: argparse.Namespace) -> dict[str, Any]:
    from distilltrace.bench.marks import _bench_key, make_config
    from distilltrace.marks.schemes import SchemeParams, TokenizerBinding
    from distilltrace.models import load_model

    model = load_model(a.model)
    wm = _bench_key(SchemeParams(), TokenizerBinding.of_model(model), make_config("quick"), "cost")
    clock = [0.0]
    if a.phase == "local":
        runs = local_runs(model, wm, a, clock)
        return {"scheme": wm.params.scheme, "local_batch16": {"runs": runs, **summary(runs)}}
    runs = served_runs(model, wm, a, clock)
    return {"served_batcher": {"clients": a.clients, "runs": runs, **summary(runs)}}


if __name__ == "__main__":
    main()
