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
    """The demo's sizes (quick: minutes on 2 CPU cores; full: a pretrained student)."""

    tier: str = "quick"
    teacher: str = "smollm2-135m-instruct"  # the served (reference) model spec
    n_accounts: int = 300  # simulated population (the simulator's minimum)
    campaign: str = "hydra"  # the one extraction archetype simulated
    max_campaign_requests: int = 320  # campaign requests kept (the earliest), all sent
    n_benign_http: int = 40  # benign requests sent over HTTP (a sample; the rest: metadata)
    max_tokens: int = 48
    temperature: float = 0.8
    delta: float = 4.0  # watermark strength (green-list, context width 1)
    clients: int = 8
    student: str = "tiny-2l"
    epochs: int = 8
    lr: float = 2e-2
    n_probes: int = 48
    provenance: dict[str, Any] = field(
        default_factory=lambda: {
            "pool_size": 400,
            "n_sampled": 24,
            "n_fingerprint": 24,
            "n_reverse": 12,
            "n_gap": 6,
            "max_new_tokens": 24,
            "prompt_source": "builtin",
            "budget": 120,
            "identity_probes": False,
            "batch_size": 16,
        }  # fmt: skip
    )
    seed: int = 0

    @classmethod
    def for_tier(cls, tier: str) -> DemoConfig:
        if tier == "quick":
            return cls()
        if tier == "full":
            return cls(tier="full", n_accounts=1000, campaign="hydra", max_campaign_requests=800,
                       n_benign_http=200, max_tokens=128, student="gemma3-270m", epochs=2,
                       lr=5e-5, n_probes=128)  # fmt: skip
        raise CustodyError(f"--tier must be quick or full, got {tier!r}")


class _Server:
    """The watermarked model behind the OpenAI-compatible app, in a thread on 127.0.0.1."""

    def __init__(self, model: Any, wm: Any):
        import uvicorn

        from distilltrace.serve.app import create_app

        try:
            from distilltrace.serve.batching import BatchConfig

            app = create_app(model, watermark=wm, batching=BatchConfig(max_batch=8))
        except ImportError:  # pragma: no cover - older serve without batching
            app = create_app(model, watermark=wm)
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

    tb = simulate(n_accounts=cfg.n_accounts, days=1, seed=cfg.seed, campaigns=(cfg.campaign,))
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
        r["response"] = j["choices"][0]["message"]["content"]
        r[KEY_COLUMN] = j["watermark"]["key_id"]
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


def _found(res: Any, truth: set[str]) -> Any:
    """The flagged campaign of the scan holding most of the true campaign's accounts."""
    flagged = [c for c in res.campaigns if c.flagged]
    best = max(flagged, key=lambda c: len(truth & set(c.members)), default=None)
    if best is None or not truth & set(best.members):
        raise CustodyError("the scan did not flag the extraction campaign")
    return best


def _students(cfg: DemoConfig, harvested: list[dict], d: Path, note: Note) -> dict[str, Path]:
    """A student distilled from the harvest; one from a benign, unmarked corpus of the same
    size (characters); two controls trained on other benign text (other seeds)."""
    from distilltrace.distill.dataset import Record
    from distilltrace.distill.human_text import human_corpus
    from distilltrace.distill.student import make_student
    from distilltrace.distill.training import train_lm, train_seq_kd

    n_chars = sum(len(h["response"]) for h in harvested)
    recs = [Record(h["prompt"], h["response"]) for h in harvested]
    kw = {"epochs": cfg.epochs, "lr": cfg.lr, "batch_size": 16, "progress": False}
    out = {}
    note(f"distil: harvested student on {len(recs)} exchanges ({n_chars} characters)")
    train_seq_kd(make_student(cfg.student, cfg.teacher, seed=1), recs, d / "harvested", **kw)
    out["harvested"] = d / "harvested"
    corpus = human_corpus(max_chars=4 * n_chars + 4000, seed=cfg.seed)
    for name, seed, part in (("benign", 2, 0), ("control-1", 3, 1), ("control-2", 4, 2)):
        texts, total = [], 0
        for t in corpus[part::3]:
            if total >= n_chars:
                break
            texts.append(t)
            total += len(t)
        note(f"distil: {name} student on {len(texts)} benign texts ({total} characters)")
        train_lm(make_student(cfg.student, cfg.teacher, seed=seed), texts, d / name, **kw)
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
    seconds: dict[str, float]
    campaign: dict[str, Any]
    harvested: int
    bundles: dict[str, dict[str, Any]]  # student -> claims p-values, attributed, verified
    tampered_error: str
    targets: dict[str, bool]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _key(model: Any, cfg: DemoConfig, d: Path) -> tuple[Any, Path]:
    """A fresh green-list key bound to the served model's tokenizer (file mode 0600)."""
    from distilltrace.marks.keys import make_watermark, new_secret, write_key_file
    from distilltrace.marks.schemes import SchemeParams, TokenizerBinding

    secret = new_secret()
    params = SchemeParams(scheme="greenlist", context_width=1, delta=cfg.delta)
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
        "verify_s": round(time.perf_counter() - t0, 1),
    }


def run_demo(
    out: str | Path, tier: str = "quick", note: Note | None = None, teacher: str | None = None
) -> DemoResult:
    """The whole chain (see the module docstring); writes OUT/demo.json."""
    from distilltrace.models import load_model
    from distilltrace.traffic import scan

    say = note or (lambda m: None)
    cfg = DemoConfig.for_tier(tier)
    if teacher is not None:
        cfg = replace(cfg, teacher=teacher)
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    sec: dict[str, float] = {}
    t_all = t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        sec[name] = round(time.perf_counter() - t, 1)
        t = time.perf_counter()

    teacher = load_model(cfg.teacher)
    wm, key = _key(teacher, cfg, d)
    rows, truth = _traffic(cfg)
    camp_rows = [r for r in rows if r["account_id"] in truth]
    benign = [r for r in rows if r["account_id"] not in truth][
        :: max(1, len(rows) // cfg.n_benign_http)
    ]
    send = camp_rows + benign[: cfg.n_benign_http]
    lap("setup")
    say(f"serving {cfg.teacher} with key {wm.key_id}; {len(send)} requests over HTTP")
    with _Server(teacher, wm) as base:
        _query(base, send, cfg, say)
    log = _write_log(rows, d / "log.jsonl")
    lap("serve_and_query")
    shutil.rmtree(d / "scan", ignore_errors=True)
    res = scan([str(log)], out_dir=d / "scan", progress=False)
    found = _found(res, truth)
    lap("scan")
    lines = member_lines(log, set(found.members))
    harvested, _ = harvested_of(parse_segment(lines, log.name), wm.key_id)
    paths = _students(cfg, harvested, d / "students", say)
    lap("distil")
    models = {k: load_model(str(v)) for k, v in paths.items()}
    ctrls = [models["control-1"], models["control-2"]]
    bundles = {}
    for name in ("harvested", "benign"):
        bundles[name] = _bundle(name, models[name], teacher, ctrls, log, d / "scan",
                                int(found.cluster_id), key, cfg, d, say)  # fmt: skip
    lap("custody")
    err = _tampered(d / "bundle-harvested", d)
    sec["total"] = round(time.perf_counter() - t_all, 1)
    hp, bp = bundles["harvested"]["pvalues"], bundles["benign"]["pvalues"]
    suspect_side = ("radioactivity_closed", "radioactivity_open", "provenance")
    targets = {
        "harvested_all_p_le_1e-4": all(p is not None and p <= 1e-4 for p in hp.values()),
        "benign_suspect_p_ge_0.01": all((bp.get(k) or 1.0) >= 0.01 for k in suspect_side),
        "benign_not_attributed": not bundles["benign"]["attributed"],
        "verify_passes_both": all(b["verified"] for b in bundles.values()),
        "tampered_copy_fails": bool(err),
    }
    result = DemoResult(
        tier, sec,
        {"cluster_id": int(found.cluster_id), "name": found.name, "flagged": found.flagged,
         "pvalue_adjusted": found.pvalue_adjusted, "n_accounts": found.n_accounts,
         "true_accounts_found": len(truth & set(found.members)), "true_accounts": len(truth)},
        len(harvested), bundles, err, targets,
    )  # fmt: skip
    write_json(d / "demo.json", result.to_dict())
    return result
