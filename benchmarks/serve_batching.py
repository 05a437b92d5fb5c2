"""Serve batching: tokens/s of 1 vs 8 concurrent clients, next to local batch 1 vs batch 8.

One run, side by side, the same prompts, greedy, the same max_tokens:
(a) local ``model.generate`` at batch 1 (one prompt at a time) and batch 8 (no server);
(b) ``distilltrace serve --max-batch 8`` in a subprocess on 127.0.0.1, with 1 client
(requests one after another) and with 8 concurrent clients (one request each per round).
Tokens/s = completion tokens / wall seconds; tokens per CPU second (the generating
process's user + system time: this process locally, the server process when served)
is the figure that survives a machine shared with other jobs. Targets (issue #16): 8 clients >= 4x one
client, and >= 80% of local batch-8 throughput. Also checks that every served answer
equals the local one.

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python -m benchmarks.serve_batching \
        [--model smollm2-135m-instruct] [--tokens 48] [--rounds 1] [--max-batch 8]
        [--via serve|gateway]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

PROMPTS = [
    "What is the capital of France?",
    "Explain what a prime number is.",
    "Write a short poem about the sea.",
    "Name three animals that live in the ocean.",
    "Why is the sky blue?",
    "Give me a recipe for a simple salad.",
    "What does a computer's CPU do?",
    "Describe a sunny day in two sentences.",
]


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def _rate(tokens: int, seconds: float, cpu_s: float) -> dict[str, Any]:
    return {
        "tokens": tokens,
        "wall_s": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
        "cpu_s": round(cpu_s, 2),
        "tokens_per_cpu_s": round(tokens / cpu_s, 1),
    }


def local_runs(model: Any, n_tok: int, rounds: int) -> tuple[dict, dict, list[str]]:
    """Local batch 1 (each prompt alone) and batch 8 (all prompts in one generate call)."""
    me = psutil.Process()
    t, c, toks = time.perf_counter(), _cpu(me), 0
    for _ in range(rounds):
        for p in PROMPTS:
            toks += len(model.generate([p], max_new_tokens=n_tok)[0].token_ids)
    b1 = _rate(toks, time.perf_counter() - t, _cpu(me) - c)
    model.batch_size = len(PROMPTS)
    t, c, toks, texts = time.perf_counter(), _cpu(me), 0, []
    for _ in range(rounds):
        gens = model.generate(PROMPTS, max_new_tokens=n_tok)
        toks += sum(len(g.token_ids) for g in gens)
        texts = [g.text for g in gens]
    b8 = _rate(toks, time.perf_counter() - t, _cpu(me) - c)
    return b1, b8, texts


def _ask(c: httpx.Client, name: str, p: str, n_tok: int) -> tuple[str, int]:
    body = {
        "model": name,
        "messages": [{"role": "user", "content": p}],
        "max_tokens": n_tok,
        "temperature": 0,
    }
    r = c.post("/chat/completions", json=body)
    r.raise_for_status()
    d = r.json()
    return d["choices"][0]["message"]["content"], d["usage"]["completion_tokens"]


def served_runs(
    url: str, n_tok: int, rounds: int, headers: dict | None = None, via: str = "serve"
) -> tuple[dict, dict, dict[str, str]]:
    """Served: 1 client (sequential requests), then 8 concurrent clients."""
    server = next(
        p for p in psutil.Process().children(recursive=True) if via in " ".join(p.cmdline())
    )
    with httpx.Client(base_url=url, timeout=900, headers=headers) as c:
        name = c.get("/models").json()["data"][0]["id"]
        _ask(c, name, PROMPTS[0], 4)  # warm-up
        t, cpu, toks = time.perf_counter(), _cpu(server), 0
        for _ in range(rounds):
            for p in PROMPTS:
                toks += _ask(c, name, p, n_tok)[1]
        one = _rate(toks, time.perf_counter() - t, _cpu(server) - cpu)
    answers: dict[str, str] = {}
    counts: list[int] = []
    errors: list[BaseException] = []

    def client(p: str) -> None:
        try:
            with httpx.Client(base_url=url, timeout=900, headers=headers) as c:
                for _ in range(rounds):
                    text, n = _ask(c, name, p, n_tok)
                    answers[p] = text
                    counts.append(n)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(p,)) for p in PROMPTS]
    t, cpu = time.perf_counter(), _cpu(server)
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise SystemExit(f"a client failed: {errors[0]!r}")
    eight = _rate(sum(counts), time.perf_counter() - t, _cpu(server) - cpu)
    return one, eight, answers


@contextlib.contextmanager
def _server(a: argparse.Namespace) -> Iterator[tuple[str, dict | None]]:
    """The served side: ``serve --max-batch N``, or the gateway with a local upstream (its
    own batching at serve's default) and a fresh account key; yields (v1 URL, headers)."""
    if a.via == "serve":
        from tests.serve_helpers import running_server

        with running_server(a.model, extra_args=["--max-batch", str(a.max_batch)]) as url:
            yield url, None
        return
    from benchmarks.gateway_overhead import gateway_process, make_key

    with tempfile.TemporaryDirectory(prefix="distilltrace-batching-") as tmp:
        log = Path(tmp) / "log"
        key = make_key(log)
        with gateway_process(a.model, log) as (_proc, base):
            yield f"{base}/v1", {"authorization": f"Bearer {key}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument(
        "--via",
        choices=["serve", "gateway"],
        default="serve",
        help="serve (distilltrace serve) or gateway (distilltrace gateway run, evidence log "
        "fsync'd before each answer, one account key)",
    )
    a = ap.parse_args()

    from distilltrace.models import load_model

    load0 = os.getloadavg()
    model = load_model(a.model)
    model.generate(PROMPTS[:1], max_new_tokens=4)  # warm-up
    b1, b8, local_texts = local_runs(model, a.tokens, a.rounds)
    del model
    with _server(a) as (url, headers):
        one, eight, answers = served_runs(url, a.tokens, a.rounds, headers, a.via)
    same = all(answers.get(p) == t for p, t in zip(PROMPTS, local_texts, strict=True))
    r_clients = eight["tokens_per_s"] / one["tokens_per_s"]
    r_local = eight["tokens_per_s"] / b8["tokens_per_s"]
    c_clients = eight["tokens_per_cpu_s"] / one["tokens_per_cpu_s"]
    c_local = eight["tokens_per_cpu_s"] / b8["tokens_per_cpu_s"]
    out = {
        "model": a.model,
        "via": a.via,
        "max_tokens": a.tokens,
        "rounds": a.rounds,
        "max_batch": a.max_batch,
        "torch_threads": os.environ.get("OMP_NUM_THREADS"),
        "local_batch1": b1,
        "local_batch8": b8,
        "served_1_client": one,
        "served_8_clients": eight,
        "ratio_8_clients_vs_1": round(r_clients, 2),
        "ratio_8_clients_vs_local_batch8": round(r_local, 2),
        "cpu_ratio_8_clients_vs_1": round(c_clients, 2),
        "cpu_ratio_8_clients_vs_local_batch8": round(c_local, 2),
        "target_4x_met": r_clients >= 4.0,
        "target_80pct_met": r_local >= 0.8,
        "served_equals_local": same,
        "loadavg_start": [round(x, 2) for x in load0],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
