"""Requests, day by day: per-group timing and prompts, then the columns every request shares.

Each (day, group) piece is drawn with its own seeded generator and vectorised over the
group's accounts and requests; `finalise` adds networks, clients, models, tokens, status
and responses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distilltrace.traffic.simulate import prompts as P
from distilltrace.traffic.simulate import realprompts as R
from distilltrace.traffic.simulate import vocab as V
from distilltrace.traffic.simulate import wordings as W
from distilltrace.traffic.simulate.lookalikes import course_prompts
from distilltrace.traffic.simulate.network import ASN_TYPES, COUNTRY_CODES
from distilltrace.traffic.simulate.population import (
    MODELS,
    NEW_MODEL,
    REASONING_MODELS,
    SIGNUPS,
    Group,
    Population,
)

DAY = 86400.0

# local-hour activity (index = local hour)
PROFILES = {
    "human": np.array(
        [
            1,
            0.6,
            0.4,
            0.3,
            0.3,
            0.4,
            0.8,
            1.5,
            2.5,
            3,
            3.2,
            3.3,
            3.2,
            3.2,
            3.3,
            3.4,
            3.4,
            3.5,
            3.8,
            4.2,
            4.4,
            4.2,
            3.4,
            2.0,
        ]
    ),
    "work": np.array(
        [
            0.1,
            0.05,
            0.05,
            0.05,
            0.05,
            0.1,
            0.3,
            1,
            3,
            4,
            4.5,
            4.5,
            3,
            4.2,
            4.5,
            4.3,
            3.8,
            2.5,
            1.2,
            0.6,
            0.4,
            0.3,
            0.2,
            0.15,
        ]
    ),
    "student": np.array(
        [
            2.5,
            1.8,
            1,
            0.5,
            0.3,
            0.2,
            0.3,
            0.6,
            1.2,
            2,
            2.5,
            2.8,
            2.8,
            3,
            3,
            3.2,
            3.3,
            3.4,
            3.6,
            4,
            4.4,
            4.6,
            4.4,
            3.6,
        ]
    ),
}
WEEK = {  # Monday..Sunday
    "human": np.array([1, 1, 1, 1, 0.95, 0.8, 0.85]),
    "work": np.array([1, 1, 1, 1, 0.95, 0.12, 0.08]),
    "student": np.array([1.05, 1.05, 1, 1, 0.8, 0.6, 1.1]),
    "labelling": np.array([1, 1, 1, 1, 1, 0.5, 0.1]),
}
KIND_BENIGN, KIND_REASONING, KIND_LABEL, KIND_RUBRIC = 0, 1, 2, 3


def global_profile() -> np.ndarray:
    """UTC-hour profile of a worldwide user base (Americas, Europe/Africa, Asia-Pacific)."""
    h = PROFILES["human"]
    return 0.45 * np.roll(h, -6) + 0.3 * np.roll(h, 1) + 0.25 * np.roll(h, 7)


@dataclass
class Piece:
    """Requests of one group on one day before the shared columns are added."""

    acct: np.ndarray
    t: np.ndarray  # seconds after the window start
    prompt: pa.Array
    kind: np.ndarray
    campaign: np.ndarray
    model: np.ndarray  # -1: let the account's preferences decide
    temp: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.acct)


def _hours(rng: np.random.Generator, n: int, profile: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(profile) / profile.sum()
    h = np.searchsorted(cdf, rng.random(n), side="right")
    return np.minimum(h, 23) + rng.random(n)


def _grouped_offsets(
    rng: np.random.Generator, key: np.ndarray, mean_gap: float
) -> tuple[np.ndarray, np.ndarray]:
    """Order rows by key; cumulative exponential gaps restarting at each new key."""
    order = np.lexsort((rng.random(len(key)), key))
    k = key[order]
    gaps = rng.exponential(mean_gap, len(k))
    cs = np.cumsum(gaps)
    first = np.r_[True, k[1:] != k[:-1]]
    base = np.maximum.accumulate(np.where(first, np.arange(len(k)), 0))
    off = cs - cs[base] + gaps[base] * 0
    return order, off


def _counts(
    rng, pop: Population, acct: np.ndarray, day: int, week: np.ndarray, dow: int
) -> np.ndarray:
    c = pop.cols
    w = week[dow]
    alive = (
        (c["created"][acct] <= day + 1) & (c["day_from"][acct] <= day) & (c["day_to"][acct] > day)
    )
    active = alive & (rng.random(len(acct)) < np.minimum(1, c["p_active"][acct] * w))
    lam = np.maximum(c["rate"][acct] * w - 1, 0)
    return np.where(active, 1 + rng.poisson(lam), 0)


def _human_times(
    rng,
    pop: Population,
    acct: np.ndarray,
    counts: np.ndarray,
    day: int,
    profile: np.ndarray,
    gap: float = 75.0,
) -> tuple[np.ndarray, np.ndarray]:
    c = pop.cols
    n_sess = np.minimum(counts, 1 + rng.poisson(counts / 6.0))
    sess_off = np.cumsum(n_sess) - n_sess
    req_a = np.repeat(np.arange(len(acct)), counts)
    sess = sess_off[req_a] + (rng.random(len(req_a)) * n_sess[req_a]).astype(np.int64)
    ns = int(n_sess.sum())
    sess_acct = np.repeat(np.arange(len(acct)), n_sess)
    local = _hours(rng, ns, profile) * 3600.0
    start = day * DAY + np.mod(local - c["tz"][acct[sess_acct]] * 3600.0, DAY)
    created = c["created"][acct[sess_acct]] * DAY
    start = np.maximum(start, created + 60)
    order, off = _grouped_offsets(rng, sess, gap)
    t = np.empty(len(sess))
    t[order] = start[sess[order]] + off
    return acct[req_a], t


def _benign_text(
    rng, pop: Population, acct: np.ndarray, families: list[float], step_p: np.ndarray | float
) -> pa.Array:
    n = len(acct)
    fam = rng.choice(len(P.BENIGN_FAMILIES), size=n, p=np.asarray(families) / np.sum(families))
    c = pop.cols
    fav = np.where(rng.random(n) < 0.5, c["fav1"][acct], c["fav2"][acct])
    topic = np.where(rng.random(n) < 0.6, fav, rng.choice(len(P.TOPICS), size=n, p=P.TOPIC_P))
    # coding and math families follow the topic
    fam = np.where(
        topic == P.TOPICS.index("programming"), np.where(rng.random(n) < 0.7, 7, fam), fam
    )
    fam = np.where(topic == P.TOPICS.index("math"), np.where(rng.random(n) < 0.7, 8, fam), fam)
    return P.benign_prompts(rng, fam, topic, step_p)


def _with_real(
    rng, pop: Population, a: np.ndarray, t: np.ndarray, day: int, text, kind, use: np.ndarray
) -> tuple[pa.Array, np.ndarray]:
    """Replace the `use` rows by real prompts: each account walks its own stretch of the pool
    (rows ranked by time within the account), so it does not repeat itself."""
    sel = np.flatnonzero(use)
    if len(sel) == 0:
        return text, kind
    acct = a[sel]
    real = R.walk(pop.cols["pbase"][acct], R.rank_by_time(acct, t[sel]), day * R.DAY_STRIDE)
    kind = kind.copy()
    kind[sel] = np.where(R.reasoning_ask(real), KIND_REASONING, KIND_BENIGN)
    return P._scatter(text, sel, real), kind


def _piece(acct, t, prompt, kind, campaign=-1, model=-1, temp=None) -> Piece:
    n = len(acct)
    return Piece(
        np.asarray(acct, np.int64),
        np.asarray(t, float),
        prompt,
        np.broadcast_to(np.asarray(kind, np.int8), (n,)).copy(),
        np.broadcast_to(np.asarray(campaign, np.int64), (n,)).copy(),
        np.broadcast_to(np.asarray(model, np.int64), (n,)).copy(),
        temp,
    )


# ---- group styles ----------------------------------------------------------------------


def gen_human(rng, pop: Population, g: Group, day: int, dow: int) -> Piece:
    acct = g.accounts
    prof = PROFILES[g.params.get("profile", "human")]
    week = WEEK[g.params.get("week", "human")]
    counts = _counts(rng, pop, acct, day, week, dow)
    a, t = _human_times(rng, pop, acct, counts, day, prof)
    step = pop.cols["step_p"][a]
    text = _benign_text(rng, pop, a, g.params["families"], step)
    kind = np.where(
        pc.match_substring_regex(text, "(?i)step|work|reasoning").to_numpy(zero_copy_only=False),
        KIND_REASONING,
        KIND_BENIGN,
    )
    real_p = g.params.get("real_p", 0.0) * pop.extra.get("real_prompts", 0.0)
    text, kind = _with_real(rng, pop, a, t, day, text, kind, rng.random(len(a)) < real_p)
    pieces = [_piece(a, t, text, kind)]
    if dow in g.params.get("deadlines", []):  # homework burst before a 23:59 local deadline
        who = acct[rng.random(len(acct)) < g.params["burst_frac"]]
        k = 1 + rng.poisson(6, len(who))
        ba = np.repeat(who, k)
        deadline = day * DAY + np.mod(24 * 3600 - 60 - pop.cols["tz"][ba] * 3600, DAY)
        bt = deadline - rng.uniform(0, 5 * 3600, len(ba)) ** 1.0
        fam = rng.choice([7, 8, 0], size=len(ba), p=[0.4, 0.45, 0.15])
        topic = np.where(fam == 8, P.TOPICS.index("math"), P.TOPICS.index("programming"))
        btext = P.benign_prompts(rng, fam, topic, 0.35)
        pieces.append(_piece(ba, bt, btext, KIND_REASONING))
    return _concat(pieces)


def gen_enterprise(rng, pop: Population, g: Group, day: int, dow: int) -> Piece:
    acct = g.accounts
    w = WEEK["human"][dow]
    n = rng.poisson(g.params["volume"] * w * rng.uniform(0.9, 1.1))
    prof = np.roll(PROFILES["human"], -int(round(g.params["tz"])))
    t = day * DAY + _hours(rng, n, 0.3 + prof) * 3600.0
    a = acct[
        rng.choice(
            len(acct), size=n, p=np.arange(len(acct), 0, -1) / np.arange(len(acct), 0, -1).sum()
        )
    ]
    alt = rng.random(n) < 0.05
    text = P.where(
        alt,
        P.fixed_template(rng, V.ENTERPRISE_TEMPLATES[g.params["template2"]], n),
        P.fixed_template(rng, V.ENTERPRISE_TEMPLATES[g.params["template"]], n),
    )
    return _piece(a, t, text, KIND_LABEL)


def gen_harness(rng, pop: Population, g: Group, day: int, dow: int) -> Piece:
    items = g.params["items"]
    fmt = V.HARNESS_FORMATS[g.params["format"]]
    texts = [fmt.format(item=x) for x in items]
    runs = []  # (start time, model)
    if dow < 5 or rng.random() < 0.3:
        for mdl in (1, 2):
            runs.append(
                (
                    day * DAY
                    + g.params["hour"] * 3600
                    + (mdl - 1) * len(items) * g.params["gap"] * 1.1,
                    mdl,
                )
            )
    rel = pop.release_t + g.params["release_delay"]
    if day * DAY <= rel < (day + 1) * DAY:
        runs.append((rel, NEW_MODEL))
    elif rel < day * DAY and (dow < 5 or rng.random() < 0.3):
        runs.append(
            (day * DAY + g.params["hour"] * 3600 + 2.2 * len(items) * g.params["gap"], NEW_MODEL)
        )
    if not runs:
        return _empty()
    m = len(items)
    acct, t, mods, idx = [], [], [], []
    for start, mdl in runs:
        k = np.arange(m)
        t.append(start + k * g.params["gap"] + rng.uniform(0, 0.3, m))
        acct.append(g.accounts[k % len(g.accounts)])
        mods.append(np.full(m, mdl))
        idx.append(k)
    idx = np.concatenate(idx)
    text = P.take_str(texts, idx)
    return _piece(
        np.concatenate(acct), np.concatenate(t), text, KIND_REASONING, model=np.concatenate(mods)
    )


def gen_labelling(rng, pop: Population, g: Group, day: int, dow: int) -> Piece:
    acct = g.accounts
    counts = _counts(rng, pop, acct, day, WEEK["labelling"], dow)
    a, t = _human_times(rng, pop, acct, counts, day, PROFILES["work"], gap=45.0)
    text = P.labelling_prompts(rng, len(a), g.params["templates"])
    return _piece(a, t, text, KIND_RUBRIC)


def gen_reseller(rng, pop: Population, g: Group, day: int, dow: int) -> Piece:
    acct = g.accounts
    n = rng.poisson(g.params["volume"] * rng.uniform(0.9, 1.1))
    t = day * DAY + _hours(rng, n, global_profile()) * 3600.0
    a = np.repeat(acct, n)
    fam = [6, 3, 2, 1, 1, 1, 1, 4, 1]
    is_app = rng.random(n) < 0.2
    app = np.flatnonzero(is_app)
    topic = rng.choice(len(P.TOPICS), size=len(app), p=P.TOPIC_P)
    slots = P._common_slots(topic)
    slots["question"] = P.sub(V.QUESTION_TEMPLATES, slots)
    text = P._scatter(
        _benign_text(rng, pop, a, fam, 0.05),
        app,
        P.fill(rng, V.APP_TEMPLATES, np.arange(len(app)), slots),
    )
    kind = np.full(n, KIND_BENIGN, np.int8)
    real_p = g.params.get("real_p", 0.0) * pop.extra.get("real_prompts", 0.0)
    text, kind = _with_real(rng, pop, a, t, day, text, kind, ~is_app & (rng.random(n) < real_p))
    temp = rng.choice([np.nan, 0.0, 0.2, 0.7, 1.0], n)
    pieces = [_piece(a, t, text, kind, temp=temp)]
    if g.kind == "campaign":
        pieces.append(_reseller_campaign(rng, pop, g, day, n))
    return _concat(pieces)


def _reseller_campaign(rng, pop: Population, g: Group, day: int, n_benign: int) -> Piece:
    """The campaign part of a reseller: regular batches (mixed) or round the clock (agentic)."""
    acct = g.accounts
    ci = int(pop.cols["campaign"][acct[0]])
    if "camp_rate" in g.params:
        nc = rng.poisson(g.params["camp_rate"] * rng.uniform(0.9, 1.1))
        ct = day * DAY + np.sort(rng.uniform(0, DAY, nc))
    else:
        share = float(pop.cols["share"][acct].max())
        nc = rng.poisson(n_benign * share / (1 - share))
        nb = g.params["batches"]
        bstart = day * DAY + np.sort(rng.uniform(0, DAY - 1200, nb))
        ct = bstart[rng.integers(0, nb, nc)] + rng.uniform(0, 900, nc)
    ctext = W.campaign_text(rng, g.params["wording"], nc)
    return _piece(
        np.repeat(acct, nc), ct, ctext, KIND_REASONING, campaign=ci, temp=np.full(nc, 0.7)
    )


def gen_devapp(rng, pop: Population, g: Group, day: int, dow: int) -> Piece:
    acct = g.accounts
    c = pop.cols
    counts = rng.poisson(c["rate"][acct] * WEEK["human"][dow])
    a = np.repeat(acct, counts)
    cron = c["sub"][a] == 1
    t_user = day * DAY + _hours(rng, len(a), global_profile()) * 3600.0
    hour = rng.integers(0, 24, len(a))
    t_cron = day * DAY + hour * 3600.0 + c["phase"][a] + rng.uniform(0, 60, len(a))
    t = np.where(cron, t_cron, t_user)
    tpl = c["app_tpl"][a]
    topic = rng.choice(len(P.TOPICS), size=len(a), p=P.TOPIC_P)
    slots = P._common_slots(topic)
    slots["question"] = P.sub(V.QUESTION_TEMPLATES, slots)
    text = P.fill(rng, V.APP_TEMPLATES, np.arange(len(a)), slots, tidx=tpl)
    return _piece(a, t, text, KIND_BENIGN)


def gen_single(rng, pop: Population, g: Group, day: int, dow: int) -> Piece:
    acct = g.accounts
    n = rng.poisson(g.params["rate"] * rng.uniform(0.85, 1.15))
    t = day * DAY + np.sort(rng.uniform(0, DAY, n))
    text = W.campaign_text(rng, g.params["wording"], n)
    return _piece(
        np.repeat(acct, n), t, text, KIND_REASONING, campaign=pop.cols["campaign"][acct[0]]
    )


def gen_hydra(rng, pop: Population, g: Group, day: int, dow: int) -> Piece:
    c = pop.cols
    acct = g.accounts
    live = (c["day_from"][acct] <= day) & (c["day_to"][acct] > day)
    acct = acct[live]
    if len(acct) == 0:
        return _empty()
    q = np.maximum(1, np.round(c["rate"][acct] * rng.uniform(0.9, 1.1, len(acct)))).astype(np.int64)
    a = np.repeat(np.arange(len(acct)), q)
    k = np.arange(len(a)) - np.repeat(np.cumsum(q) - q, q)
    key = (k + c["phase"][acct][a]) / q[a]  # round-robin: each account evenly spread
    order = np.argsort(key, kind="stable")
    nr = len(a)
    slot = np.empty(nr)
    slot[order] = np.arange(nr)
    t = day * DAY + np.clip((slot + rng.uniform(-0.3, 0.3, nr)) * (DAY / nr), 0, DAY - 1)
    text = W.campaign_text(rng, g.params["wording"], nr)
    return _piece(acct[a], t, text, KIND_REASONING, campaign=c["campaign"][acct[0]])


def gen_paraphrased(rng, pop: Population, g: Group, day: int, dow: int) -> Piece:
    c = pop.cols
    acct = g.accounts
    n = rng.poisson(c["rate"][acct])
    a = np.repeat(np.arange(len(acct)), n)
    k = np.arange(len(a)) - np.repeat(np.cumsum(n) - n, n)
    length = rng.uniform(12, 16, len(acct)) * 3600
    start = day * DAY + c["phase"][acct] * 3600
    step = length / np.maximum(n, 1)
    t = start[a] + (k + rng.uniform(-0.4, 0.4, len(a))) * step[a]
    text = W.campaign_text(rng, g.params["wording"], len(a))
    return _piece(acct[a], t, text, KIND_REASONING, campaign=c["campaign"][acct[0]])


def gen_slowlow(rng, pop: Population, g: Group, day: int, dow: int) -> Piece:
    acct = g.accounts
    counts = _counts(rng, pop, acct, day, WEEK["human"], dow)
    a, t = _human_times(rng, pop, acct, counts, day, PROFILES["human"], gap=120.0)
    text = W.campaign_text(rng, g.params["wording"], len(a))
    return _piece(a, t, text, KIND_REASONING, campaign=pop.cols["campaign"][acct[0]])


def gen_pivot(rng, pop: Population, g: Group, day: int, dow: int) -> Piece:
    c = pop.cols
    acct = g.accounts
    pivot = pop.release_t + g.params["delay"] + rng.uniform(0, 1800, len(acct))
    d0, d1 = day * DAY, (day + 1) * DAY
    accs, ts, mods = [], [], []
    for lo, hi, rate, mdl in (
        (np.full(len(acct), d0), np.minimum(d1, pivot), c["rate"][acct], 1),
        (np.maximum(d0, pivot), np.full(len(acct), d1), c["sub"][acct].astype(float), NEW_MODEL),
    ):
        dur = np.maximum(hi - lo, 0)
        n = rng.poisson(rate * dur / DAY)
        a = np.repeat(np.arange(len(acct)), n)
        k = np.arange(len(a)) - np.repeat(np.cumsum(n) - n, n)
        step = dur / np.maximum(n, 1)
        ts.append(lo[a] + (k + c["phase"][acct][a] + rng.uniform(-0.1, 0.1, len(a))) * step[a])
        accs.append(acct[a])
        mods.append(np.full(len(a), mdl))
    a = np.concatenate(accs)
    text = W.campaign_text(rng, g.params["wording"], len(a))
    return _piece(
        a,
        np.concatenate(ts),
        text,
        KIND_REASONING,
        campaign=c["campaign"][acct[0]],
        model=np.concatenate(mods),
    )


def gen_farm(rng, pop: Population, g: Group, day: int, dow: int) -> Piece:
    """An account farm: each account works a daily shift (its own start and length)."""
    c = pop.cols
    acct = g.accounts
    counts = _counts(rng, pop, acct, day, WEEK["human"], dow)
    a = np.repeat(acct, counts)
    off = c["phase"][a] + rng.uniform(0, 1, len(a)) * c["span"][a]
    t = day * DAY + np.mod(off, 24.0) * 3600.0
    t = np.maximum(t, c["created"][a] * DAY + 600)
    text = W.campaign_text(rng, g.params["wording"], len(a))
    return _piece(a, t, text, KIND_REASONING, campaign=c["campaign"][acct[0]])


def gen_mismatch(rng, pop: Population, g: Group, day: int, dow: int) -> Piece:
    """Human-like sessions in each account's (claimed) time zone."""
    acct = g.accounts
    counts = _counts(rng, pop, acct, day, WEEK["human"], dow)
    a, t = _human_times(rng, pop, acct, counts, day, PROFILES["human"], gap=90.0)
    text = W.campaign_text(rng, g.params["wording"], len(a))
    return _piece(a, t, text, KIND_REASONING, campaign=pop.cols["campaign"][acct[0]])


def gen_daily(rng, pop: Population, g: Group, day: int, dow: int) -> Piece:
    """One account, a working-hours batch every day of its 14-day run."""
    c = pop.cols
    acct = g.accounts
    live = (c["day_from"][acct] <= day) & (c["day_to"][acct] > day)
    if not live.any():
        return _empty()
    n = int(rng.poisson(g.params["rate"]))
    k = np.arange(n)
    span = float(c["span"][acct[0]]) * 3600.0
    off = (k + rng.uniform(-0.3, 0.3, n)) * span / max(n, 1)
    t = day * DAY + np.mod(float(c["phase"][acct[0]]) * 3600.0 + np.clip(off, 0, span), DAY)
    text = W.campaign_text(rng, g.params["wording"], n)
    return _piece(np.repeat(acct, n), t, text, KIND_REASONING, campaign=c["campaign"][acct[0]])


def gen_relay(rng, pop: Population, g: Group, day: int, dow: int) -> Piece:
    """A chat app relaying its users' real prompts over its keys (accounts)."""
    acct = g.accounts
    n = int(rng.poisson(g.params["volume"] * WEEK["human"][dow] * rng.uniform(0.9, 1.1)))
    tz = g.params["tz"]
    if g.params["bursty"]:
        nb = int(rng.integers(3, 7))
        start = np.mod(rng.uniform(9, 17.5, nb) - tz, 24.0) * 3600.0
        length = rng.uniform(20, 45, nb) * 60.0
        b = rng.integers(0, nb, n)
        t = day * DAY + np.mod(start[b] + rng.uniform(0, 1, n) * length[b], DAY)
    else:
        prof = np.roll(PROFILES["human"], int(round(tz))) + 0.5
        t = day * DAY + _hours(rng, n, prof) * 3600.0
    a = acct[rng.integers(0, len(acct), n)]
    key = np.zeros(n, np.int64)
    text = R.walk(np.full(n, g.params["pbase"]), R.rank_by_time(key, t), day * R.RELAY_STRIDE)
    kind = np.where(R.reasoning_ask(text), KIND_REASONING, KIND_BENIGN)
    return _piece(a, t, text, kind)


def _burst_days(g: Group, day: int) -> int:
    """Index of `day` within the group's burst (-1 outside it)."""
    k = day - g.params["day0"]
    return k if 0 <= k < g.params["n_days"] else -1


def gen_study(rng, pop: Population, g: Group, day: int, dow: int) -> Piece:
    """A research study: its prompt list split over its days, sent at a steady pace."""
    k = _burst_days(g, day)
    if k < 0:
        return _empty()
    texts = g.params["texts"]
    parts = np.array_split(np.arange(len(texts)), g.params["n_days"])[k]
    m = len(parts)
    gap = g.params["gap"]
    t = day * DAY + g.params["hour"] * 3600 + np.arange(m) * gap + rng.uniform(0, gap / 2, m)
    a = g.accounts[np.arange(m) % len(g.accounts)]
    return _piece(a, t, P.take_str(texts, parts), KIND_REASONING)


def gen_sweep(rng, pop: Population, g: Group, day: int, dow: int) -> Piece:
    """A benchmark sweep: every item once per model, back to back, round-robin accounts."""
    if _burst_days(g, day) < 0:
        return _empty()
    texts = g.params["texts"]
    m = len(texts)
    gap = g.params["gap"]
    start = day * DAY + g.params["hour"] * 3600
    acct, ts, mods, idx = [], [], [], []
    for r, mdl in enumerate((0, 1, 2, NEW_MODEL)):
        t0 = start + r * m * gap * 1.05
        if mdl == NEW_MODEL and t0 < pop.release_t:
            continue
        k = np.arange(m)
        ts.append(t0 + k * gap + rng.uniform(0, gap / 3, m))
        acct.append(g.accounts[k % len(g.accounts)])
        mods.append(np.full(m, mdl))
        idx.append(k)
    text = P.take_str(texts, np.concatenate(idx))
    return _piece(
        np.concatenate(acct), np.concatenate(ts), text, KIND_REASONING, model=np.concatenate(mods)
    )


def gen_course(rng, pop: Population, g: Group, day: int, dow: int) -> Piece:
    """Students asking for worked solutions in the course language, evenings included."""
    acct = g.accounts
    counts = _counts(rng, pop, acct, day, WEEK["student"], dow)
    a, t = _human_times(rng, pop, acct, counts, day, PROFILES["student"])
    text = course_prompts(rng, g.params["language"], len(a))
    return _piece(a, t, text, KIND_REASONING)


STYLES = {
    "human": gen_human,
    "enterprise": gen_enterprise,
    "harness": gen_harness,
    "labelling": gen_labelling,
    "reseller": gen_reseller,
    "devapp": gen_devapp,
    "single": gen_single,
    "hydra": gen_hydra,
    "paraphrased": gen_paraphrased,
    "slowlow": gen_slowlow,
    "pivot": gen_pivot,
    "farm": gen_farm,
    "mismatch": gen_mismatch,
    "daily": gen_daily,
    "relay": gen_relay,
    "study": gen_study,
    "sweep": gen_sweep,
    "course": gen_course,
}


def _empty() -> Piece:
    z = np.zeros(0, np.int64)
    return Piece(z, np.zeros(0), pa.array([], pa.string()), z.astype(np.int8), z, z)


def _concat(pieces: list[Piece]) -> Piece:
    pieces = [p for p in pieces if len(p)]
    if not pieces:
        return _empty()
    temps = None
    if any(p.temp is not None for p in pieces):
        temps = np.concatenate(
            [p.temp if p.temp is not None else np.full(len(p), np.nan) for p in pieces]
        )
    return Piece(
        np.concatenate([p.acct for p in pieces]),
        np.concatenate([p.t for p in pieces]),
        pa.concat_arrays([p.prompt for p in pieces]),
        np.concatenate([p.kind for p in pieces]),
        np.concatenate([p.campaign for p in pieces]),
        np.concatenate([p.model for p in pieces]),
        temps,
    )


# ---- shared columns --------------------------------------------------------------------


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a bijection on uint64 (unique inputs give unique ids)."""
    z = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z


def _rank_in_group(key: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Position of each row among rows with the same key, in time order."""
    order = np.lexsort((t, key))
    k = key[order]
    first = np.r_[True, k[1:] != k[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(k)), 0))
    rank = np.empty(len(k), dtype=np.int64)
    rank[order] = np.arange(len(k)) - start
    return rank


class Tables:
    """Per-simulation lookup tables used by `finalise` (strings built once)."""

    def __init__(self, pop: Population, start_ms: int):
        ip, asn, typ, cty = pop.internet.finish()
        self.ip, self.asn = ip, asn
        self.asn_type = P.take_str(ASN_TYPES, typ)
        self.country = P.take_str(COUNTRY_CODES, cty)
        c = pop.cols
        seed = np.uint64(pop.seed)
        n = pop.n
        with np.errstate(over="ignore"):
            ids = _mix64(
                np.arange(n, dtype=np.uint64) + seed * np.uint64(1_000_003) + np.uint64(1 << 40)
            )
            orgs = _mix64(
                np.arange(pop.n_orgs, dtype=np.uint64)
                + seed * np.uint64(7_000_001)
                + np.uint64(2 << 40)
            )
            cards = _mix64(
                np.arange(pop.n_cards, dtype=np.uint64)
                + seed * np.uint64(9_000_011)
                + np.uint64(3 << 40)
            )
        self.account_id = pa.array([f"acct_{x & 0xFFFFFFFFFFFF:012x}" for x in ids.tolist()])
        self.org_id = pa.array([f"org_{x & 0xFFFFFFFFFF:010x}" for x in orgs.tolist()])
        self.card = pa.array([f"pf_{x:016x}" for x in cards.tolist()])
        self.key_off = np.cumsum(c["n_keys"]) - c["n_keys"]
        with np.errstate(over="ignore"):
            keys = _mix64(
                np.arange(int(c["n_keys"].sum()), dtype=np.uint64)
                + seed * np.uint64(5_000_011)
                + np.uint64(4 << 40)
            )
        self.key_id = pa.array([f"key_{x & 0xFFFFFFFFFFFF:012x}" for x in keys.tolist()])
        self.ua = pa.array(pop.clients.user_agents)
        self.tls = pa.array(pop.clients.tls)
        self.sys = pa.array([s if s else None for s in pop.system_prompts], pa.string())
        self.sys_len = np.array([len(s) for s in pop.system_prompts])
        self.created = pa.array(
            (start_ms // 1000 + np.round(c["created"] * DAY)).astype("datetime64[s]")
        ).cast(pa.timestamp("s", tz="UTC"))
        self.signup = P.take_str(SIGNUPS, c["signup"])
        self.pay = self.card.take(pa.array(np.maximum(c["pay"], 0)))
        self.pay = pc.if_else(pa.array(c["pay"] >= 0), self.pay, pa.scalar(None, pa.string()))
        self.start_ms = start_ms
        r = np.random.default_rng([pop.seed, 99])
        self.resp = {
            KIND_BENIGN: P.benign_responses(r, 3000, np.zeros(3000, np.int64)),
            KIND_REASONING: P.reasoning_responses(r, 3000),
            KIND_LABEL: P.label_responses(
                r,
                3000,
                [
                    "billing",
                    "shipping",
                    "returns",
                    "technical",
                    "other",
                    '{"order_id": "A-1", "sentiment": "negative"}',
                    "A compact, durable companion for every day.",
                ],
            ),
            KIND_RUBRIC: P.take_str(
                [
                    '{"helpfulness": 4, "correctness": 5, "tone": 4, "note": "accurate"}',
                    "Response A is better: it answers the question directly.",
                    "Violations: 1) jargon ('synergy'); 2) no source.",
                    '{"intent": "question", "pii": false}',
                ],
                r.integers(0, 4, 3000),
            ),
        }


_REFUSAL = pa.array(
    [
        "I can't help with that request.",
        "I can't share my internal reasoning verbatim, but here is a concise answer.",
    ]
)


def _status(rng, c: dict, a: np.ndarray, t: np.ndarray, camp: np.ndarray) -> np.ndarray:
    """0 ok, 1 refused, 2 error, 3 rate limited (per-minute and per-day limits in time order)."""
    n = len(a)
    minute = (t // 60).astype(np.int64)
    dayk = (t // DAY).astype(np.int64)
    rl = (_rank_in_group(a * 100_000_000 + minute, t) >= c["rpm"][a]) | (
        _rank_in_group(a * 10_000 + dayk, t) >= c["rpd"][a]
    )
    refuse_p = np.where(camp >= 0, 0.03, 0.004)
    refused = ~rl & (rng.random(n) < refuse_p)
    err = ~rl & ~refused & (rng.random(n) < 0.003)
    return np.where(rl, 3, np.where(refused, 1, np.where(err, 2, 0)))


def _previews(rng, tb: Tables, kind, camp, ok, refused) -> pa.Array:
    """Response previews from the pools of each request kind (refusals; null otherwise)."""
    ridx = pa.array(rng.integers(0, 3000, len(kind)))
    resp = None
    for k, pool in tb.resp.items():
        part = pool.take(ridx)
        resp = part if resp is None else P.where(kind == k, part, resp)
    resp = P.where(refused, _REFUSAL.take(pa.array((camp >= 0).astype(np.int64))), resp)
    return pc.if_else(pa.array(ok | refused), resp, pa.scalar(None, pa.string()))


def finalise(
    pop: Population, tb: Tables, piece: Piece, rng: np.random.Generator, id_base: int, days: int
) -> pa.Table:
    """Add every shared column to a piece (rows stay in piece order: `Simulation.day` sorts
    the whole day once, so the text is gathered once)."""
    if len(piece) == 0:
        return None
    c = pop.cols
    a = piece.acct
    t = np.clip(piece.t, 0, days * DAY + 3 * 3600)
    n = len(a)
    prompt = piece.prompt
    kind = piece.kind
    camp = piece.campaign
    take_a = pa.array(a)
    # network: primary pool or secondary pool
    use2 = (rng.random(n) < c["p2_p"][a]) & (c["p2_n"][a] > 0)
    u = rng.random(n)
    ent = np.where(
        use2,
        c["p2_off"][a] + (u * c["p2_n"][a]).astype(np.int64),
        c["p1_off"][a] + (u * np.maximum(c["p1_n"][a], 1)).astype(np.int64),
    )
    ent_pa = pa.array(ent)
    # client
    use_c2 = rng.random(n) < c["client2_p"][a]
    ua = np.where(use_c2, c["client2"][a], c["client1"][a])
    tls = np.where(use_c2, c["tls2"][a], c["tls1"][a])
    # model
    mdl = piece.model.copy()
    free = mdl < 0
    pref = np.where(rng.random(n) < 0.85, c["model"][a], rng.integers(0, 3, n))
    ramp = np.clip((t - pop.release_t) / (2 * DAY), 0, 1)
    new = rng.random(n) < c["adopt"][a] * ramp
    mdl[free] = np.where(new, NEW_MODEL, pref)[free]
    # sampling parameters
    temp = c["temp"][a].copy()
    if piece.temp is not None:
        pt = piece.temp
        temp = np.where(np.isnan(pt), temp, pt)
    max_tok = c["max_tok"][a]
    # tokens
    sys_i = c["sys"][a]
    in_tok = (pc.utf8_length(prompt).to_numpy(zero_copy_only=False) + tb.sys_len[sys_i]) // 4 + 3
    med = np.array([220.0, 850.0, 8.0, 60.0])[kind]
    sig = np.array([0.8, 0.6, 0.5, 0.5])[kind]
    out_tok = np.round(med * np.exp(sig * rng.standard_normal(n))).astype(np.int64) + 1
    out_tok = np.where(max_tok > 0, np.minimum(out_tok, max_tok), out_tok)
    is_r = np.isin(mdl, list(REASONING_MODELS))
    r_tok = np.round(
        np.where(kind == KIND_REASONING, 1800.0, 500.0) * np.exp(0.7 * rng.standard_normal(n))
    ).astype(np.int64)
    status = _status(rng, c, a, t, camp)
    ok, refused = status == 0, status == 1
    out_tok = np.where((status == 3) | (status == 2), 0, np.where(refused, 20, out_tok))
    resp = _previews(rng, tb, kind, camp, ok, refused)
    # ids
    with np.errstate(over="ignore"):
        rid = _mix64(
            np.arange(id_base, id_base + n, dtype=np.uint64)
            + np.uint64(pop.seed) * np.uint64(0x9E3779B1)
        )
    request_id = P.join("req_", pc.cast(pa.array(rid), pa.string()))
    key = tb.key_off[a] + (rng.random(n) * c["n_keys"][a]).astype(np.int64)
    ts = pa.array((tb.start_ms + np.round(t * 1000)).astype("datetime64[ms]")).cast(
        pa.timestamp("ms", tz="UTC")
    )
    camp_names = None
    cols = {
        "request_id": request_id,
        "timestamp": ts,
        "account_id": tb.account_id.take(take_a),
        "prompt": prompt,
        "org_id": tb.org_id.take(pa.array(c["org"][a])),
        "api_key_id": tb.key_id.take(pa.array(key)),
        "account_created_at": tb.created.take(take_a),
        "signup_path": tb.signup.take(take_a),
        "payment_fingerprint": tb.pay.take(take_a),
        "client_ip": tb.ip.take(ent_pa),
        "asn": pa.array(tb.asn[ent]),
        "asn_type": tb.asn_type.take(ent_pa),
        "country": tb.country.take(ent_pa),
        "user_agent": tb.ua.take(pa.array(ua)),
        "tls_fingerprint": tb.tls.take(pa.array(tls)),
        "model": P.take_str(MODELS, mdl),
        "system_prompt": tb.sys.take(pa.array(sys_i)),
        "response": resp,
        "input_tokens": pa.array(in_tok.astype(np.int64)),
        "output_tokens": pa.array(out_tok),
        "reasoning_tokens": pa.array(np.where(ok & is_r, r_tok, 0), mask=~(is_r & (ok | refused))),
        "temperature": pa.array(temp, mask=np.isnan(temp)),
        "max_tokens": pa.array(max_tok, mask=max_tok <= 0),
        "status": P.take_str(["ok", "refused", "error", "rate_limited"], status),
        "campaign_id": camp_names,
    }
    names = [g.campaign_id for g in pop.groups if g.kind == "campaign"]
    cidx = np.maximum(camp, 0)
    cols["campaign_id"] = pc.if_else(
        pa.array(camp >= 0), P.take_str(names or [""], cidx), pa.scalar(None, pa.string())
    )
    return pa.table(cols)
