"""`scan`: find distillation campaigns in API request logs.

Reads and validates the logs into the engine, runs the pipeline's SQL reductions,
then builds the linkage graph, signals and calibrated scores on the reduced tables,
and (with ``out_dir``) writes accounts.parquet, requests.parquet, campaigns.json,
summary.json, quarantine.parquet and report.html.
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from distilltrace.traffic import fusion, pipeline, signals
from distilltrace.traffic.engine import Engine, make_engine
from distilltrace.traffic.readers import LoadReport, load_events

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


SIGNAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "linkage": (
        "client_ip",
        "payment_fingerprint",
        "tls_fingerprint",
        "user_agent",
        "asn",
        "org_id",
        "api_key_id",
    ),
    "template": (),
    "elicitation": (),
    "concentration": (),
    "sweep": (),
    "cadence": (),
    "round_the_clock": (),
    "young_account": ("account_created_at",),
    "volume": (),
    "release_pivot": ("model",),
    "signup_path": ("signup_path",),
}


def _skipped(present: set[str]) -> dict[str, str]:
    out = {}
    for sig, cols in SIGNAL_COLUMNS.items():
        if not cols:
            continue
        if sig == "linkage":
            if not any(c in present for c in cols):
                out[sig] = "no infrastructure columns (" + ", ".join(cols) + ")"
        elif not all(c in present for c in cols):
            out[sig] = "missing column " + ", ".join(c for c in cols if c not in present)
    return out


class _Progress:
    def __init__(self, show: bool, total: int) -> None:
        self.t0 = time.perf_counter()
        self.timings: dict[str, float] = {}
        self.last = self.t0
        self._p = None
        if show:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._p = Progress(
                TextColumn("[bold]traffic scan[/bold] {task.description}"),
                BarColumn(),
                TimeElapsedColumn(),
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

    def step(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name] = round(now - self.last, 3)
        self.last = now
        if self._p:
            self._p.update(self._task, advance=1, description=name)


def scan(
    source: Any,
    *,
    out_dir: str | Path | None = None,
    engine: str | Engine = "duckdb",
    account_alpha: float = DEFAULT_ACCOUNT_ALPHA,
    campaign_alpha: float = DEFAULT_CAMPAIGN_ALPHA,
    link_threshold: float = 2.0,
    progress: bool | None = None,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> ScanResult:
    """Scan request logs (paths, a pandas/pyarrow table or a DuckDB relation) for campaigns.

    ``account_alpha`` is the calibrated per-account tail probability at which a lone
    account is flagged (the benign false-positive budget); ``campaign_alpha`` the
    family-wise level for calling a linkage cluster a campaign.
    """
    if engine == "duckdb" and type(source).__module__.startswith("pyspark.sql"):  # scan it in Spark
        from distilltrace.traffic.spark_engine import SparkEngine

        engine = SparkEngine(source.sparkSession)
    eng = make_engine(engine, threads=threads, memory_limit=memory_limit)
    n_steps = 8
    show = bool(progress)
    prog = _Progress(show, n_steps)
    try:
        with prog if show else nullcontext(prog):
            # engines with their own reader (Spark) validate the same way in place
            load = (
                eng.load_events(source) if hasattr(eng, "load_events") else load_events(eng, source)
            )
            prog.step("validated")
            result = _run(
                eng,
                load,
                prog,
                account_alpha,
                campaign_alpha,
                link_threshold,
                Path(out_dir) if out_dir is not None else None,
            )
        result.summary["timings_s"] = prog.timings
        result.summary["timings_s"]["total"] = round(time.perf_counter() - prog.t0, 3)
        if out_dir is not None:
            from distilltrace.traffic.outputs import write_outputs

            write_outputs(result, Path(out_dir))
        return result
    finally:
        eng.close()  # an Engine passed in is closed too (it holds the scan's tables)


def _empty_accounts() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": pd.Series([], dtype=str),
            "flagged": pd.Series([], dtype=bool),
            "risk": pd.Series([], dtype=float),
            "risk_tail_p": pd.Series([], dtype=float),
            "cluster_id": pd.Series([], dtype="int64"),
            "campaign_flagged": pd.Series([], dtype=bool),
        }
    )


#: Extraction share at which a flagged lone account counts as a campaign account in full.
PURE_ACCOUNT_SHARE = 0.10

#: Above this many requests, request-level flags stay on disk (requests.parquet) only.
MAX_REQUESTS_IN_MEMORY = 2_000_000


def _run(
    eng, load: LoadReport, prog, account_alpha, campaign_alpha, link_threshold, out_dir
) -> ScanResult:
    present = set(load.columns_present)
    skipped = _skipped(present)
    summary: dict[str, Any] = {
        "engine": eng.name,
        "load": load.to_dict(),
        "rows_read": load.rows_read,
        "rows_valid": load.rows_valid,
        "rows_quarantined": load.rows_quarantined,
        "duplicate_request_ids": load.duplicate_request_ids,
        "skipped_signals": skipped,
        "account_alpha": account_alpha,
        "campaign_alpha": campaign_alpha,
    }
    quarantine = eng.fetch("SELECT * FROM quarantine ORDER BY source, row_number")
    n_events = eng.fetch("SELECT count(*) AS n FROM events")["n"].iloc[0]
    if n_events == 0:
        summary.update(
            n_accounts=0,
            n_requests=0,
            n_flagged_accounts=0,
            n_campaigns=0,
            n_flagged_requests=0,
            n_flagged_alone=0,
            n_flagged_alone_outside=0,
            expected_benign_fpr_bound=0.0,
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
        return ScanResult(_empty_accounts(), [], summary, reqs, quarantine)

    for st in pipeline.statements(present):
        eng.execute(st.name, st.sql)
    prog.step("reduced")

    acct = eng.fetch("SELECT * FROM acct_all ORDER BY account_id")
    acct = _stable(acct)
    accounts = pd.Index(acct["account_id"])
    acct_topic = eng.fetch("SELECT * FROM acct_topic ORDER BY account_id, topic")
    acct_hod = eng.fetch("SELECT * FROM acct_hod ORDER BY account_id, hod")
    acct_value = eng.fetch("SELECT * FROM acct_value ORDER BY kind, value, account_id")
    acct_model = (
        eng.fetch("SELECT * FROM acct_model ORDER BY account_id, model")
        if "model" in present
        else None
    )
    t0 = float(acct["first_t"].min())
    t1 = float(acct["last_t"].max())
    prog.step("fetched reduced tables")

    # --- signals on reduced tables
    feats = pd.DataFrame(index=accounts)
    elic, base_rate = signals.elicitation_stat(acct)
    feats["elicitation"] = elic
    conc, pop_topics = signals.concentration_stat(acct_topic, accounts)
    feats["concentration"] = conc["conc"].to_numpy()
    feats["sweep"] = signals.sweep_stat(acct, conc)
    tim = signals.timing_stats(acct.set_index("account_id"), acct_hod, accounts)
    feats["cadence"] = tim["regular"].to_numpy()
    feats["round_the_clock"] = tim["clock"].to_numpy()
    feats["volume"] = np.log1p(acct["n_req"].to_numpy(float))
    feats["template"] = signals.template_share(acct_value, accounts, acct["n_req"].to_numpy(float))
    if "account_created_at" in present:
        age_days = (acct["first_t"] - acct["created_t"]).to_numpy(float) / 86400
        feats["young_account"] = -np.nan_to_num(np.clip(age_days, 0, None), nan=np.inf)
    else:
        age_days = np.full(len(acct), np.nan)
    piv = None
    if "model" in present:
        piv = signals.pivot_stat(acct_model, accounts, t0)
        feats["release_pivot"] = piv["pivot"].to_numpy()
    link = signals.linkage_graph(
        acct_value[acct_value["kind"] != "template"] if "linkage" in skipped else acct_value,
        accounts,
        threshold=link_threshold,
    )
    prog.step("signals")

    # --- calibration and fusion
    sc = fusion.score_accounts(feats)
    tail_p = sc.tail_p
    cl = link.cluster
    sizes = np.bincount(cl)
    multi = np.flatnonzero(sizes >= 2)
    tests: dict[int, fusion.ClusterTest] = {}
    order = np.argsort(cl, kind="stable")
    bounds = np.r_[0, np.cumsum(sizes)]
    units = _customer_units(acct)
    # harvest evidence: the extraction signal alone, calibrated the same way
    harvest_p = 10.0 ** (-sc.tails["elicitation"].to_numpy(float))
    harvest: dict[int, fusion.ClusterTest] = {}
    for c in multi:
        idx = order[bounds[c] : bounds[c + 1]]
        tests[int(c)] = fusion.cluster_test(tail_p[idx], units[idx])
        harvest[int(c)] = fusion.cluster_test(harvest_p[idx], units[idx])
    m_tests = max(len(tests), 1)
    camp_flag = {
        c: min(1.0, t.pvalue * m_tests) <= campaign_alpha
        and min(1.0, harvest[c].pvalue * m_tests) <= HARVEST_ALPHA
        for c, t in tests.items()
    }
    in_flagged_cluster = np.array([camp_flag.get(int(c), False) for c in cl])
    # a lone account: the union (Bonferroni over the two) of its fused behaviour tail and
    # its extraction tail, with extraction evidence required either way
    acct_p = np.minimum(1.0, 2.0 * np.minimum(tail_p, harvest_p))
    alone = (acct_p <= account_alpha) & (harvest_p <= LONE_HARVEST_ALPHA)
    flagged = in_flagged_cluster | alone
    cluster_p = np.array(
        [min(1.0, tests[int(c)].pvalue * m_tests) if int(c) in tests else 1.0 for c in cl]
    )
    risk_tail = np.minimum(acct_p, cluster_p)
    risk = -np.log10(np.clip(risk_tail, 1e-300, 1))
    prog.step("scored")

    out = pd.DataFrame(
        {
            "account_id": accounts.astype(str),
            "flagged": flagged,
            "risk": risk,
            "risk_tail_p": risk_tail,
            "account_tail_p": acct_p,
            "behaviour_tail_p": tail_p,
            "extraction_tail_p": harvest_p,
            "cluster_id": cl.astype("int64"),
            "cluster_size": sizes[cl].astype("int64"),
            "campaign_flagged": in_flagged_cluster,
            "n_requests": acct["n_req"].to_numpy().astype("int64"),
            "behaviour": sc.behaviour,
        }
    )
    for name in feats.columns:
        out[f"sig_{name}"] = feats[name].to_numpy(float)
        out[f"tail_{name}"] = sc.tails[name].to_numpy(float)
    out["top_topic"] = conc["top_topic"].to_numpy()
    out["n_elicit"] = acct["n_elicit"].to_numpy().astype("int64")
    out["account_age_days"] = age_days
    for c in ("org_id", "signup_path"):
        if c in acct.columns:
            out[c] = acct[c].to_numpy()

    # --- stage 2: per-cluster tables for flagged clusters and top candidates
    ranked = sorted(tests.items(), key=lambda kv: (kv[1].pvalue, -kv[1].size, kv[0]))
    report_clusters = [c for c, _ in ranked if camp_flag[c]] + [
        c for c, _ in ranked if not camp_flag[c]
    ][:5]
    lone = [int(c) for c in np.unique(cl[alone & ~in_flagged_cluster])]
    show_clusters = report_clusters + [c for c in lone if c not in report_clusters]
    campaigns: list[Campaign] = []
    req_flags = None
    if show_clusters:
        cmap = pd.DataFrame({"account_id": accounts.astype(str), "cluster_id": cl.astype("int64")})
        cmap = cmap[cmap["cluster_id"].isin(show_clusters)]
        eng_register(eng, "cluster_map", cmap)
        for st in pipeline.stage2_statements():
            eng.execute(st.name, st.sql)
        cday = eng.fetch("SELECT * FROM cluster_day ORDER BY cluster_id, day")
        csync = eng.fetch("SELECT * FROM cluster_sync ORDER BY cluster_id, bin")
        cex = eng.fetch(
            "SELECT * FROM cluster_examples ORDER BY cluster_id, elicit_lo DESC, request_id"
        )
        campaigns = _campaigns(
            show_clusters,
            tests,
            camp_flag,
            m_tests,
            out,
            feats,
            sc,
            link,
            acct_value,
            cday,
            csync,
            cex,
            tail_p,
        )
    # request-level flags: requests of flagged accounts; within lone flagged (mixed)
    # accounts only the extraction-like ones
    fl = out[["account_id", "flagged", "campaign_flagged", "risk"]].copy()
    fl["risk"] = np.minimum(fl["risk"].to_numpy(float), 300.0)
    # an account whose requests are extraction-like at least PURE_ACCOUNT_SHARE of the
    # time is a campaign account in full; below that (a mixed reseller) only its
    # extraction-like requests are flagged
    share = acct["n_elicit"].to_numpy(float) / np.maximum(acct["n_req"].to_numpy(float), 1)
    fl["whole"] = fl["campaign_flagged"].to_numpy() | (share >= PURE_ACCOUNT_SHARE)
    eng_register(eng, "acct_flags", fl)
    req_sql = (
        "SELECT r.request_id, r.account_id, "
        "CAST(f.risk + 0.01 * r.elicit_lo AS DOUBLE) AS score, r.elicit_lo AS extraction_log_odds, "
        "(f.flagged AND (f.whole OR r.elicit_lo > 0)) AS flagged "
        "FROM req r JOIN acct_flags f ON r.account_id = f.account_id"
    )
    eng.execute("req_flags", req_sql)
    n_flag_req = int(eng.fetch("SELECT count(*) AS n FROM req_flags WHERE flagged")["n"].iloc[0])
    req_flags = None
    files: dict[str, str] = {}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        eng.write_parquet(
            "SELECT * FROM req_flags ORDER BY request_id", str(out_dir / "requests.parquet")
        )
        files["requests"] = str(out_dir / "requests.parquet")
    if int(acct["n_req"].sum()) <= MAX_REQUESTS_IN_MEMORY:
        req_flags = eng.fetch("SELECT * FROM req_flags ORDER BY request_id")
    prog.step("campaign evidence")

    n_acc = len(out)
    summary.update(
        {
            "n_requests": int(acct["n_req"].sum()),
            "n_accounts": int(n_acc),
            "time_range": [t0, t1],
            "n_flagged_accounts": int(flagged.sum()),
            "n_flagged_alone": int(alone.sum()),
            "n_flagged_alone_outside": int((alone & ~in_flagged_cluster).sum()),
            "n_clusters_tested": int(len(tests)),
            "n_campaigns": int(sum(camp_flag.values())),
            "n_flagged_requests": n_flag_req,
            "threshold": {
                "account_tail_p": account_alpha,
                "campaign_pvalue_bonferroni": campaign_alpha,
                "meaning": (
                    "an account is flagged alone when its calibrated tail probability vs the "
                    "population is <= account_tail_p (so at most that fraction of all accounts); "
                    "a linkage cluster is a campaign when its Bonferroni-adjusted Gamma-test "
                    "p-value is <= campaign_pvalue_bonferroni"
                ),
            },
            "expected_benign_fpr_bound": float(
                min(1.0, (np.floor(account_alpha * (n_acc + 1)) + 0.0) / max(n_acc, 1))
            ),
            "elicitation_base_rate": base_rate,
            "population_topic_mix": pop_topics,
            "linkage": {
                "kinds": link.kinds,
                "strong_pairs": link.edges_used,
                "n_clusters_multi": int(len(multi)),
                "largest_cluster": int(sizes.max()) if len(sizes) else 0,
                "threshold": link_threshold,
            },
            "signal_weights": {k: fusion.WEIGHTS.get(k, 0.5) for k in feats.columns},
            "signals_used": list(feats.columns) + ["linkage"] * ("linkage" not in skipped),
        }
    )
    return ScanResult(out, campaigns, summary, req_flags, quarantine, files=files)


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


def eng_register(eng, name: str, df: pd.DataFrame) -> None:
    """Upload a small pandas table to the engine as ``name``."""
    if hasattr(eng, "con"):
        eng.con.register(f"__{name}_df", df)
        eng.run(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM __{name}_df")
        eng.con.unregister(f"__{name}_df")
    else:  # pragma: no cover - other engines implement register()
        eng.register(name, df)


def _campaigns(
    show, tests, camp_flag, m_tests, out, feats, sc, link, acct_value, cday, csync, cex, tail_p
):
    camps: list[Campaign] = []
    vals = link.values.set_index(["kind", "value"]) if not link.values.empty else None
    cl = out["cluster_id"].to_numpy()
    for c in show:
        mask = cl == c
        members = out.loc[mask, "account_id"].tolist()
        t = tests.get(c) or fusion.cluster_test(tail_p[mask])
        p_adj = min(1.0, t.pvalue * (m_tests if c in tests else 1))
        flagged = bool(camp_flag.get(c, False)) or bool(out.loc[mask, "flagged"].all())
        sig = {k: round(float(sc.tails.loc[mask, k].mean()), 4) for k in feats.columns}
        infra = []
        if vals is not None:
            av = acct_value[acct_value["account_id"].isin(members)]
            g = (
                av.groupby(["kind", "value"])["account_id"]
                .nunique()
                .rename("members")
                .reset_index()
            )
            g = g[g["members"] >= 2]
            if not g.empty:
                g = g.join(vals[["df", "weight"]], on=["kind", "value"])
                g = g.sort_values(
                    ["members", "weight", "kind", "value"], ascending=[False, False, True, True]
                )
                for r in g.head(12).itertuples():
                    infra.append(
                        {
                            "kind": r.kind,
                            "value": r.value,
                            "members": int(r.members),
                            "accounts_overall": int(r.df),
                            "weight": round(float(r.weight), 3),
                        }
                    )
        ex = cex[cex["cluster_id"] == c]
        examples = [
            {
                "request_id": r.request_id,
                "account_id": r.account_id,
                "prompt": str(r.prompt)[:600],
                "elicitation_log_odds": round(float(r.elicit_lo), 3),
            }
            for r in ex.itertuples()
        ]
        d = cday[cday["cluster_id"] == c]
        timeline = [
            {"day": int(r.day), "requests": int(r.n), "accounts": int(r.n_accounts)}
            for r in d.itertuples()
        ]
        s = csync[csync["cluster_id"] == c]
        k = len(members)
        synchrony = (
            float((s["k"].to_numpy(float) ** 2).sum() / max(s["k"].sum(), 1) / k)
            if k and len(s)
            else 0.0
        )
        camps.append(
            Campaign(
                cluster_id=int(c),
                rank=0,
                flagged=flagged,
                score=float(-np.log10(max(p_adj, 1e-300))),
                pvalue=float(t.pvalue),
                pvalue_adjusted=float(p_adj),
                n_accounts=k,
                n_requests=int(out.loc[mask, "n_requests"].sum()),
                members=members[:5000],
                signals=sig,
                shared_infrastructure=infra,
                examples=examples,
                timeline=timeline,
                synchrony=round(synchrony, 4),
            )
        )
    camps.sort(key=lambda x: (not x.flagged, -x.score, -x.n_accounts, x.cluster_id))
    for i, x in enumerate(camps):
        x.rank = i + 1
    return camps
