"""Serve batching: tokens/s of 1 vs 8 concurrent clients, next to local batch 1 vs batch 8.

One run, side by side, the same prompts, greedy, the same max_tokens:
(a) local ``model.generate`` at batch 1 (one prompt at a time) and batch 8 (static
batches of 8, no server);
(b) ``distilltrace serve --max-batch 8`` (continuous batching, the default) in a
subprocess on 127.0.0.1, with 1 client and with 8 concurrent clients;
(c) the baseline in the same run: the same server with ``--batching dynamic`` and 8
concurrent clients;
(d) ``distilltrace gateway run`` with the local upstream (serve's default batching, every
exchange written to the evidence log and fsync'd before its answer), 1 and 8 clients.
Clients are closed-loop: each takes the next prompt from one shared list as soon as its
previous answer arrives, until every prompt is answered (``--prompts`` of them; the 8
clients go through the list ``--rounds`` times, so the batch runs full for most of the
phase and its fill and drain, when fewer than 8 requests are left, weigh little; one
client's sequential rate has no fill or drain). Tokens/s =
completion tokens / wall seconds; tokens per CPU second (the generating process's user +
system time: this process locally, the server process when served) is the figure that
survives a machine shared with other jobs. Targets (issue #16): 8 clients >= 4x one
client, and >= 80% of local batch-8 throughput. Also counts the served answers that equal
the local batch-8 ones.

    OMP_NUM_THREADS=2 .venv/bin/python -m benchmarks.serve_batching \
        [--model smollm2-135m-instruct] [--tokens 48] [--prompts 32] [--rounds 3]
        [--max-batch 8]
        [--via serve|gateway|both]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import sys
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
    "How do plants make their food?",
    "What is the difference between weather and climate?",
    "Suggest a name for a friendly dog.",
    "Why do we have seasons?",
    "Write a thank-you note to a teacher.",
    "What is a good way to learn a new language?",
    "Explain how a bicycle works.",
    "List three tips for sleeping better.",
    "What is the boiling point of water?",
    "Tell me a fun fact about elephants.",
    "How does a rainbow form?",
    "What should I pack for a day at the beach?",
    "Explain what gravity is to a child.",
    "Write two sentences about autumn leaves.",
    "What is the largest planet in our solar system?",
    "How can I save money on groceries?",
    "Describe the taste of a lemon.",
    "What are the primary colours?",
    "Why is exercise good for you?",
    "Give me an idea for a birthday present.",
    "What is a noun? Give an example.",
    "How do bees make honey?",
    "Explain what the internet is in simple words.",
    "Write a short greeting for a new neighbour.",
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


def local_runs(model: Any, prompts: list[str], n_tok: int) -> tuple[dict, dict, list[str]]:
    """Local batch 1 (each prompt alone) and batch 8 (static batches of 8 prompts)."""
    me = psutil.Process()
    t, c, toks = time.perf_counter(), _cpu(me), 0
    for p in prompts:
        toks += len(model.generate([p], max_new_tokens=n_tok)[0].token_ids)
    b1 = _rate(toks, time.perf_counter() - t, _cpu(me) - c)
    model.batch_size = 8
    t, c = time.perf_counter(), _cpu(me)
    gens = model.generate(prompts, max_new_tokens=n_tok)
    b8 = _rate(sum(len(g.token_ids) for g in gens), time.perf_counter() - t, _cpu(me) - c)
    return b1, b8, [g.text for g in gens]


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


def clients(
    url: str, prompts: list[str], n_tok: int, n_clients: int, headers: dict | None, server: Any
) -> tuple[dict, dict[str, str]]:
    """``n_clients`` closed-loop clients answer every prompt once (a shared list: each
    client takes the next prompt when its previous answer arrives)."""
    todo = collections.deque(prompts)
    answers: dict[str, str] = {}
    counts: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def client() -> None:
        try:
            with httpx.Client(base_url=url, timeout=900, headers=headers) as c:
                name = c.get("/models").json()["data"][0]["id"]
                while True:
                    with lock:
                        if not todo:
                            return
                        p = todo.popleft()
                    text, n = _ask(c, name, p, n_tok)
                    answers[p] = text
                    counts.append(n)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=client) for _ in range(n_clients)]
    t, cpu = time.perf_counter(), _cpu(server)
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise SystemExit(f"a client failed: {errors[0]!r}")
    return _rate(sum(counts), time.perf_counter() - t, _cpu(server) - cpu), answers


def served_runs(
    a: argparse.Namespace, via: str, prompts: list[str], mode: str, n_clients: tuple[int, ...]
) -> dict[int, tuple[dict, dict[str, str]]]:
    """One server (``via``, ``mode`` batching), warmed up, then each client count in turn."""
    out = {}
    with _server(a, via, mode) as (url, headers):
        server = next(
            p for p in psutil.Process().children(recursive=True) if via in " ".join(p.cmdline())
        )
        clients(url, prompts[:2], 4, 2, headers, server)  # warm-up
        for n in n_clients:
            work = prompts if n == 1 else prompts * a.rounds
            out[n] = clients(url, work, a.tokens, n, headers, server)
    return out


@contextlib.contextmanager
def _server(a: argparse.Namespace, via: str, mode: str) -> Iterator[tuple[str, dict | None]]:
    """The served side: ``serve --max-batch N --batching MODE``, or the gateway with a
    local upstream (serve's default batching) and a fresh account key; yields (v1 URL,
    headers)."""
    if via == "serve":
        from tests.serve_helpers import running_server

        args = ["--max-batch", str(a.max_batch), "--batching", mode]
        with running_server(a.model, extra_args=args) as url:
            yield url, None
        return
    from benchmarks.gateway_overhead import gateway_process, make_key

    with tempfile.TemporaryDirectory(prefix="distilltrace-batching-") as tmp:
        log = Path(tmp) / "log"
        key = make_key(log)
        with gateway_process(a.model, log) as (_proc, base):
            yield f"{base}/v1", {"authorization": f"Bearer {key}"}


def _path(a, via, prompts, local_texts, b8) -> dict[str, Any]:
    """One served path: 1 and 8 clients with continuous batching, and (serve only) 8
    clients with dynamic batching, with the two targets' ratios."""
    cont = served_runs(a, via, prompts, "continuous", (1, 8))
    one, (eight, answers) = cont[1][0], cont[8]
    dyn = served_runs(a, via, prompts, "dynamic", (8,))[8][0] if via == "serve" else None
    same = sum(answers.get(p) == t for p, t in zip(prompts, local_texts, strict=True))
    r_clients = eight["tokens_per_s"] / one["tokens_per_s"]
    r_local = eight["tokens_per_s"] / b8["tokens_per_s"]
    out = {
        "1_client": one,
        "8_clients": eight,
        "ratio_8_clients_vs_1": round(r_clients, 2),
        "ratio_8_clients_vs_local_batch8": round(r_local, 2),
        "cpu_ratio_8_clients_vs_1": round(eight["tokens_per_cpu_s"] / one["tokens_per_cpu_s"], 2),
        "cpu_ratio_8_clients_vs_local_batch8": round(
            eight["tokens_per_cpu_s"] / b8["tokens_per_cpu_s"], 2
        ),
        "target_4x_met": r_clients >= 4.0,
        "target_80pct_met": r_local >= 0.8,
        "answers_equal_to_local_batch8": f"{same}/{len(prompts)}",
    }
    if dyn is not None:
        out["8_clients_dynamic"] = dyn
        out["ratio_dynamic_8_clients_vs_1"] = round(dyn["tokens_per_s"] / one["tokens_per_s"], 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--prompts", type=int, default=len(PROMPTS), help="prompts per phase")
    ap.add_argument("--max-batch", type=int, default=8)
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="times the 8 clients answer the prompt list (the batch then runs full for most "
        "of the phase; one client's sequential rate has no fill or drain to amortise)",
    )
    ap.add_argument(
        "--via",
        choices=["serve", "gateway", "both"],
        default="both",
        help="serve (distilltrace serve), gateway (distilltrace gateway run, evidence log "
        "fsync'd before each answer, one account key) or both, one after the other",
    )
    a = ap.parse_args()
    if not 1 <= a.prompts <= len(PROMPTS):
        ap.error(f"--prompts must be in 1..{len(PROMPTS)}")
    if a.rounds < 1:
        ap.error("--rounds must be >= 1")
    prompts = PROMPTS[: a.prompts]

    from distilltrace.models import load_model

    load0 = os.getloadavg()
    model = load_model(a.model)
    model.generate(prompts[:1], max_new_tokens=4)  # warm-up
    b1, b8, local_texts = local_runs(model, prompts, a.tokens)
    del model
    vias = ["serve", "gateway"] if a.via == "both" else [a.via]
    out: dict[str, Any] = {
        "model": a.model,
        "max_tokens": a.tokens,
        "prompts": len(prompts),
        "rounds_8_clients": a.rounds,
        "max_batch": a.max_batch,
        "torch_threads": os.environ.get("OMP_NUM_THREADS"),
        "local_batch1": b1,
        "local_batch8": b8,
        "local_batch8_vs_batch1": round(b8["tokens_per_s"] / b1["tokens_per_s"], 2),
    }
    for via in vias:
        out[via] = _path(a, via, prompts, local_texts, b8)
        print(f"{via} done", file=sys.stderr, flush=True)
    out["loadavg_start"] = [round(x, 2) for x in load0]
    out["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    out["date_utc"] = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
