"""Score a traffic scan against the logs' ground truth (`campaign_id`, simulator groups).

Request-level and account-level precision, recall and false-positive rate at the scan's
default threshold (its `flagged` column), ROC AUC and PR AUC (average precision) from its
scores, per-campaign and per-archetype detection (a campaign is found when more than half
of its accounts are flagged), and false alarms per benign hard-case group.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from distilltrace.errors import InputError

TARGETS = {"account_recall": 0.95, "benign_account_fpr": 0.001}


# ---- metrics -------------------------------------------------------------------------------


def roc_auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); None if one class."""
    y = np.asarray(y, bool)
    s = np.asarray(score, float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    r = rankdata(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(y: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the precision-recall curve as average precision (ties share one threshold)."""
    y = np.asarray(y, bool)
    s = np.asarray(score, float)
    n_pos = int(y.sum())
    if n_pos == 0:
        return None
    order = np.argsort(-s, kind="stable")
    ys, ss = y[order], s[order]
    tp = np.cumsum(ys)
    last = np.r_[ss[1:] != ss[:-1], True]  # end of each tie group = one threshold
    tp, k = tp[last], (np.arange(len(ys)) + 1)[last]
    precision = tp / k
    recall = tp / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


@dataclass
class BinaryMetrics:
    """Confusion counts and rates at one threshold, plus threshold-free AUCs."""

    n: int
    n_positive: int
    tp: int
    fp: int
    fn: int
    tn: int
    precision: float | None
    recall: float | None
    fpr: float | None
    f1: float | None
    roc_auc: float | None
    pr_auc: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def binary_metrics(
    y: np.ndarray, flagged: np.ndarray, score: np.ndarray | None = None
) -> BinaryMetrics:
    """Precision, recall, FPR, F1 at `flagged`; ROC/PR AUC from `score` when given."""
    y = np.asarray(y, bool)
    f = np.asarray(flagged, bool)
    tp = int((y & f).sum())
    fp = int((~y & f).sum())
    fn = int((y & ~f).sum())
    tn = int((~y & ~f).sum())
    prec = tp / (tp + fp) if tp + fp else None
    rec = tp / (tp + fn) if tp + fn else None
    fpr = fp / (fp + tn) if fp + tn else None
    f1 = (
        2 * prec * rec / (prec + rec)
        if prec and rec
        else (0.0 if prec is not None and rec is not None else None)
    )
    return BinaryMetrics(
        n=len(y),
        n_positive=int(y.sum()),
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        precision=prec,
        recall=rec,
        fpr=fpr,
        f1=f1,
        roc_auc=None if score is None else roc_auc(y, score),
        pr_auc=None if score is None else average_precision(y, score),
    )


# ---- inputs --------------------------------------------------------------------------------


def _read_truth_columns(paths: list[Path]) -> pd.DataFrame:
    import duckdb

    frames = []
    for p in paths:
        if not p.exists():
            raise InputError(f"log file not found: {p}")
        name = p.name.lower()
        q = str(p).replace("'", "''")
        if name.endswith((".parquet", ".pq")):
            src = f"read_parquet('{q}')"
        elif name.endswith((".jsonl", ".ndjson", ".json")):
            src = f"read_json('{q}', format='newline_delimited', columns={{'request_id': 'VARCHAR', 'account_id': 'VARCHAR', 'campaign_id': 'VARCHAR'}})"
        elif name.endswith(".csv"):
            src = f"read_csv('{q}', all_varchar=true, header=true)"
        else:
            raise InputError(f"cannot tell the format of {p} (expected .parquet, .jsonl or .csv)")
        con = duckdb.connect()
        try:
            cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()]
            for c in ("request_id", "account_id"):
                if c not in cols:
                    raise InputError(f"{p}: missing required column {c!r}")
            if "campaign_id" not in cols:
                raise InputError(
                    f"{p}: no campaign_id column, so there is no ground truth to evaluate against"
                )
            df = con.execute(
                f"SELECT CAST(request_id AS VARCHAR) AS request_id, CAST(account_id AS VARCHAR) AS account_id, "
                f"NULLIF(CAST(campaign_id AS VARCHAR), '') AS campaign_id FROM {src}"
            ).fetch_df()
        except duckdb.Error as e:
            raise InputError(f"cannot read {p}: {str(e).splitlines()[0]}") from None
        finally:
            con.close()
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    df = df[df["request_id"].notna() & df["account_id"].notna()]
    return df.drop_duplicates("request_id", keep="first").reset_index(drop=True)


def load_truth(paths: list[Path], truth: Path | None = None) -> dict[str, Any] | None:
    """Simulator ground truth: explicit file, Parquet schema metadata, or FILE.truth.json."""
    if truth is not None:
        try:
            return json.loads(Path(truth).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"cannot read truth file {truth}: {e}") from None
    merged: dict[str, Any] | None = None
    for p in paths:
        t = None
        side = p.with_name(p.name + ".truth.json")
        if side.exists():
            t = json.loads(side.read_text())
        elif p.name.lower().endswith((".parquet", ".pq")):
            import pyarrow.parquet as pq

            from distilltrace.traffic.simulate import truth_of

            t = truth_of(pq.read_schema(p))
        if t:
            if merged is None:
                merged = {"campaigns": [], "groups": []}
            merged["campaigns"] += t.get("campaigns", [])
            merged["groups"] += t.get("groups", [])
    return merged


# ---- evaluation ----------------------------------------------------------------------------


@dataclass
class EvalResult:
    """How a scan did against ground truth."""

    scan_dir: str
    logs: list[str]
    request_source: str  # "requests.parquet" or "account flags"
    requests: BinaryMetrics
    accounts: BinaryMetrics
    campaigns: list[dict[str, Any]]
    archetypes: list[dict[str, Any]]
    hard_cases: list[dict[str, Any]]
    targets: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    clusters: list[dict[str, Any]] = field(default_factory=list)
    purity: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scan_dir": self.scan_dir,
            "logs": self.logs,
            "request_source": self.request_source,
            "requests": self.requests.to_dict(),
            "accounts": self.accounts.to_dict(),
            "campaigns": self.campaigns,
            "archetypes": self.archetypes,
            "hard_cases": self.hard_cases,
            "targets": self.targets,
            "notes": self.notes,
            "clusters": self.clusters,
            "purity": self.purity,
            "baseline": self.baseline,
        }


def _archetype(cid: str, truth: dict[str, Any] | None) -> str:
    if truth:
        for c in truth.get("campaigns", []):
            if c.get("campaign_id") == cid:
                return c.get("archetype") or cid
    return cid.rsplit("-", 1)[0] if "-" in cid else cid


def _dominant_cluster(
    accts: list[str], flag_of: dict[str, bool], cl_of: dict[str, Any]
) -> dict[str, Any]:
    """A campaign's dominant cluster: the scan cluster holding most of its flagged accounts
    (ties: smallest cluster id), and the share of its flagged accounts that sit in it."""
    cls = [int(cl_of[x]) for x in accts if flag_of.get(x, False) and pd.notna(cl_of.get(x))]
    if not cls:
        return {"dominant_cluster": None, "dominant_cluster_share": None}
    ids, counts = np.unique(np.array(cls), return_counts=True)
    j = int(np.argmax(counts))  # np.unique sorts ids, so ties go to the smallest id
    return {"dominant_cluster": int(ids[j]), "dominant_cluster_share": float(counts[j] / len(cls))}


def cluster_purity(acct: pd.DataFrame) -> list[dict[str, Any]]:
    """Per scan cluster holding a flagged account: how many distinct true campaigns its
    flagged accounts belong to, how many are benign, and its purity (share of its flagged
    accounts carrying its most common label, benign counting as one label).

    ``acct`` has one row per account with ``account_id``, ``flagged``, ``cluster_id`` and
    ``campaign_id`` (the account's true campaign, empty or missing when benign); a log
    account's true campaign is the one named on its requests.
    """
    f = acct[acct["flagged"].astype(bool) & acct["cluster_id"].notna()].copy()
    if f.empty:
        return []
    f["label"] = f["campaign_id"].fillna("").astype(str)
    out = []
    for c, g in f.groupby(f["cluster_id"].astype(int), sort=True):
        counts = g["label"].value_counts()
        camps = sorted(x for x in counts.index if x)
        top = counts.sort_index().sort_values(ascending=False, kind="stable")
        out.append(
            {
                "cluster_id": int(c),
                "n_flagged_accounts": int(len(g)),
                "campaigns": camps,
                "n_campaigns": len(camps),
                "n_benign_flagged": int(counts.get("", 0)),
                "majority_label": str(top.index[0]) or None,
                "purity": float(top.iloc[0] / len(g)),
            }
        )
    return out


def purity_summary(campaigns: list[dict[str, Any]], clusters: list[dict[str, Any]]) -> dict:
    """Campaign/cluster purity in a few numbers: clusters merging several true campaigns,
    and how concentrated each campaign's flagged accounts are in its dominant cluster."""
    shares = [c["dominant_cluster_share"] for c in campaigns if c["dominant_cluster_share"]]
    multi = [c for c in clusters if c["n_campaigns"] > 1]
    return {
        "n_flagged_clusters": len(clusters),
        "n_clusters_with_campaign": sum(c["n_campaigns"] > 0 for c in clusters),
        "n_clusters_mixing_campaigns": len(multi),
        "max_campaigns_per_cluster": max((c["n_campaigns"] for c in clusters), default=0),
        "min_dominant_cluster_share": min(shares) if shares else None,
        "mean_dominant_cluster_share": float(np.mean(shares)) if shares else None,
    }


def _request_rows(scan_dir: Path, log: pd.DataFrame, a: pd.DataFrame, notes: list[str]):
    """Request-level truth joined with the scan's request flags (or its account flags)."""
    req_path = scan_dir / "requests.parquet"
    r = log.copy()
    if req_path.exists():
        rq = pd.read_parquet(req_path)
        if {"request_id", "flagged"} <= set(rq.columns):
            rq = rq.drop_duplicates("request_id")
            rq["request_id"] = rq["request_id"].astype(str)
            keep = ["request_id", "flagged"] + (["score"] if "score" in rq.columns else [])
            r = r.merge(rq[keep], on="request_id", how="left")
            source = "requests.parquet"
            if "score" not in r.columns:
                r["score"] = r["flagged"].astype(float)
        else:
            req_path = None
    else:
        req_path = None
    if req_path is None:
        r = r.merge(
            a[["account_id", "flagged", "risk"]].rename(columns={"risk": "score"}),
            on="account_id",
            how="left",
        )
        source = "account flags"
        notes.append("no requests.parquet: a request counts as flagged when its account is flagged")
    r["flagged"] = r["flagged"].fillna(False).astype(bool)
    rs_floor = float(np.nanmin(r["score"])) - 1.0 if r["score"].notna().any() else 0.0
    r["score"] = r["score"].astype(float).fillna(rs_floor)
    y_req = r["campaign_id"].notna().to_numpy()
    rm = binary_metrics(y_req, r["flagged"].to_numpy(), r["score"].to_numpy())
    return r, source, rm


def _archetype_rows(campaigns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-archetype detection, summed over its campaigns."""
    arche: dict[str, dict[str, Any]] = {}
    for c in campaigns:
        d = arche.setdefault(
            c["archetype"],
            {
                "archetype": c["archetype"],
                "n_campaigns": 0,
                "n_found": 0,
                "n_accounts": 0,
                "n_flagged_accounts": 0,
                "n_requests": 0,
                "n_flagged_requests": 0,
            },
        )
        d["n_campaigns"] += 1
        d["n_found"] += int(c["found"])
        d["n_accounts"] += c["n_accounts"]
        d["n_flagged_accounts"] += c["n_flagged_accounts"]
        d["n_requests"] += c["n_requests"]
        d["n_flagged_requests"] += int(round(c["request_fraction_flagged"] * c["n_requests"]))
    for d in arche.values():
        d["account_fraction_flagged"] = d["n_flagged_accounts"] / d["n_accounts"]
        d["request_fraction_flagged"] = d["n_flagged_requests"] / d["n_requests"]
    return sorted(arche.values(), key=lambda d: d["archetype"])


def _hard_case_rows(tr, a: pd.DataFrame, flag_of: dict, cl_of: dict, notes: list[str]):
    """False alarms per benign hard-case group of the simulator's ground truth."""
    hard = []
    if tr is None:
        notes.append(
            "no simulator ground truth (FILE.truth.json or Parquet metadata): hard-case groups not reported"
        )
    else:
        is_camp = dict(zip(a["account_id"], a["is_campaign"], strict=True))
        for g in tr.get("groups", []):
            if g.get("kind") != "hard_case":
                continue
            ids = [x for x in g.get("accounts", []) if x in is_camp and not is_camp[x]]
            fl = [x for x in ids if flag_of.get(x, False)]
            clusters = sorted({int(cl_of[x]) for x in fl if pd.notna(cl_of.get(x))})
            hard.append(
                {
                    "group": g["name"],
                    "description": g.get("description", ""),
                    "n_active_accounts": len(ids),
                    "n_flagged": len(fl),
                    "fraction_flagged": len(fl) / len(ids) if ids else 0.0,
                    "flagged_accounts": fl[:10],
                    "clusters": clusters[:10],
                }
            )
    return hard


def evaluate(
    scan_dir: str | Path, logs: str | Path | list[str | Path], truth: str | Path | None = None
) -> EvalResult:
    """Compare a scan's accounts.parquet (and requests.parquet) with the logs' campaign_id."""
    scan_dir = Path(scan_dir)
    paths = [Path(p) for p in ([logs] if isinstance(logs, str | Path) else logs)]
    acc_path = scan_dir / "accounts.parquet"
    if not acc_path.exists():
        raise InputError(f"{scan_dir} has no accounts.parquet (is it a scan output directory?)")
    acc = pd.read_parquet(acc_path)
    for c in ("account_id", "flagged"):
        if c not in acc.columns:
            raise InputError(f"{acc_path}: missing column {c!r}")
    acc["account_id"] = acc["account_id"].astype(str)
    acc = acc.drop_duplicates("account_id")
    if "risk" not in acc.columns:
        acc["risk"] = acc["flagged"].astype(float)
    log = _read_truth_columns(paths)
    tr = load_truth(paths, Path(truth) if truth else None)
    notes: list[str] = []

    # accounts
    per_acct = (
        log.groupby("account_id")["campaign_id"]
        .agg(lambda s: s.notna().any())
        .rename("is_campaign")
    )
    a = per_acct.reset_index().merge(acc, on="account_id", how="left")
    missing = int(a["flagged"].isna().sum())
    if missing:
        notes.append(
            f"{missing} account(s) in the logs are absent from accounts.parquet; counted as not flagged"
        )
    a["flagged"] = a["flagged"].fillna(False).astype(bool)
    floor = float(np.nanmin(acc["risk"])) - 1.0 if len(acc) else 0.0
    a["risk"] = a["risk"].astype(float).fillna(floor)
    if "cluster_id" not in a.columns:
        a["cluster_id"] = -1
    am = binary_metrics(a["is_campaign"].to_numpy(), a["flagged"].to_numpy(), a["risk"].to_numpy())

    r, source, rm = _request_rows(scan_dir, log, a, notes)

    # per campaign
    flag_of = dict(zip(a["account_id"], a["flagged"], strict=True))
    cl_of = dict(zip(a["account_id"], a["cluster_id"], strict=True))
    campaigns = []
    cr = r[r["campaign_id"].notna()]
    for cid, grp in cr.groupby("campaign_id", sort=True):
        accts = sorted(set(grp["account_id"]))
        nf = sum(bool(flag_of.get(x, False)) for x in accts)
        clusters = sorted(
            {int(cl_of[x]) for x in accts if flag_of.get(x, False) and pd.notna(cl_of.get(x))}
        )
        campaigns.append(
            {
                "campaign_id": cid,
                "archetype": _archetype(cid, tr),
                "n_accounts": len(accts),
                "n_flagged_accounts": nf,
                "account_fraction_flagged": nf / len(accts),
                "found": nf / len(accts) > 0.5,
                "n_requests": len(grp),
                "request_fraction_flagged": float(grp["flagged"].mean()),
                "clusters_of_flagged_accounts": clusters[:20],
                "n_clusters": len(clusters),
                **_dominant_cluster(accts, flag_of, cl_of),
            }
        )
    # an account's true campaign: the one on its requests (smallest id if several)
    camp_of = log.dropna(subset=["campaign_id"]).groupby("account_id")["campaign_id"].min()
    flagged_clusters = cluster_purity(a.assign(campaign_id=a["account_id"].map(camp_of)))
    arche = _archetype_rows(campaigns)

    hard = _hard_case_rows(tr, a, flag_of, cl_of, notes)
    baseline = baseline_metrics(paths, per_acct, cr, tr)
    targets = {
        "all_campaigns_found": bool(campaigns) and all(c["found"] for c in campaigns),
        "account_recall_ge_0.95": am.recall is not None and am.recall >= TARGETS["account_recall"],
        "benign_account_fpr_le_0.001": am.fpr is not None
        and am.fpr <= TARGETS["benign_account_fpr"],
        "no_hard_case_flagged": (
            all(h["n_flagged"] == 0 for h in hard) if tr is not None else None
        ),
    }
    targets["all_met"] = all(v is True for v in targets.values())
    return EvalResult(
        str(scan_dir),
        [str(p) for p in paths],
        source,
        rm,
        am,
        campaigns,
        arche,
        hard,
        targets,
        notes,
        flagged_clusters,
        purity_summary(campaigns, flagged_clusters),
        baseline,
    )


def baseline_metrics(
    paths: list[Path], per_acct: pd.Series, campaign_requests: pd.DataFrame, truth: dict | None
) -> dict[str, Any]:
    """The naive keyword rule (`traffic.baseline`) scored on the same logs and truth:
    account precision/recall/FPR, campaigns found, and flagged share per hard-case group."""
    from distilltrace.traffic.baseline import KEYWORDS, keyword_rule

    kw = keyword_rule(paths).set_index("account_id")["flagged"]
    flag = kw.reindex(per_acct.index).fillna(False).astype(bool)
    m = binary_metrics(per_acct.to_numpy(bool), flag.to_numpy())
    found = {}
    for cid, grp in campaign_requests.groupby("campaign_id", sort=True):
        accts = sorted(set(grp["account_id"]))
        found[str(cid)] = bool(flag.reindex(accts).fillna(False).mean() > 0.5)
    hard = {}
    for g in (truth or {}).get("groups", []):
        if g.get("kind") == "hard_case":
            ids = [x for x in g.get("accounts", []) if x in flag.index and not per_acct[x]]
            hard[g["name"]] = float(flag.reindex(ids).mean()) if ids else 0.0
    return {
        "rule": f"flag an account with >= 50% of prompts matching /{KEYWORDS}/ and >= 20 requests",
        "accounts": m.to_dict(),
        "campaigns_found": found,
        "hard_cases_fraction_flagged": hard,
    }


def write_evaluation(result: EvalResult, out: str | Path) -> dict[str, Path]:
    """Write eval.json and eval.html (escaped) into the folder of `out` (or as `out` if .json)."""
    from distilltrace.report import render_html, write_json

    out = Path(out)
    if out.suffix.lower() == ".json":
        jpath, hpath = out, out.with_suffix(".html")
    else:
        jpath, hpath = out / "eval.json", out / "eval.html"
    write_json(result, jpath)
    render_html("traffic_eval.html", {"ev": result.to_dict()}, hpath)
    return {"json": jpath, "html": hpath}
