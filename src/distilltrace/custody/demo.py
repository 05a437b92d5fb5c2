"""`distilltrace custody demo`: the whole chain on real models, end to end.

A watermarked SmolLM2 is served over HTTP on 127.0.0.1; simulated benign users and one
extraction campaign query it; the demo writes the log (traffic schema, plus the key id a
response was served under), scans it, harvests the campaign's exchanges, distils a
student from them and a second student from a benign, unmarked corpus of the same size,
builds a custody bundle for each, verifies both and checks that a tampered copy fails.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from distilltrace.custody.bundle import CustodyError, VerifyError, write_json
from distilltrace.custody.logs import KEY_COLUMN, harvested_of, member_lines, parse_segment

Note = Callable[[str], None]


@dataclass(frozen=True)
class DemoConfig:
    """The demo's sizes (quick: minutes on 2 CPU cores; full: a pretrained student of
    another family).

    Both tiers fine-tune a pretrained base on the harvest, as a lab distilling into its own
    base does (a student trained from scratch on a few hundred answers learns too little
    of anything to be tested: docs/benchmarks.md, "Custody: quick demo"). The quick tier's
    base is the served model's own open weights (SmolLM2), the full tier's is Gemma 3 270M.
    The benign student and the controls are the same base fine-tuned with the same recipe
    on other chat data (ShareGPT's ChatGPT answers), as many exchanges as the harvest."""

    tier: str = "quick"
    teacher: str = "smollm2-135m-instruct"  # the served (reference) model spec
    dtype: str = "auto"  # compute precision of every model loaded (models/precision.py)
    # simulated population: about 420 accounts active in the day. The scan calibrates
    # against the population, so the accounts asking extraction-like things (the
    # campaign's ~20 and the simulator's fixed-size look-alikes) must be a small share:
    # at 300 (~150 active) they were up to 30% and 3 of 10 seeds were missed
    n_accounts: int = 1000
    campaign: str = "hydra"  # the one extraction archetype simulated
    languages: tuple[str, ...] = ("en",)  # the campaign's language (one the teacher speaks)
    max_campaign_requests: int = 160  # campaign requests kept (the earliest), all sent
    n_benign_http: int = 40  # benign requests sent over HTTP (a sample; the rest: metadata)
    max_tokens: int = 64
    temperature: float = 0.8
    scheme: dict[str, Any] = field(default_factory=dict)  # SchemeParams; {}: the default mark
    clients: int = 32  # concurrent HTTP clients, and the server's batch (rows generated together)
    student: str = "smollm2-135m-instruct"  # the base fine-tuned (an arch name: from scratch)
    n_controls: int = 3  # the likelihood and lexical tests need 3 for their margins
    epochs: int = 2
    lr: float = 2e-4
    batch_size: int = 4
    # training precision (TrainConfig.precision): bf16-mixed where the CPU multiplies
    # bfloat16 natively, else float32 (emulated bfloat16 trains 12x slower)
    precision: str = "auto"
    n_probes: int = 160  # closed-mode probes: the harvested prompts asked again first
    provenance: dict[str, Any] = field(
        default_factory=lambda: {"budget": 400, "prompt_source": "builtin"}
    )
    # the run's seed: the simulated traffic, training order, custody sampling, and which
    # ShareGPT exchanges the benign student and the controls learn (null_data_seed)
    seed: int = 0

    @classmethod
    def for_tier(cls, tier: str) -> DemoConfig:
        if tier == "quick":
            return cls()
        if tier == "full":
            return cls(tier="full", n_accounts=1000, max_campaign_requests=800,
                       n_benign_http=200, max_tokens=128, student="gemma3-270m",
                       lr=1e-4, batch_size=16, n_probes=256,
                       provenance={"budget": 1000, "prompt_source": "builtin"})  # fmt: skip
        raise CustodyError(f"--tier must be quick or full, got {tier!r}")


class _Server:
    """The watermarked model behind the OpenAI-compatible app, in a thread on 127.0.0.1."""

    def __init__(self, model: Any, wm: Any, max_batch: int):
        import uvicorn

        from distilltrace.serve.app import create_app
        from distilltrace.serve.batching import BatchConfig

        app = create_app(model, watermark=wm, batching=BatchConfig(max_batch=max_batch))
        cfg = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        t0 = time.monotonic()
        while not self.server.started:
            if time.monotonic() - t0 > 120 or not self.thread.is_alive():
                raise CustodyError("the demo server did not start")
            time.sleep(0.05)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/v1"

    def __exit__(self, *a: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _traffic(cfg: DemoConfig) -> tuple[list[dict], set[str]]:
    """Simulated rows (benign + one campaign); the campaign's accounts (ground truth)."""
    from distilltrace.traffic.simulate import simulate

    tb = simulate(n_accounts=cfg.n_accounts, days=1, seed=cfg.seed, campaigns=(cfg.campaign,),
                  languages=tuple(cfg.languages))  # fmt: skip
    rows = tb.to_pylist()
    camp = [r for r in rows if r.get("campaign_id")]
    camp.sort(key=lambda r: (r["timestamp"], r["request_id"]))
    keep = {r["request_id"] for r in camp[: cfg.max_campaign_requests]}
    rows = [r for r in rows if not r.get("campaign_id") or r["request_id"] in keep]
    return rows, {r["account_id"] for r in rows if r.get("campaign_id")}


def _query(base: str, rows: list[dict], cfg: DemoConfig, note: Note) -> None:
    """Send the selected rows' prompts over HTTP (concurrent clients); fill their responses."""
    import httpx

    model_id = httpx.get(f"{base}/models", timeout=60.0).json()["data"][0]["id"]

    def one(r: dict) -> None:
        body = {"model": model_id, "messages": [{"role": "user", "content": r["prompt"]}],
                "max_tokens": cfg.max_tokens, "temperature": cfg.temperature,
                "seed": zlib.crc32(r["request_id"].encode()) % (2**31)}  # fmt: skip
        resp = httpx.post(f"{base}/chat/completions", json=body, timeout=3600.0)
        resp.raise_for_status()
        j = resp.json()
        # the log records what was served: these settings, and no system prompt
        r.update(temperature=cfg.temperature, max_tokens=cfg.max_tokens)
        r.pop("system_prompt", None)
        r["response"] = j["choices"][0]["message"]["content"]
        r[KEY_COLUMN] = j["watermark"]["key_id"]
        # the prompt tokens billed: the simulator's counts are random, which membership
        # rules 3 would read as context the row does not show (custody.claims)
        r["input_tokens"] = int(j["usage"]["prompt_tokens"])
        r["output_tokens"] = int(j["usage"]["completion_tokens"])
        r["status"] = "ok"

    done = 0
    t0 = time.monotonic()
    with ThreadPoolExecutor(cfg.clients) as ex:
        for f in as_completed([ex.submit(one, r) for r in rows]):
            f.result()
            done += 1
            if done % 10 == 0 or done == len(rows):
                note(f"HTTP: {done}/{len(rows)} answered ({time.monotonic() - t0:.0f} s)")


def _write_log(rows: list[dict], path: Path) -> Path:
    import datetime as _dt

    def plain(v: Any) -> Any:
        return v.isoformat().replace("+00:00", "Z") if isinstance(v, _dt.datetime) else v

    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            d = {k: plain(v) for k, v in r.items() if v is not None and k != "campaign_id"}
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    return path


def _found(res: Any, truth: set[str], seed: int = 0) -> Any:
    """The flagged campaign of the scan holding most of the true campaign's accounts; when
    none holds any, a `CustodyError` saying where the campaign's accounts ended up (the
    candidate cluster holding most of them, with its adjusted p-value)."""
    held = [(len(truth & set(c.members)), c) for c in res.campaigns]  # true accounts in each
    n, best = max(((k, c) for k, c in held if c.flagged), key=lambda x: x[0], default=(0, None))
    if n:
        return best
    n, near = max(held, key=lambda x: x[0], default=(0, None))
    where = "no candidate cluster held any of its accounts"
    if n:
        where = (
            f"{near.name or f'cluster {near.cluster_id}'} held {n} of its {len(truth)} "
            f"accounts, adjusted p = {near.pvalue_adjusted:.2g} against the flagging level "
            f"{res.summary.get('campaign_alpha', 'of the scan')}"
        )
    raise CustodyError(
        f"the scan did not flag the extraction campaign ({where}); the quick tier keeps only "
        f"its earliest requests, which a campaign of this seed's wording and size did not make "
        f"stand out: the chain needs a flagged campaign, so try another --seed (seed {seed} "
        f"was used; docs/custody.md, 'Seeds')"
    )


def null_data_seed(seed: int, j: int) -> int:
    """The ShareGPT sample of the j-th student that never saw the harvest (0: benign, then
    the controls) in a demo run with `seed`. Seed 0 gives 0, 1, 2, 3 as before session 38;
    each other seed gives four other samples, so runs with different seeds repeat the null
    on other models, not on the same four again."""
    return 1000 * seed + j


def _students(cfg: DemoConfig, harvested: list[dict], d: Path, note: Note) -> dict[str, Path]:
    """The base fine-tuned on the harvest; the same base, same recipe, on as many benign
    unmarked exchanges (the benign student); and on other benign samples (the controls)."""
    from distilltrace.distill.config import TrainConfig
    from distilltrace.distill.dataset import Record, sharegpt_records
    from distilltrace.distill.student import make_student
    from distilltrace.distill.training import train_seq_kd

    recs = [Record(h["prompt"], h["response"]) for h in harvested]
    clip = max(len(h["response"]) for h in harvested)
    tc = TrainConfig(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
                     precision=cfg.precision, seed=cfg.seed, progress=False)  # fmt: skip
    plan = [("harvested", recs)] + [
        (name, sharegpt_records(len(recs), null_data_seed(cfg.seed, j), clip))
        for j, name in enumerate(["benign"] + [f"control-{i + 1}" for i in range(cfg.n_controls)])
    ]  # fmt: skip
    out = {}
    for i, (name, data) in enumerate(plan):
        t0 = time.perf_counter()
        note(f"distil {i + 1}/{len(plan)}: {name} student, {cfg.student} on {len(data)} exchanges")
        st = make_student(cfg.student, cfg.teacher, seed=i + 1)
        res = train_seq_kd(st, data, d / name, tc)
        note(f"distil {i + 1}/{len(plan)}: {name} done in {time.perf_counter() - t0:.0f} s "
             f"(loss {res.first_loss:.2f} -> {res.final_loss:.2f})")  # fmt: skip
        out[name] = d / name
    return out


def _tampered(bundle: Path, d: Path) -> str:
    """A copy with one flipped byte in the harvested subset: verify must fail."""
    t = d / "tampered"
    shutil.rmtree(t, ignore_errors=True)
    shutil.copytree(bundle, t)
    p = t / "harvested.jsonl"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    from distilltrace.custody.verify import verify_bundle

    try:
        verify_bundle(t)
    except VerifyError as e:
        return str(e)
    raise CustodyError("verify passed on a tampered bundle")


@dataclass
class DemoResult:
    """What the demo measured (written to OUT/demo.json)."""

    tier: str
    config: dict[str, Any]
    seconds: dict[str, float]
    campaign: dict[str, Any]
    harvested: int
    bundles: dict[str, dict[str, Any]]  # student -> claims p-values, attributed, verified
    tampered_error: str
    targets: dict[str, bool]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _key(model: Any, cfg: DemoConfig, d: Path) -> tuple[Any, Path]:
    """A fresh key of the configured scheme (default: the default mark) bound to the served
    model's tokenizer (file mode 0600)."""
    from distilltrace.marks.keys import make_watermark, new_secret, write_key_file
    from distilltrace.marks.schemes import SchemeParams, TokenizerBinding

    secret = new_secret()
    params = SchemeParams(**cfg.scheme)
    wm = make_watermark(params, TokenizerBinding.of_model(model), secret)
    path = d / "key.json"
    if path.exists():
        path.unlink()
    write_key_file(path, wm, secret)
    return wm, path


def _bundle(name, student, teacher, controls, log, scan_dir, cid, key, cfg, d, note):
    from distilltrace.custody.build import CustodyConfig, CustodyInputs, build_bundle
    from distilltrace.custody.verify import verify_bundle

    c = CustodyConfig(n_probes=cfg.n_probes, max_new_tokens=cfg.max_tokens, seed=cfg.seed,
                      provenance=dict(cfg.provenance))  # fmt: skip
    inputs = CustodyInputs([log], scan_dir, cid, [key], student, teacher, controls)
    out = d / f"bundle-{name}"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    res = build_bundle(inputs, out, c, note=lambda m: note(f"[{name}] {m}"))
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    v = verify_bundle(out, key)
    return {
        "pvalues": {x["name"]: x["pvalue"] for x in res.report["claims"]},
        "skipped": res.report["skipped"],
        "attributed": res.report["attribution"]["attributed"],
        "statement": res.report["attribution"]["statement"],
        "verified": True,
        "recomputed": sorted(v.recomputed),
        "manifest_sha256": res.manifest_sha256,
        "build_s": round(t_build, 1),
        "phase_s": res.seconds,
        "verify_s": round(time.perf_counter() - t0, 1),
    }


def run_demo(
    out: str | Path,
    tier: str = "quick",
    note: Note | None = None,
    teacher: str | None = None,
    student: str | None = None,
    config: DemoConfig | None = None,
    seed: int | None = None,
) -> DemoResult:
    """The whole chain (see the module docstring); writes OUT/demo.json. `config` replaces
    the tier's sizes; `teacher`, `student` and `seed` replace its model specs and seed."""
    from distilltrace.models import load_model
    from distilltrace.provenance.inputs import check_out_dir
    from distilltrace.traffic import scan

    say = note or (lambda m: None)
    cfg = config or DemoConfig.for_tier(tier)
    check_out_dir(out)  # one line before half an hour of work, not a traceback after it
    if teacher is not None:
        cfg = replace(cfg, teacher=teacher)
    if student is not None:
        cfg = replace(cfg, student=student)
    if seed is not None:
        cfg = replace(cfg, seed=int(seed))
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    sec: dict[str, float] = {}
    t_all = t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        sec[name] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()

    teacher = load_model(cfg.teacher, dtype=cfg.dtype)
    wm, key = _key(teacher, cfg, d)
    rows, truth = _traffic(cfg)
    camp_rows = [r for r in rows if r["account_id"] in truth]
    benign = [r for r in rows if r["account_id"] not in truth][
        :: max(1, len(rows) // cfg.n_benign_http)
    ]
    send = camp_rows + benign[: cfg.n_benign_http]
    lap("setup")
    say(f"serving {cfg.teacher} with key {wm.key_id}; {len(send)} requests over HTTP")
    with _Server(teacher, wm, cfg.clients) as base:
        _query(base, send, cfg, say)
    log = _write_log(rows, d / "log.jsonl")
    lap("serve_and_query")
    shutil.rmtree(d / "scan", ignore_errors=True)
    res = scan([str(log)], out_dir=d / "scan", progress=False)
    found = _found(res, truth, cfg.seed)
    lap("scan")
    lines = member_lines(log, set(found.members))
    harvested, _ = harvested_of(parse_segment(lines, log.name), wm.key_id)
    paths = _students(cfg, harvested, d / "students", say)
    lap("distil")
    # the reference's and the controls' answers are computed once and reused by the second
    # bundle (the query cache); every answer still enters each bundle's transcripts
    from distilltrace.models.cache import CachedModel

    models = {k: load_model(str(v), dtype=cfg.dtype) for k, v in paths.items()}
    cache = d / "query-cache"
    ref = CachedModel(teacher, cache)
    ctrls = [CachedModel(models[f"control-{i + 1}"], cache) for i in range(cfg.n_controls)]
    bundles = {}
    for name in ("harvested", "benign"):
        bundles[name] = _bundle(name, models[name], ref, ctrls, log, d / "scan",
                                int(found.cluster_id), key, cfg, d, say)  # fmt: skip
    lap("custody")
    err = _tampered(d / "bundle-harvested", d)
    sec["total"] = round(time.perf_counter() - t_all, 1)
    hp, bp = bundles["harvested"]["pvalues"], bundles["benign"]["pvalues"]
    from distilltrace.custody.claims import SUSPECT_SIDE as suspect_side

    targets = {
        "harvested_all_p_le_1e-4": all(p is not None and p <= 1e-4 for p in hp.values()),
        "benign_suspect_p_ge_0.01": all((bp.get(k) or 1.0) >= 0.01 for k in suspect_side),
        "benign_not_attributed": not bundles["benign"]["attributed"],
        "verify_passes_both": all(b["verified"] for b in bundles.values()),
        "tampered_copy_fails": bool(err),
    }
    result = DemoResult(
        tier, asdict(cfg), sec,
        {"cluster_id": int(found.cluster_id), "name": found.name, "flagged": found.flagged,
         "pvalue_adjusted": found.pvalue_adjusted, "n_accounts": found.n_accounts,
         "true_accounts_found": len(truth & set(found.members)), "true_accounts": len(truth)},
        len(harvested), bundles, err, targets,
    )  # fmt: skip
    write_json(d / "demo.json", result.to_dict())
    return result
