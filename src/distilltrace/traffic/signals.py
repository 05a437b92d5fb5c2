"""Signals computed on the reduced tables (pandas/numpy/scipy; never on raw events).

Each function takes the small per-account tables the pipeline produced and returns
per-account statistics where larger means more campaign-like, plus evidence. A
signal whose columns are absent is skipped by the caller and listed in the summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse, stats
from scipy.sparse.csgraph import connected_components

#: Kinds that identify who pays for or holds an account: one rare shared value of these
#: is enough to link two accounts. Every other kind needs a second kind to corroborate
#: it, so one coincidence in one dimension (a prompt recipe two operators both use)
#: cannot chain separate operators together.
STRONG_KINDS = frozenset({"payment", "api_key"})

#: Kinds that describe a population rather than one machine, card or prompt (a cloud
#: network, a client software version, a declared customer org): they add weight to a
#: link but never count as the second, corroborating kind.
CONTEXT_KINDS = frozenset({"asn", "user_agent", "org", "signup_burst", "behaviour"})

#: Kinds that name a group of accounts found by a test of its own (a pool of rented IPs
#: used together, a client build contradicting its user agent): each group is also a
#: candidate campaign by itself, however many accounts it holds. (A sign-up burst is
#: not: a class or a team signing up on one day is ordinary; it only adds link weight.)
GROUP_KINDS = ("ip_pool", "client_mismatch")

#: How much one shared value of each kind links two accounts, before rarity weighting.
KIND_WEIGHT = {
    "payment": 1.0,
    "api_key": 1.0,
    "ip": 0.8,
    "tls": 0.6,
    "template": 0.6,
    "user_agent": 0.5,
    "prefix": 0.4,
    "asn": 0.3,
    "org": 0.2,
    "ip_pool": 0.8,
    "client_mismatch": 0.6,
    "behaviour": 0.5,
    "signup_burst": 0.3,
}


def _log10_sf(x: np.ndarray) -> np.ndarray:
    return -np.log10(np.clip(x, 1e-300, 1.0))


def typical_rate(
    k: np.ndarray,
    n: np.ndarray,
    *,
    cap: float = 200.0,
    floor: float = 0.002,
    exclude: float = 1e-3,
    rounds: int = 3,
) -> float:
    """The population's rate of some kind of request, robust to campaigns: pooled over
    accounts (each account's trials counted up to ``cap``, its k scaled alike), then
    re-pooled ``rounds`` times without the accounts whose own count is improbable at the
    current estimate (binomial tail < ``exclude``), floored. Pooling keeps the rate
    unbiased when accounts are small (a median of 0-or-1 rates is not); the cap keeps one
    heavy account from deciding it; the exclusion keeps a campaign that is a tenth of
    the accounts from raising it (under a homogeneous null it drops about ``exclude`` of
    the accounts). A high-volume benign relay whose users ask for explanations at the
    ordinary rate sits at it."""
    k = np.asarray(k, float)
    n = np.asarray(n, float)
    w = np.minimum(n, cap) / np.maximum(n, 1)
    kw, nw = k * w, n * w
    keep = nw > 0
    rate = floor
    for _ in range(rounds + 1):
        tot = float(nw[keep].sum())
        if tot <= 0:
            return floor
        rate = float(np.clip(kw[keep].sum() / tot, floor, 0.5))
        out = stats.binom.sf(np.round(kw) - 1, np.round(nw).astype(int), rate) < exclude
        if not (keep & out).any():
            break
        keep &= ~out
    return rate


def elicitation_stat(acct: pd.DataFrame) -> tuple[np.ndarray, float]:
    """-log10 binomial tail of an account's extraction-request count vs the population rate.

    Null: the account's requests are extraction-like at the population's typical rate
    (`typical_rate`), independently. Returns (statistic, base rate).
    """
    n = acct["n_req"].to_numpy(float)
    k = acct["n_elicit"].to_numpy(float)
    base = typical_rate(k, n)
    p = stats.binom.sf(k - 1, n.astype(int), base)
    return _log10_sf(p), base


def concentration_stat(acct_topic: pd.DataFrame, accounts: pd.Index) -> tuple[pd.DataFrame, dict]:
    """Task-family mix vs the population: G-test -log10 p, JSD and the dominant family.

    Null: the account's requests are drawn from the population's family mix.
    """
    if acct_topic.empty:
        z = pd.DataFrame(
            index=accounts, data={"conc": 0.0, "jsd": 0.0, "top_topic": "", "top_share": 0.0}
        )
        return z, {}
    tab = acct_topic.pivot_table(
        index="account_id", columns="topic", values="n", aggfunc="sum", fill_value=0
    )
    tab = tab.reindex(accounts, fill_value=0).sort_index(axis=1)
    K = tab.to_numpy(float)
    pop = K.sum(0) / max(K.sum(), 1)
    n = K.sum(1, keepdims=True)
    exp = np.maximum(n * pop[None, :], 1e-12)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = 2 * np.nansum(np.where(K > 0, K * np.log(K / exp), 0.0), axis=1)
    dof = max(int((pop > 0).sum()) - 1, 1)
    conc = _log10_sf(stats.chi2.sf(g, dof))
    P = K / np.maximum(n, 1)
    M = 0.5 * (P + pop[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        kl1 = np.nansum(np.where(P > 0, P * np.log2(P / M), 0.0), axis=1)
        kl2 = np.nansum(
            np.where(pop[None, :] > 0, pop[None, :] * np.log2(pop[None, :] / M), 0.0), axis=1
        )
    jsd = 0.5 * (kl1 + kl2)
    top = np.argmax(K, axis=1)
    cols = np.array(tab.columns)
    out = pd.DataFrame(
        {
            "conc": conc,
            "jsd": jsd,
            "top_topic": np.where(n[:, 0] > 0, cols[top], ""),
            "top_share": K[np.arange(len(K)), top] / np.maximum(n[:, 0], 1),
        },
        index=accounts,
    )
    return out, {str(c): float(v) for c, v in zip(cols, pop, strict=True)}


def sweep_stat(acct: pd.DataFrame, conc: pd.DataFrame) -> np.ndarray:
    """Systematic sweep: many distinct prompts in one task family with few repeats.

    log(1 + distinct prompts in the dominant family), times the distinct-prompt ratio.
    """
    n = acct["n_req"].to_numpy(float)
    distinct = acct["n_distinct_prompts"].to_numpy(float) / np.maximum(n, 1)
    return np.log1p(n * conc["top_share"].to_numpy(float) * distinct) * distinct


def timing_stats(acct: pd.DataFrame, acct_hod: pd.DataFrame, accounts: pd.Index) -> pd.DataFrame:
    """Cadence regularity (-log coefficient of variation of gaps) and round-the-clock coverage."""
    n_gaps = acct["n_gaps"].fillna(0).to_numpy(float)
    cv = acct["gap_std"].to_numpy(float) / np.maximum(acct["gap_mean"].to_numpy(float), 1e-9)
    regular = np.where(n_gaps >= 8, -np.log(np.clip(cv, 1e-3, None)), 0.0)
    hod = acct_hod.pivot_table(
        index="account_id", columns="hod", values="n", aggfunc="sum", fill_value=0
    )
    hod = hod.reindex(accounts, fill_value=0).reindex(columns=range(24), fill_value=0)
    H = hod.to_numpy(float)
    n = H.sum(1)
    P = H / np.maximum(n[:, None], 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.nansum(np.where(P > 0, P * np.log(P), 0.0), axis=1) / np.log(24)
    # only meaningful once an account has enough requests to cover the clock
    clock = np.where(n >= 48, ent, 0.0)
    return pd.DataFrame({"regular": regular, "cv": cv, "clock": clock}, index=accounts)


def pivot_stat(acct_model: pd.DataFrame | None, accounts: pd.Index, t0: float) -> pd.DataFrame:
    """Release pivot: share of an account's traffic on a model first seen after the log
    starts, when the account's first use came within 48 hours of the model's first appearance."""
    zero = pd.DataFrame({"pivot": 0.0, "pivot_lag_h": np.nan}, index=accounts)
    if acct_model is None or acct_model.empty:
        return zero
    first = acct_model.groupby("model")["first_t"].min()
    new = first[first > t0 + 86400]
    if new.empty:
        return zero
    am = acct_model[acct_model["model"].isin(new.index)].copy()
    am["lag_h"] = (am["first_t"] - am["model"].map(new)) / 3600
    am = am[am["lag_h"] <= 48]
    tot = acct_model.groupby("account_id")["n"].sum()
    share = am.groupby("account_id")["n"].sum() / tot
    lag = am.groupby("account_id")["lag_h"].min()
    zero["pivot"] = share.reindex(accounts).fillna(0.0)
    zero["pivot_lag_h"] = lag.reindex(accounts)
    return zero


@dataclass
class Linkage:
    """The account graph: components on strong links, and each link value's rarity."""

    cluster: np.ndarray  # cluster label per account (index order)
    values: pd.DataFrame  # kind, value, df, idf, weight, strong
    edges_used: int
    kinds: list[str] = field(default_factory=list)


def linkage_graph(
    acct_value: pd.DataFrame,
    accounts: pd.Index,
    *,
    threshold: float = 2.0,
    max_df: int = 200,
    rarity_scale: float = 100.0,
) -> Linkage:
    """Link accounts that share rare infrastructure; cluster into candidate campaigns.

    A shared value's weight is KIND_WEIGHT[kind] * log(1 + rarity_scale / df), an
    inverse document frequency over accounts that does not depend on the population
    size: a NAT used by hundreds of accounts links weakly, a payment fingerprint shared
    by a few links strongly. Two accounts are joined when the weights of all values
    they share add up to ``threshold`` and the evidence is corroborated: it comes from
    at least two kinds outside CONTEXT_KINDS, or STRONG_KINDS values alone reach
    ``threshold``. Clusters are the connected components of these edges. Values shared
    by more than ``max_df`` accounts are kept as evidence but add no links.
    """
    N = len(accounts)
    if acct_value.empty or N == 0:
        return Linkage(
            np.arange(N), pd.DataFrame(columns=["kind", "value", "df", "idf", "weight"]), 0
        )
    av = acct_value[["kind", "value", "account_id"]].drop_duplicates()
    df = av.groupby(["kind", "value"]).size().rename("df").reset_index()
    df["idf"] = np.log1p(rarity_scale / df["df"])
    df["weight"] = df["kind"].map(KIND_WEIGHT).fillna(0.3) * df["idf"]
    df = df.sort_values(["kind", "value"]).reset_index(drop=True)
    df["vid"] = np.arange(len(df))
    use = df[(df["df"] >= 2) & (df["df"] <= max_df)]
    m = av.merge(use[["kind", "value", "vid", "weight"]], on=["kind", "value"])
    pos = pd.Series(np.arange(N), index=accounts)
    rows = pos.reindex(m["account_id"]).to_numpy()
    sq = np.sqrt(m["weight"].to_numpy())
    vid = m["vid"].to_numpy()
    kind = m["kind"].to_numpy()
    # per pair: total shared weight, number of corroborating kinds, weight from strong kinds
    total = sparse.csr_matrix((N, N))
    n_kinds = sparse.csr_matrix((N, N))
    strong = sparse.csr_matrix((N, N))
    for k in sorted(set(kind)):
        sel = kind == k
        A = sparse.csr_matrix((sq[sel], (rows[sel], vid[sel])), shape=(N, len(df)))
        Wk = sparse.triu(A @ A.T, k=1).tocsr()
        total = total + Wk
        if k not in CONTEXT_KINDS:
            n_kinds = n_kinds + (Wk > 0).astype(float)
        if k in STRONG_KINDS:
            strong = strong + Wk
    W = total.tocoo()
    if W.nnz:
        nk = np.asarray(n_kinds[W.row, W.col]).ravel()
        st = np.asarray(strong[W.row, W.col]).ravel()
    else:  # no shared value (e.g. a one-account log): sparse fancy indexing misbehaves
        nk = st = np.zeros(0)
    keep = (W.data >= threshold) & ((nk >= 2) | (st >= threshold))
    G = sparse.csr_matrix((np.ones(keep.sum()), (W.row[keep], W.col[keep])), shape=(N, N))
    _, labels = connected_components(G, directed=False)
    # relabel deterministically: clusters numbered by their smallest account index
    first = {}
    for i, lab in enumerate(labels):
        first.setdefault(lab, i)
    order = sorted(first, key=first.get)
    remap = {lab: j for j, lab in enumerate(order)}
    cl = np.array([remap[lab] for lab in labels])
    df["linking"] = (df["df"] >= 2) & (df["df"] <= max_df)
    return Linkage(cl, df.drop(columns="vid"), int(keep.sum()), sorted(df["kind"].unique()))


def template_share(
    acct_value: pd.DataFrame, accounts: pd.Index, n_req: np.ndarray, *, min_accounts: int = 3
) -> np.ndarray:
    """Share of an account's requests on template frames that at least ``min_accounts``
    accounts use (cross-account templates); an enterprise app sending one template from
    one account scores 0."""
    tv = acct_value[acct_value["kind"] == "template"]
    if tv.empty:
        return np.zeros(len(accounts))
    dfv = tv.groupby("value")["account_id"].nunique()
    tv = tv.assign(shared=tv["value"].map(dfv) >= min_accounts)
    sh = tv[tv["shared"]].groupby("account_id")["n"].sum()
    return sh.reindex(accounts).fillna(0.0).to_numpy() / np.maximum(n_req, 1)


# --------------------------------------------------------------------------- groups

#: A TLS build is a scripted client's when at least this share of the accounts that use
#: it with a recognisable user agent declare a script or SDK.
SCRIPTED_TLS_SHARE = 0.5
#: ... and at least this many accounts declare a script with it.
SCRIPTED_TLS_MIN = 5


def client_mismatch(
    acct_client: pd.DataFrame | None, accounts: pd.Index
) -> tuple[np.ndarray, pd.DataFrame]:
    """Requests whose browser user agent contradicts a scripted client's TLS build.

    ``acct_client`` has (account_id, tls, fam, n) with fam in browser/script/other. A TLS
    value is a scripted client's when most accounts that use it declare a script UA; a
    browser UA sent with it is a contradiction (a scraper dressed as a browser). Returns
    the per-account share of such requests and the linkage values (kind
    ``client_mismatch``, value = the TLS build) of the accounts that send them.
    """
    empty = pd.DataFrame(columns=["kind", "value", "account_id", "n"])
    if acct_client is None or acct_client.empty:
        return np.zeros(len(accounts)), empty
    ac = acct_client
    per = (
        ac[ac["fam"] != "other"]
        .groupby(["tls", "fam"])["account_id"]
        .nunique()
        .unstack(fill_value=0)
    )
    for col in ("browser", "script"):
        if col not in per.columns:
            per[col] = 0
    share = per["script"] / np.maximum(per["script"] + per["browser"], 1)
    scripted = per.index[(share >= SCRIPTED_TLS_SHARE) & (per["script"] >= SCRIPTED_TLS_MIN)]
    bad = ac[(ac["fam"] == "browser") & ac["tls"].isin(scripted)]
    tot = ac.groupby("account_id")["n"].sum().reindex(accounts).fillna(0).to_numpy(float)
    k = bad.groupby("account_id")["n"].sum().reindex(accounts).fillna(0).to_numpy(float)
    vals = bad.groupby(["tls", "account_id"])["n"].sum().reset_index()
    vals = vals.rename(columns={"tls": "value"}).assign(kind="client_mismatch")
    return k / np.maximum(tot, 1), vals[["kind", "value", "account_id", "n"]]


def ip_pools(
    acct_ip: pd.DataFrame | None, *, min_jaccard: float = 0.2, min_shared: int = 3, min_ips: int = 5
) -> pd.DataFrame:
    """Pools of datacenter/proxy IPs used together over time, and the accounts using them.

    Two IPs are in one pool when the accounts that used them overlap (Jaccard >=
    ``min_jaccard`` and >= ``min_shared`` accounts in common); pools are the connected
    components with >= ``min_ips`` IPs. An account belongs to a pool when it used at least
    ``min_shared`` of its IPs: accounts rotating through one proxy pool are linked
    although no single IP is shared by all of them. ``acct_ip``: (account_id, ip, n).
    """
    empty = pd.DataFrame(columns=["kind", "value", "account_id", "n"])
    if acct_ip is None or acct_ip.empty:
        return empty
    a_codes, a_uni = pd.factorize(acct_ip["account_id"], sort=True)
    i_codes, i_uni = pd.factorize(acct_ip["ip"], sort=True)
    A = sparse.csr_matrix(
        (np.ones(len(acct_ip)), (a_codes, i_codes)), shape=(len(a_uni), len(i_uni))
    )
    A.data[:] = 1.0
    C = (A.T @ A).tocoo()
    deg = np.asarray(A.sum(0)).ravel()
    jac = C.data / np.maximum(deg[C.row] + deg[C.col] - C.data, 1)
    keep = (C.row < C.col) & (C.data >= min_shared) & (jac >= min_jaccard)
    G = sparse.csr_matrix(
        (np.ones(keep.sum()), (C.row[keep], C.col[keep])), shape=(len(i_uni),) * 2
    )
    _, lab = connected_components(G, directed=False)
    size = np.bincount(lab)
    pool_of_ip = np.where(size[lab] >= min_ips, lab, -1)
    m = pd.DataFrame(
        {"account_id": a_uni[a_codes], "pool": pool_of_ip[i_codes], "n": acct_ip["n"].to_numpy()}
    )
    m = m[m["pool"] >= 0]
    if m.empty:
        return empty
    g = m.groupby(["pool", "account_id"]).agg(k=("n", "size"), n=("n", "sum")).reset_index()
    g = g[g["k"] >= min_shared]
    # name a pool by its smallest IP, so the name does not depend on the engine
    first_ip = pd.Series(i_uni).groupby(lab).min()
    g["value"] = "pool:" + g["pool"].map(first_ip).astype(str)
    return g.assign(kind="ip_pool")[["kind", "value", "account_id", "n"]]


def signup_bursts(
    created_t: pd.Series, *, bin_s: float = 21600.0, alpha: float = 1e-6
) -> pd.DataFrame:
    """Accounts created in a burst: a 6-hour sign-up bin whose count is improbable under a
    Poisson law at the typical (median non-empty) bin count, Bonferroni over bins. Null:
    sign-ups arrive at the typical rate. ``created_t``: seconds, indexed by account id."""
    empty = pd.DataFrame(columns=["kind", "value", "account_id", "n"])
    c = created_t.dropna()
    if len(c) < 50:
        return empty
    b = np.floor(c.to_numpy(float) / bin_s).astype(np.int64)
    bins, counts = np.unique(b, return_counts=True)
    lam = max(float(np.median(counts)), 1.0)
    p = stats.poisson.sf(counts - 1, lam) * len(bins)
    burst = set(bins[p <= alpha].tolist())
    sel = np.isin(b, list(burst))
    if not sel.any():
        return empty
    return pd.DataFrame(
        {
            "kind": "signup_burst",
            "value": [f"burst:{x}" for x in b[sel]],
            "account_id": c.index[sel].astype(str),
            "n": 1,
        }
    )


def group_candidates(
    values: pd.DataFrame, accounts: pd.Index, *, min_size: int = 5
) -> dict[str, np.ndarray]:
    """Candidate groups from GROUP_KINDS values: name -> member account positions."""
    out: dict[str, np.ndarray] = {}
    g = values[values["kind"].isin(GROUP_KINDS)]
    if g.empty:
        return out
    pos = pd.Series(np.arange(len(accounts)), index=accounts)
    for (kind, value), part in g.groupby(["kind", "value"], sort=True):
        idx = np.unique(pos.reindex(part["account_id"].astype(str)).dropna().to_numpy(int))
        if len(idx) >= min_size:
            out[f"{kind}={value}"] = idx
    return out
