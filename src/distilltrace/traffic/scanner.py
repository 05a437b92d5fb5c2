"""`scan`: find distillation campaigns in API request logs.

Reads and validates the logs into the engine, runs the pipeline's SQL reductions,
then builds the linkage graph, signals and calibrated scores on the reduced tables,
and (with ``out_dir``) writes accounts.parquet, requests.parquet, campaigns.json,
summary.json, quarantine.parquet and report.html.
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from distilltrace.traffic import content as content_model
from distilltrace.traffic import features, fusion, pipeline, readers, signals
from distilltrace.traffic.engine import Engine, make_engine
from distilltrace.traffic.readers import LoadReport, load_events

log = logging.getLogger(__name__)

#: Default per-account tail probability at which a lone account is flagged.
DEFAULT_ACCOUNT_ALPHA = 0.0005
#: Default family-wise level for calling a cluster a campaign (Bonferroni over clusters).
DEFAULT_CAMPAIGN_ALPHA = 0.001
#: Level the extraction (harvest) evidence must also reach, for a cluster (Bonferroni)
#: or a lone account (calibrated tail), before it is called a campaign.
HARVEST_ALPHA = 0.01
#: The extraction tail a lone account must reach (no cluster shares the evidence).
LONE_HARVEST_ALPHA = 0.001


@dataclass
class Campaign:
    """A flagged (or candidate) cluster with its evidence."""

    cluster_id: int
    rank: int
    flagged: bool
    score: float  # -log10 adjusted p-value
    pvalue: float
    pvalue_adjusted: float
    n_accounts: int
    n_requests: int
    members: list[str]
    signals: dict[str, float]
    shared_infrastructure: list[dict[str, Any]]
    examples: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    synchrony: float
    kind: str = "linkage"  # linkage component, or ip_pool / client_mismatch / signup_burst group
    name: str = ""
    reason: str = ""  # "harvest" (what it asks for) or "behaviour" (behaviour alone)
    harvest_pvalue_adjusted: float = 1.0
    note: str = ""

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class ScanResult:
    """What a scan found: per-account scores, ranked campaigns and a summary."""

    accounts: pd.DataFrame
    campaigns: list[Campaign]
    summary: dict[str, Any]
    requests: pd.DataFrame | None = None
    quarantine: pd.DataFrame | None = None
    out_dir: Path | None = None
    files: dict[str, str] = field(default_factory=dict)

    @property
    def flagged_accounts(self) -> list[str]:
        return self.accounts.loc[self.accounts["flagged"], "account_id"].tolist()

    def to_dict(self) -> dict:
        return {
            "summary": self.summary,
            "campaigns": [c.to_dict() for c in self.campaigns],
            "files": self.files,
        }


#: Infrastructure columns: the linkage graph needs at least one.
LINK_COLUMNS = (
    "client_ip",
    "payment_fingerprint",
    "tls_fingerprint",
    "user_agent",
    "asn",
    "org_id",
    "api_key_id",
)


@dataclass(frozen=True)
class ScanConfig:
    """Every parameter of a scan, with its default (one place; see docs/traffic.md).

    ``account_alpha``: calibrated tail at which a lone account is flagged;
    ``campaign_alpha``: family-wise level for calling a candidate group a campaign;
    ``harvest_alpha`` / ``lone_harvest_alpha``: the harvest (what-it-asks-for) evidence a
    group / lone account must also reach; ``behaviour_factor``: without harvest evidence,
    a group or account is flagged only at alpha x this (behaviour alone, reported with
    that reason); ``group_member_alpha``: a member of a flagged pool/client/burst group is
    flagged when its own harvest or behaviour tail reaches it; ``disclosed_paths`` /
    ``disclosed_min_harvest``: accounts that declare research or education use (a group at
    least 90% of whose members do) are judged on scale: flagged only above this many
    extraction-like requests; ``lone_min_lines``: a lone account's content evidence
    counts its template frames only when they rest on at least this many distinct
    deciding lines (else one repeated line is one trial, `_harvest_lines`); ``content``:
    the content model's parameters (None turns it off).
    """

    account_alpha: float = DEFAULT_ACCOUNT_ALPHA
    campaign_alpha: float = DEFAULT_CAMPAIGN_ALPHA
    link_threshold: float = 2.0
    harvest_alpha: float = HARVEST_ALPHA
    lone_harvest_alpha: float = LONE_HARVEST_ALPHA
    behaviour_factor: float = 0.1
    group_member_alpha: float = 0.05
    disclosed_paths: tuple[str, ...] = ("research", "education")
    disclosed_min_harvest: int = 5000
    lone_min_lines: int = 3
    content: content_model.ContentConfig | None = field(default_factory=content_model.ContentConfig)


class _Progress:
    """Stage timings, and while running a Rich bar (on a terminal) or one line per stage
    (elsewhere, when progress is asked for), so a long scan never looks hung."""

    def __init__(self, show: bool, total: int) -> None:
        import sys

        self.t0 = time.perf_counter()
        self.timings: dict[str, float] = {}
        self.last = self.t0
        self.shown = show
        self._p = None
        self._lines = show and not sys.stderr.isatty()
        if show and not self._lines:
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._p = Progress(
                TextColumn("[bold]traffic scan[/bold] {task.description}"),
                BarColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                transient=True,
            )
            self._task = self._p.add_task("reading", total=total)

    def __enter__(self):
        if self._p:
            self._p.__enter__()
        return self

    def __exit__(self, *a):
        if self._p:
            self._p.__exit__(*a)

    def _say(self, text: str) -> None:
        import sys

        print(
            f"traffic scan: {text} ({time.perf_counter() - self.t0:.0f} s)",
            file=sys.stderr,
            flush=True,
        )

    def step(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self.last, 3)
        self.last = now
        if self._p:
            self._p.update(self._task, advance=1, description=name)
        elif self._lines:
            self._say(name)

    def sub(self, name: str):
        """A callback ``(done, total)`` for a long inner stage (at most one line per 10%)."""
        marks: set[int] = set()

        def cb(done: int, total: int) -> None:
            tenth = int(10 * done / max(total, 1))
            if self._p:
                self._p.update(self._task, description=f"{name} {done:,}/{total:,}")
            elif self._lines and tenth not in marks:
                marks.add(tenth)
                self._say(f"{name} {done:,}/{total:,}")

        return cb


def scan(
    source: Any,
    *,
    out_dir: str | Path | None = None,
    engine: str | Engine = "duckdb",
    account_alpha: float = DEFAULT_ACCOUNT_ALPHA,
    campaign_alpha: float = DEFAULT_CAMPAIGN_ALPHA,
    link_threshold: float = 2.0,
    config: ScanConfig | None = None,
    content: bool = True,
    progress: bool | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> ScanResult:
    """Scan request logs (paths, a pandas/pyarrow table or a DuckDB relation) for campaigns.

    ``config`` holds every parameter (`ScanConfig`); the keyword arguments
    ``account_alpha``, ``campaign_alpha`` and ``link_threshold`` override it, and
    ``content=False`` turns the semantic content model off.
    """
    from distilltrace.traffic.outputs import prepare_out_dir

    out_dir = prepare_out_dir(out_dir)  # check --out before any work; write via staging
    cfg = config or ScanConfig()
    cfg = replace(
        cfg,
        account_alpha=account_alpha if config is None else cfg.account_alpha,
        campaign_alpha=campaign_alpha if config is None else cfg.campaign_alpha,
        link_threshold=link_threshold if config is None else cfg.link_threshold,
        content=cfg.content if content else None,
    )
    if engine == "duckdb" and type(source).__module__.startswith("pyspark.sql"):  # scan it in Spark
        from distilltrace.traffic.spark_engine import SparkEngine

        engine = SparkEngine(source.sparkSession)
    eng = make_engine(engine, threads=threads, memory_limit=memory_limit)
    prog = _Progress(bool(progress), 9)
    try:
        with prog if prog.shown else nullcontext(prog):
            # engines with their own reader (Spark) validate the same way in place
            load = (
                eng.load_events(source) if hasattr(eng, "load_events") else load_events(eng, source)
            )
            prog.step("validated")
            result = _run(eng, load, prog, cfg, Path(out_dir) if out_dir is not None else None)
        result.summary["timings_s"] = prog.timings
        result.summary["timings_s"]["total"] = round(time.perf_counter() - prog.t0, 3)
        if out_dir is not None:
            from distilltrace.traffic.outputs import write_outputs

            write_outputs(result, Path(out_dir))
        return result
    finally:
        eng.close()  # an Engine passed in is closed too (it holds the scan's tables)


def _empty_result(summary: dict[str, Any], quarantine: pd.DataFrame) -> ScanResult:
    summary.update(
        n_accounts=0,
        n_requests=0,
        n_flagged_accounts=0,
        n_campaigns=0,
        n_flagged_requests=0,
        n_flagged_alone=0,
        n_flagged_alone_outside=0,
        expected_benign_fpr_bound=0.0,
        reference={},
        warnings=["no valid rows: nothing was scanned"],
    )
    reqs = pd.DataFrame(
        {
            "request_id": pd.Series([], dtype=str),
            "account_id": pd.Series([], dtype=str),
            "score": pd.Series([], dtype=float),
            "extraction_log_odds": pd.Series([], dtype=float),
            "flagged": pd.Series([], dtype=bool),
        }
    )
    accounts = pd.DataFrame(
        {
            "account_id": pd.Series([], dtype=str),
            "flagged": pd.Series([], dtype=bool),
            "flag_reason": pd.Series([], dtype=str),
            "risk": pd.Series([], dtype=float),
            "risk_tail_p": pd.Series([], dtype=float),
            "cluster_id": pd.Series([], dtype="int64"),
            "campaign_flagged": pd.Series([], dtype=bool),
        }
    )
    return ScanResult(accounts, [], summary, reqs, quarantine)


#: Extraction share at which a flagged lone account counts as a campaign account in full.
PURE_ACCOUNT_SHARE = 0.10

#: Above this many requests, request-level flags stay on disk (requests.parquet) only.
MAX_REQUESTS_IN_MEMORY = 2_000_000


def _run(eng, load: LoadReport, prog, cfg: ScanConfig, out_dir: Path | None) -> ScanResult:
    """reduce -> signals -> score -> campaigns -> request flags -> summary."""
    present = set(load.columns_present)
    summary: dict[str, Any] = {
        "engine": eng.name,
        "load": load.to_dict(),
        "rows_read": load.rows_read,
        "rows_valid": load.rows_valid,
        "rows_quarantined": load.rows_quarantined,
        "duplicate_request_ids": load.duplicate_request_ids,
        "account_alpha": cfg.account_alpha,
        "campaign_alpha": cfg.campaign_alpha,
        "harvest_alpha": cfg.harvest_alpha,
    }
    quarantine = eng.fetch("SELECT * FROM quarantine ORDER BY source, row_number")
    if load.rows_valid - load.duplicate_rows_dropped == 0:  # the rows `events` holds
        summary["skipped_signals"] = {}
        return _empty_result(summary, quarantine)
    red = _reduce(eng, present, prog, cfg)
    feats, skipped = features.compute(red)
    if not any(c in present for c in LINK_COLUMNS):
        skipped["linkage"] = "no infrastructure columns (" + ", ".join(LINK_COLUMNS) + ")"
    if "signup_path" not in present:
        skipped["signup_path"] = "missing column signup_path (the research/education scale rule)"
    summary["skipped_signals"] = skipped
    prog.step("signals")
    sc = _score(red, feats, cfg)
    prog.step("scored")
    out = _account_table(red, feats, sc)
    campaigns = _campaign_evidence(eng, red, feats, sc, out)
    files, n_flag_req, req_flags = _request_flags(eng, red, out, out_dir)
    prog.step("campaign evidence")
    summary.update(_summary(red, feats, sc, cfg, n_flag_req))
    return ScanResult(out, campaigns, summary, req_flags, quarantine, files=files)


#: Salted account keys tried after a 64-bit collision before giving up (each collision
#: has a chance of about n^2 / 2^65 for n accounts: 3e-8 at a million accounts).
MAX_REKEYS = 3


def _run_statements(eng, present: set[str]) -> None:
    """The pipeline's statements, keyed by the events' 64-bit account key; run again
    with a salted key when two account ids share one (never seen, but then every
    per-account table would merge them)."""
    for salt in range(MAX_REKEYS + 1):
        if salt:
            readers.rekey_events(eng, salt)
        for st in pipeline.statements(present):
            st.define(eng)
        got = eng.fetch("SELECT count(*) AS n, count(DISTINCT aid) AS k FROM acct_meta")
        if int(got["n"].iloc[0]) == int(got["k"].iloc[0]):
            return
        log.warning("two account ids share a 64-bit key; re-running with salt %d", salt + 1)
    raise RuntimeError(f"account keys still collide after {MAX_REKEYS} salts")


def _reduce(eng, present: set[str], prog, cfg: ScanConfig) -> features.Reduced:
    """Run the pipeline's SQL reductions and bring the small tables back."""
    _run_statements(eng, present)
    prog.step("reduced")
    acct = _stable(eng.fetch("SELECT * FROM acct_all ORDER BY account_id"))

    def opt(table: str, order: str, cond: bool) -> pd.DataFrame | None:
        return eng.fetch(f"SELECT * FROM {table} ORDER BY {order}") if cond else None

    red = features.Reduced(
        acct=acct,
        present=present,
        acct_topic=eng.fetch("SELECT * FROM acct_topic ORDER BY account_id, topic"),
        acct_hod=eng.fetch("SELECT account_id, hod, n FROM acct_hod ORDER BY account_id, hod"),
        acct_value=eng.fetch("SELECT * FROM acct_value ORDER BY kind, value, account_id"),
        acct_model=opt("acct_model", "account_id, model", "model" in present),
        acct_client=opt(
            "acct_client", "account_id, tls, fam", {"tls_fingerprint", "user_agent"} <= present
        ),
        acct_ip=opt("acct_ip", "account_id, ip", {"client_ip", "asn_type"} <= present),
    )
    prog.step("fetched reduced tables")
    if cfg.content is not None:
        red.content = content_model.run(
            eng, acct, cfg.content, progress=prog.sub("embedding"), priority=_linked(red)
        )
    prog.step("content model")
    return red


def _linked(red: features.Reduced, max_df: int = 200) -> pd.Series:
    """Accounts that share a rare infrastructure value with another account (candidate
    campaign members): sampled first when the content model's cap binds."""
    av = red.acct_value[red.acct_value["kind"] != "template"]
    df = av.groupby(["kind", "value"])["account_id"].transform("nunique")
    ids = av.loc[(df >= 2) & (df <= max_df), "account_id"].astype(str).unique()
    return pd.Series(True, index=pd.Index(ids)).reindex(red.accounts, fill_value=False)


@dataclass
class _Scored:
    """What `_score` decided: calibrated tails, candidates, their tests and the flags."""

    sc: fusion.AccountScores
    harvest_p: np.ndarray
    acct_p: np.ndarray
    link: signals.Linkage
    values: pd.DataFrame  # acct_value plus the derived group and behaviour values
    candidates: list[_Candidate]
    flagged: np.ndarray
    reason: np.ndarray  # per account: "", "harvest", "behaviour"
    alone: np.ndarray
    in_campaign: np.ndarray
    risk_tail: np.ndarray
    group_of: np.ndarray  # flagged pool/client/burst candidate id per account, or -1
    lines_p: np.ndarray | None = None  # conservative harvest tail (`_harvest_lines`)


@dataclass
class _Candidate:
    """A candidate campaign: a linkage component or a pool/client/burst group."""

    cid: int
    kind: str
    name: str
    idx: np.ndarray
    test: fusion.ClusterTest
    harvest: fusion.ClusterTest
    p_adj: float = 1.0
    harvest_adj: float = 1.0
    flagged: bool = False
    reason: str = ""
    note: str = ""


def _derived_values(red: features.Reduced) -> pd.DataFrame:
    """Link values computed here rather than in SQL: IP pools, contradictory clients,
    sign-up bursts and behaviour buckets of the content model."""
    parts = [red.acct_value[["kind", "value", "account_id", "n"]]]
    parts.append(signals.ip_pools(red.acct_ip))
    parts.append(
        red.once("mismatch", lambda: signals.client_mismatch(red.acct_client, red.accounts))[1]
    )
    if "account_created_at" in red.present:
        parts.append(
            signals.signup_bursts(pd.Series(red.acct["created_t"].to_numpy(), index=red.accounts))
        )
    if red.content is not None:
        parts.append(red.content.behaviour_values)
    parts = [p for p in parts if len(p)]
    if not parts:  # nothing links anyone (e.g. only the schema's required columns)
        return pd.DataFrame(
            {c: pd.Series(dtype=object) for c in ("kind", "value", "account_id", "n")}
        )
    v = pd.concat(parts, ignore_index=True)
    v["account_id"] = v["account_id"].astype(str)
    v["value"] = v["value"].astype(str)
    return v.sort_values(["kind", "value", "account_id"], kind="stable").reset_index(drop=True)


def _harvest_test(H: np.ndarray, units: np.ndarray) -> fusion.ClusterTest:
    """The candidate's harvest test: the Gamma test on each harvest signal's tails, the
    smallest p-value Bonferroni-adjusted over the signals (once per candidate, not once
    per member, where the factor would compound over the sum)."""
    tests = [fusion.cluster_test(h, units) for h in H]
    best = min(tests, key=lambda t: t.pvalue)
    return fusion.ClusterTest(best.size, best.statistic, min(1.0, best.pvalue * len(tests)))


def _candidates(red, values, link, tail_p, H) -> list[_Candidate]:
    cl = link.cluster
    units = _customer_units(red.acct)
    sizes = np.bincount(cl)
    order = np.argsort(cl, kind="stable")
    bounds = np.r_[0, np.cumsum(sizes)]
    cands = []
    for c in np.flatnonzero(sizes >= 2):
        idx = order[bounds[c] : bounds[c + 1]]
        cands.append(
            _Candidate(
                int(c),
                "linkage",
                f"cluster {int(c)}",
                idx,
                fusion.cluster_test(tail_p[idx], units[idx]),
                _harvest_test(H[:, idx], units[idx]),
            )
        )
    base = int(cl.max()) + 1 if len(cl) else 0
    for j, (name, idx) in enumerate(signals.group_candidates(values, red.accounts).items()):
        if len(np.unique(cl[idx])) == 1 and sizes[cl[idx[0]]] == len(idx):
            continue  # the same accounts as a linkage component: tested once
        cands.append(
            _Candidate(
                base + j,
                name.split("=", 1)[0],
                name,
                idx,
                fusion.cluster_test(tail_p[idx], units[idx]),
                _harvest_test(H[:, idx], units[idx]),
            )
        )
    return cands


def _harvest_volume(red: features.Reduced) -> np.ndarray:
    """Estimated extraction-like requests per account (rules count, or the content model's
    sampled intent rate times the account's requests, whichever is larger)."""
    n = red.acct["n_req"].to_numpy(float)
    k = red.acct["n_elicit"].to_numpy(float)
    if red.content is not None:
        k = np.maximum(k, red.content.table["intent_rate"].to_numpy(float) * n)
    return k


def _disclosed(red: features.Reduced, cfg: ScanConfig) -> np.ndarray:
    if "signup_path" not in red.acct.columns:
        return np.zeros(len(red.acct), bool)
    return red.acct["signup_path"].isin(cfg.disclosed_paths).to_numpy()


def _decide(cand: _Candidate, m: int, cfg: ScanConfig, disclosed, volume) -> None:
    """Flag a candidate on its test plus harvest evidence; behaviour alone is reported.

    Two routes, each at half the campaign level (a union bound keeps the family-wise
    level): the candidate is anomalous overall and its harvest evidence reaches
    ``harvest_alpha``; or its harvest evidence alone (what its members ask for, tested
    against the population) reaches the campaign level, however ordinary the rest of
    its behaviour (many low-volume accounts on shared infrastructure)."""
    cand.p_adj = min(1.0, cand.test.pvalue * m)
    cand.harvest_adj = min(1.0, cand.harvest.pvalue * m)
    half = cfg.campaign_alpha / 2
    joint = cand.p_adj <= half and cand.harvest_adj <= cfg.harvest_alpha
    if joint or cand.harvest_adj <= half:
        cand.flagged, cand.reason = True, "harvest"
    elif cand.p_adj <= cfg.campaign_alpha * cfg.behaviour_factor:
        cand.reason = "behaviour"
        cand.note = (
            "behaviour alone is extreme (adjusted p "
            f"{cand.p_adj:.2g}) but what it asks for is not extraction-like: reported for review"
        )
    vol = float(volume[cand.idx].sum())
    if cand.flagged and disclosed[cand.idx].mean() >= 0.9 and vol < cfg.disclosed_min_harvest:
        cand.flagged = False
        cand.note = (
            f"declared research/education use at study scale ({vol:.0f} extraction-like "
            f"requests < {cfg.disclosed_min_harvest}): reported, not flagged"
        )


def _unit_level(p: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Each account's p-value judged with its declared customer: for a customer with
    several seats (same org and card) the seats are one unit, whose p-value is
    exp(-mean of the seats' capped -ln p) (at most one Exp(1) draw in the tail under the
    null, as in `fusion.cluster_test`); one extreme seat of a labelling company cannot be
    flagged alone while its 119 colleagues look ordinary."""
    _, inv, cnt = np.unique(units, return_inverse=True, return_counts=True)
    e = np.minimum(-np.log(np.clip(p, 1e-300, 1.0)), fusion.UNIT_CAP)
    mean = np.bincount(inv, weights=e) / cnt
    return np.where(cnt[inv] >= 2, np.exp(-mean[inv]), p)


def _harvest_lines(
    red: features.Reduced, sc, hv: list[str], harvest_p: np.ndarray, min_lines: int
) -> np.ndarray:
    """The harvest tail a lone account is flagged on: the same union as ``harvest_p``,
    except that the content model's evidence of an account whose intent-like prompts
    rest on fewer than ``min_lines`` distinct deciding lines is the larger of its frame
    tail and its line-collapsed tail (`content._frame_counts`: one repeated instruction
    line is one decision of the head, however many items it is sent with). Never
    smaller than the frame tail, so it stays valid wherever that is."""
    if red.content is None or "intent" not in hv:
        return harvest_p
    t = red.content.table
    frames = 10.0 ** (-sc.tails["intent"].to_numpy(float))
    lines = np.maximum(frames, fusion.pvalue_tail(t["intent_lines"].to_numpy(float)))
    intent = np.where(t["k_lines"].to_numpy(float) >= min_lines, frames, lines)
    rows = [intent if k == "intent" else 10.0 ** (-sc.tails[k].to_numpy(float)) for k in hv]
    return np.minimum(1.0, len(hv) * np.min(rows, axis=0))


def _lone(tail_p, lines_p, units, cfg: ScanConfig) -> np.ndarray:
    """Accounts flagged on their own evidence (each judged with its declared customer,
    `_unit_level`), by either of two routes at half ``account_alpha`` each (union bound):
    the conservative harvest tail alone (``lines_p``, `_harvest_lines`), or extreme
    behaviour together with that tail at ``lone_harvest_alpha``. An integration that
    repeats one instruction line, however heavy and however automated, rests on one
    decision of the intent head and is not flagged on it (extreme behaviour makes it
    `review`); a harvester that sends a few elicitation wordings over a sweep of tasks
    is flagged."""
    half = cfg.account_alpha / 2
    lines = _unit_level(lines_p, units)
    by_both = (_unit_level(tail_p, units) <= half) & (lines <= cfg.lone_harvest_alpha)
    return (lines <= half) | by_both


def _score(red: features.Reduced, feats: pd.DataFrame, cfg: ScanConfig) -> _Scored:
    """Calibrate and fuse the signals, build candidates, test them and decide the flags."""
    reg = {s.name: s for s in features.SIGNALS if s.name in feats.columns}
    sc = fusion.score_accounts(
        feats,
        {k: s.weight for k, s in reg.items()},
        pvalue_stats={k for k, s in reg.items() if s.pvalue_stat and not s.harvest},
        null_stats={k for k, s in reg.items() if s.harvest},
    )
    tail_p = sc.tail_p
    hv = [k for k, s in reg.items() if s.harvest]
    # harvest evidence: the Bonferroni union of the harvest signals' calibrated tails
    H = np.vstack([10.0 ** (-sc.tails[k].to_numpy(float)) for k in hv])
    harvest_p = np.minimum(1.0, len(hv) * H.min(0))
    values = _derived_values(red)
    link_vals = (
        values
        if any(c in red.present for c in LINK_COLUMNS)
        else values[values["kind"] == "template"]
    )
    link = signals.linkage_graph(link_vals, red.accounts, threshold=cfg.link_threshold)
    cands = _candidates(red, values, link, tail_p, H)
    disclosed, volume = _disclosed(red, cfg), _harvest_volume(red)
    N = len(red.acct)
    flagged, reason = np.zeros(N, bool), np.full(N, "", dtype=object)
    in_campaign, group_of = np.zeros(N, bool), np.full(N, -1, np.int64)
    cand_p = np.ones(N)
    for c in cands:
        _decide(c, max(len(cands), 1), cfg, disclosed, volume)
        cand_p[c.idx] = np.minimum(cand_p[c.idx], c.p_adj)
        if not c.flagged:
            continue
        idx = c.idx
        if c.kind != "linkage":  # a group: only members with evidence of their own
            own = (harvest_p[idx] <= cfg.group_member_alpha) | (
                tail_p[idx] <= cfg.group_member_alpha
            )
            idx = idx[own]
            group_of[idx] = c.cid
        in_campaign[idx] = True
        reason[idx] = np.where(reason[idx] == "harvest", "harvest", c.reason)
    units = _customer_units(red.acct)
    lines_p = _harvest_lines(red, sc, hv, harvest_p, cfg.lone_min_lines)
    acct_p = np.minimum(1.0, 2.0 * np.minimum(tail_p, lines_p))
    alone = _lone(tail_p, lines_p, units, cfg)
    alone &= ~(disclosed & (volume < cfg.disclosed_min_harvest))
    # an openly organised customer (several seats on one org and one card) is known to
    # the provider by contract: its seats' evidence is reported for review, not flagged
    # as a lone account (a labelling company's A/B judgements look like reward harvesting)
    _, inv, cnt = np.unique(units, return_inverse=True, return_counts=True)
    declared = cnt[inv] >= 2
    review = (alone & declared) | (~alone & (tail_p <= cfg.account_alpha * cfg.behaviour_factor))
    alone &= ~declared
    review &= ~in_campaign
    reason = np.where(~in_campaign & alone, "harvest", np.where(review, "review", reason))
    flagged = in_campaign | alone
    return _Scored(
        sc,
        harvest_p,
        acct_p,
        link,
        values,
        cands,
        flagged,
        reason,
        alone,
        in_campaign,
        np.minimum(acct_p, cand_p),
        group_of,
        lines_p,
    )


def _account_table(red: features.Reduced, feats: pd.DataFrame, s: _Scored) -> pd.DataFrame:
    acct, cl = red.acct, s.link.cluster
    sizes = np.bincount(cl)
    out = pd.DataFrame(
        {
            "account_id": red.accounts.astype(str),
            "flagged": s.flagged,
            "flag_reason": s.reason.astype(str),
            "risk": -np.log10(np.clip(s.risk_tail, 1e-300, 1)) + 0.0,
            "risk_tail_p": s.risk_tail,
            "account_tail_p": s.acct_p,
            "behaviour_tail_p": s.sc.tail_p,
            "extraction_tail_p": s.harvest_p,
            "extraction_lines_tail_p": s.harvest_p if s.lines_p is None else s.lines_p,
            "cluster_id": cl.astype("int64"),
            "cluster_size": sizes[cl].astype("int64"),
            "group_id": s.group_of,
            "campaign_flagged": s.in_campaign,
            "n_requests": acct["n_req"].to_numpy().astype("int64"),
            "behaviour": s.sc.behaviour,
        }
    )
    for name in feats.columns:
        out[f"sig_{name}"] = feats[name].to_numpy(float)
        out[f"tail_{name}"] = s.sc.tails[name].to_numpy(float)
    out["top_topic"] = red.once(
        "conc", lambda: signals.concentration_stat(red.acct_topic, red.accounts)
    )[0]["top_topic"].to_numpy()
    out["n_elicit"] = acct["n_elicit"].to_numpy().astype("int64")
    if red.content is not None:
        out["n_sampled"] = red.content.table["m_rows"].to_numpy().astype("int64")
        out["n_frames_sampled"] = red.content.table["m"].to_numpy().astype("int64")
        out["n_intent_frames"] = red.content.table["k_intent"].to_numpy().astype("int64")
        out["n_intent_lines"] = red.content.table["k_lines"].to_numpy().astype("int64")
        out["n_lines_sampled"] = red.content.table["m_lines"].to_numpy().astype("int64")
        out["sig_intent_lines"] = red.content.table["intent_lines"].to_numpy(float)
        out["n_followup_sampled"] = red.content.table["m_followup"].to_numpy().astype("int64")
        out["n_followup_intent_frames"] = red.content.table["k_followup"].to_numpy().astype("int64")
    if "created_t" in acct.columns:
        out["account_age_days"] = (acct["first_t"] - acct["created_t"]).to_numpy(float) / 86400
    else:
        out["account_age_days"] = np.nan
    for c in ("org_id", "signup_path"):
        if c in acct.columns:
            out[c] = acct[c].to_numpy()
    return out


def _campaign_evidence(eng, red, feats, s: _Scored, out: pd.DataFrame) -> list[Campaign]:
    """Flagged candidates, the top unflagged ones and lone flagged accounts, with evidence."""
    ranked = sorted(s.candidates, key=lambda c: (c.test.pvalue, -len(c.idx), c.cid))
    show = [c for c in ranked if c.flagged] + [c for c in ranked if not c.flagged][:5]
    cl = s.link.cluster
    shown = {c.cid for c in show}
    by_id = {c.cid: c for c in s.candidates if c.kind == "linkage"}
    for cid in np.unique(cl[s.alone & ~s.in_campaign]):
        if int(cid) in shown:
            continue
        if int(cid) in by_id:  # a multi-account cluster holding a lone flagged account
            show.append(by_id[int(cid)])
            continue
        idx = np.flatnonzero(cl == cid)
        t = fusion.cluster_test(s.sc.tail_p[idx])
        show.append(
            _Candidate(
                int(cid),
                "linkage",
                f"account {out['account_id'].iat[idx[0]]}",
                idx,
                t,
                t,
                t.pvalue,
                float(s.harvest_p[idx[0]]),
                True,
                "harvest",
            )
        )
    if not show:
        return []
    cmap = pd.concat(
        [
            pd.DataFrame({"account_id": red.accounts[c.idx].astype(str), "cluster_id": c.cid})
            for c in show
        ],
        ignore_index=True,
    ).astype({"cluster_id": "int64"})
    eng.register("cluster_map", cmap)
    for st in pipeline.stage2_statements():
        st.define(eng)
    cday = eng.fetch("SELECT * FROM cluster_day ORDER BY cluster_id, day")
    csync = eng.fetch("SELECT * FROM cluster_sync ORDER BY cluster_id, bin")
    cex = eng.fetch(
        "SELECT * FROM cluster_examples ORDER BY cluster_id, elicit_lo DESC, request_id"
    )
    return _campaigns(show, out, feats, s, cday, csync, cex)


def _request_flags(eng, red, out: pd.DataFrame, out_dir: Path | None):
    """Request-level flags: every request of an account flagged as a whole; within a mixed
    (mostly legitimate) flagged account only its extraction-like requests."""
    fl = out[["account_id", "flagged", "campaign_flagged", "risk"]].copy()
    fl["risk"] = np.minimum(fl["risk"].to_numpy(float), 300.0)
    n = red.acct["n_req"].to_numpy(float)
    share = _harvest_volume(red) / np.maximum(n, 1)
    fl["whole"] = fl["campaign_flagged"].to_numpy() | (share >= PURE_ACCOUNT_SHARE)
    eng.register("acct_flags", fl)
    intent_join, intent_hit = "", "FALSE"
    if red.content is not None and len(red.content.request_intent):
        thr = content_model.intent_head().threshold
        ri = red.content.request_intent
        eng.register("req_intent", ri[ri["intent_p"] > thr][["request_id"]].drop_duplicates())
        intent_join = "LEFT JOIN req_intent i ON r.request_id = i.request_id "
        intent_hit = "i.request_id IS NOT NULL"
    req_sql = (
        "SELECT r.request_id, r.account_id, "
        "CAST(f.risk + 0.01 * r.elicit_lo AS DOUBLE) AS score, r.elicit_lo AS extraction_log_odds, "
        f"(f.flagged AND (f.whole OR r.elicit_lo > 0 OR {intent_hit})) AS flagged "
        f"FROM req r JOIN acct_flags f ON r.account_id = f.account_id {intent_join}"
    )
    # a view: counted once and written once, so there is nothing to gain from storing it
    eng.run(f"CREATE OR REPLACE TEMP VIEW req_flags AS {req_sql}")
    files: dict[str, str] = {}
    n_flag = None  # counted from what was written or fetched, else by the engine
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "requests.parquet"
        eng.write_parquet("SELECT * FROM req_flags ORDER BY request_id", str(path))
        files["requests"] = str(path)
        flagged = pq.read_table(path, columns=["flagged"]).column("flagged")
        n_flag = int(pc.sum(pc.cast(flagged, "int64")).as_py() or 0)
    req_flags = None
    if int(n.sum()) <= MAX_REQUESTS_IN_MEMORY:
        req_flags = eng.fetch("SELECT * FROM req_flags ORDER BY request_id")
        if n_flag is None:
            n_flag = int(req_flags["flagged"].fillna(False).astype(bool).sum())
    if n_flag is None:
        n_flag = int(eng.fetch("SELECT count(*) AS n FROM req_flags WHERE flagged")["n"].iloc[0])
    return files, n_flag, req_flags


def _summary(red, feats, s: _Scored, cfg: ScanConfig, n_flag_req: int) -> dict[str, Any]:
    acct, cl = red.acct, s.link.cluster
    sizes = np.bincount(cl)
    n_acc = len(acct)
    reg = features.by_name()
    kinds = (
        pd.Series([c.kind for c in s.candidates]).value_counts().to_dict() if s.candidates else {}
    )
    out = {
        "n_requests": int(acct["n_req"].sum()),
        "n_accounts": int(n_acc),
        "time_range": [red.t0, float(acct["last_t"].max())],
        "n_flagged_accounts": int(s.flagged.sum()),
        "n_flagged_alone": int(s.alone.sum()),
        "n_flagged_alone_outside": int((s.alone & ~s.in_campaign).sum()),
        "n_flagged_by_reason": {
            r: int(((s.reason == r) & s.flagged).sum()) for r in ("harvest", "behaviour")
        },
        "n_clusters_tested": len(s.candidates),
        "candidates_by_kind": {str(k): int(v) for k, v in kinds.items()},
        "n_campaigns": int(sum(c.flagged for c in s.candidates)),
        "n_flagged_requests": n_flag_req,
        "threshold": {
            "account_tail_p": cfg.account_alpha,
            "campaign_pvalue_bonferroni": cfg.campaign_alpha,
            "harvest_alpha": cfg.harvest_alpha,
            "behaviour_factor": cfg.behaviour_factor,
            "meaning": (
                "an account is flagged alone when its calibrated tail probability vs the "
                "population is <= account_tail_p and its harvest tail <= the lone harvest "
                "level, or its behaviour tail alone <= account_tail_p x behaviour_factor; a "
                "candidate group is a campaign when its Bonferroni-adjusted Gamma-test "
                "p-value is <= campaign_pvalue_bonferroni with harvest evidence, or <= that "
                "x behaviour_factor without"
            ),
        },
        "expected_benign_fpr_bound": float(
            min(1.0, np.floor(cfg.account_alpha * (n_acc + 1)) / max(n_acc, 1))
        ),
        "elicitation_base_rate": red.memo.get("elicitation_base_rate"),
        "population_topic_mix": red.once(
            "conc", lambda: signals.concentration_stat(red.acct_topic, red.accounts)
        )[1],
        "linkage": {
            "kinds": s.link.kinds,
            "strong_pairs": s.link.edges_used,
            "n_clusters_multi": int((sizes >= 2).sum()),
            "largest_cluster": int(sizes.max()) if len(sizes) else 0,
            "threshold": cfg.link_threshold,
        },
        "signal_weights": {k: reg[k].weight for k in feats.columns},
        "signals_used": list(feats.columns)
        + ["linkage"] * any(c in red.present for c in LINK_COLUMNS),
        "not_campaigns": [
            {"candidate": c.name, "accounts": int(len(c.idx)), "note": c.note}
            for c in s.candidates
            if c.note
        ][:20],
    }
    if red.content is not None:
        out["content_model"] = red.content.summary()
    out["reference"] = {
        k: fusion.reference_check(feats[k].to_numpy(float)) for k in feats.columns if reg[k].harvest
    }
    out["warnings"] = _warnings(n_acc, out["reference"], cfg)
    return out


def _warnings(n_acc: int, reference: dict[str, dict], cfg: ScanConfig) -> list[str]:
    """What limits this scan's power, in words (the flags and p-values stand as they are:
    these warnings say where a campaign can go unseen, never that one was found)."""
    out = []
    if n_acc < fusion.MIN_CALIBRATED:
        # a lone account needs a tail <= account_alpha / 2 (`_lone`); a rank is >= 1/(n+1)
        none = 1 / (n_acc + 1) > cfg.account_alpha / 2
        out.append(
            f"only {n_acc} accounts: with fewer than {fusion.MIN_CALIBRATED} every "
            f"calibrated tail is a rank among them (at least 1/{n_acc + 1})"
            + (f", so no account can be flagged on its own at {cfg.account_alpha}" * none)
            + "; scan the whole traffic of a period"
        )
    for k, r in reference.items():
        if r["suspect"]:
            out.append(
                f"the population is not mostly benign for signal {k}: its bulk (50th-80th "
                f"percentile) lies {r['discount_log10']:.1f} orders of magnitude beyond the "
                f"signal's null ({100 * r['share']:.0f}% of accounts at its 1% level), so "
                "every account's evidence on it is discounted by as much and a campaign "
                "can look typical among them. A log filtered to suspected accounts, or one "
                "where extraction-like customers are a large share, hides campaigns: scan "
                "the whole traffic of a period"
            )
    return out


def _customer_units(acct: pd.DataFrame) -> np.ndarray:
    """A label per account naming the declared customer it belongs to: accounts with the
    same org_id and the same payment instrument are one customer (one unit in the
    cluster test); an account with neither is its own unit."""
    keys = [c for c in ("org_id", "payment_fingerprint") if c in acct.columns]
    own = "acct:" + acct["account_id"].astype(str)
    if not keys:
        return own.to_numpy()
    parts = [acct[c].astype("string") for c in keys]
    missing = np.logical_and.reduce([p.isna().to_numpy() for p in parts])
    lab = parts[0].fillna("")
    for p in parts[1:]:
        lab = lab + "|" + p.fillna("")
    return np.where(missing, own.to_numpy(), ("cust:" + lab).to_numpy(dtype=object))


def _stable(df: pd.DataFrame, digits: int = 10) -> pd.DataFrame:
    """Round float columns to ``digits`` significant digits, so parallel float
    aggregation order (and the engine) does not change results."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype.kind == "f":
            x = out[c].to_numpy(float)
            with np.errstate(divide="ignore", invalid="ignore"):
                mag = np.where(np.isfinite(x) & (x != 0), np.floor(np.log10(np.abs(x))), 0)
            scale = 10.0 ** (digits - 1 - mag)
            out[c] = np.where(np.isfinite(x), np.round(x * scale) / scale, x)
    return out


def _infrastructure(values: pd.DataFrame, link: signals.Linkage, members: list[str]) -> list[dict]:
    """Values shared by >= 2 members, with how many accounts use each and its link weight."""
    if link.values.empty:
        return []
    vals = link.values.set_index(["kind", "value"])
    av = values[values["account_id"].isin(members)]
    g = av.groupby(["kind", "value"])["account_id"].nunique().rename("members").reset_index()
    g = g[g["members"] >= 2]
    if g.empty:
        return []
    g = g.join(vals[["df", "weight"]], on=["kind", "value"])
    g = g.sort_values(["members", "weight", "kind", "value"], ascending=[False, False, True, True])
    return [
        {
            "kind": r.kind,
            "value": r.value,
            "members": int(r.members),
            "accounts_overall": int(r.df) if pd.notna(r.df) else int(r.members),
            "weight": round(float(r.weight), 3) if pd.notna(r.weight) else 0.0,
        }
        for r in g.head(12).itertuples()
    ]


def _campaigns(show: list[_Candidate], out, feats, s: _Scored, cday, csync, cex) -> list[Campaign]:
    camps: list[Campaign] = []
    for c in show:
        members = out["account_id"].to_numpy()[c.idx].tolist()
        ex = cex[cex["cluster_id"] == c.cid]
        d = cday[cday["cluster_id"] == c.cid]
        sy = csync[csync["cluster_id"] == c.cid]
        k = len(members)
        synchrony = (
            float((sy["k"].to_numpy(float) ** 2).sum() / max(sy["k"].sum(), 1) / k)
            if k and len(sy)
            else 0.0
        )
        camps.append(
            Campaign(
                cluster_id=int(c.cid),
                rank=0,
                flagged=bool(c.flagged),
                score=float(-np.log10(max(c.p_adj, 1e-300))) + 0.0,
                pvalue=float(c.test.pvalue),
                pvalue_adjusted=float(c.p_adj),
                n_accounts=k,
                n_requests=int(out["n_requests"].to_numpy()[c.idx].sum()),
                members=members[:5000],
                signals={
                    n: round(float(s.sc.tails[n].to_numpy()[c.idx].mean()), 4)
                    for n in feats.columns
                },
                shared_infrastructure=_infrastructure(s.values, s.link, members),
                examples=[
                    {
                        "request_id": r.request_id,
                        "account_id": r.account_id,
                        "prompt": str(r.prompt)[:600],
                        "elicitation_log_odds": round(float(r.elicit_lo), 3),
                    }
                    for r in ex.itertuples()
                ],
                timeline=[
                    {"day": int(r.day), "requests": int(r.n), "accounts": int(r.n_accounts)}
                    for r in d.itertuples()
                ],
                synchrony=round(synchrony, 4),
                kind=c.kind,
                name=c.name,
                reason=c.reason,
                harvest_pvalue_adjusted=float(c.harvest_adj),
                note=c.note,
            )
        )
    camps.sort(key=lambda x: (not x.flagged, -x.score, -x.n_accounts, x.cluster_id))
    for i, x in enumerate(camps):
        x.rank = i + 1
    return camps
