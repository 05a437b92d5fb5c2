"""Campaign archetypes: accounts, infrastructure and pacing of each distillation campaign.

A campaign's archetype decides who its accounts are, where they connect from and how they
pace their requests; its wording family and language (`wordings.py`) decide how its prompts
ask for reasoning. The two are drawn independently, so a benchmark can generate logs whose
campaigns use only one family or language (`assign_wordings`). Sizes are fractions of the
population with floors for small ones (the numbers in the descriptions are for ~26,000
accounts).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from distilltrace.traffic.simulate import vocab as V
from distilltrace.traffic.simulate import wordings as W
from distilltrace.traffic.simulate.network import CLIENT_INDEX as CI
from distilltrace.traffic.simulate.network import COUNTRY_CODES
from distilltrace.traffic.simulate.population import (
    TIER_1,
    TIER_NEW,
    TIER_ORG,
    Group,
    _age,
    _clients,
    _Ctx,
    _home,
    _last_len,
    _reseller_account,
    _residential_pools,
)

# how each archetype's operator writes (see wordings.FORMS) and its item mix (math, code, agent)
FORM = {
    "single_heavy": "scripted",
    "hydra": "scripted",
    "reseller_mixed": "scripted",
    "paraphrased": "varied",
    "slow_low": "natural",
    "release_pivot": "scripted",
    "pool_farm": "scripted",
    "proxy_mismatch": "varied",
    "reconstruct_daily": "scripted",
    "reseller_agentic": "scripted",
}
KINDS = {
    "single_heavy": (0.45, 0.4, 0.15),
    "hydra": (0.4, 0.35, 0.25),
    "reseller_mixed": (0.2, 0.5, 0.3),
    "paraphrased": (0.42, 0.4, 0.18),
    "slow_low": (0.45, 0.5, 0.05),
    "release_pivot": (0.3, 0.3, 0.4),
    "pool_farm": (0.4, 0.4, 0.2),
    "proxy_mismatch": (0.4, 0.35, 0.25),
    "reconstruct_daily": (0.6, 0.4, 0.0),
    "reseller_agentic": (0.05, 0.15, 0.8),
}
# the family an archetype uses when the configuration allows it
PREFERRED = {"reconstruct_daily": "reconstruct", "reseller_agentic": "agentic_think"}
# languages weighted by how often they are drawn (English twice as often as the others)
LANGUAGE_WEIGHT = {"en": 2.0}


def campaign_sizes(N: int) -> dict[str, int]:
    """Accounts per campaign archetype for N accounts."""
    return {
        "single_heavy": 1,
        "hydra": max(30, round(0.012 * N)),
        "reseller_mixed": 1,
        "paraphrased": max(10, round(0.002 * N)),
        "slow_low": max(4, min(15, round(0.0005 * N))),
        "release_pivot": max(8, round(0.0015 * N)),
        "pool_farm": max(min(40, N // 20), round(0.046 * N)),
        "proxy_mismatch": max(min(20, N // 40), round(0.031 * N)),
        "reconstruct_daily": 1,
        "reseller_agentic": 1,
    }


def _least_used(
    options: Sequence[str], used: Counter, order: list[str], weight: dict[str, float]
) -> str:
    return min(options, key=lambda x: (used[x] / weight.get(x, 1.0), order.index(x)))


def assign_wordings(
    archetypes: Sequence[str],
    wordings: Sequence[str],
    languages: Sequence[str],
    seed: int,
) -> list[tuple[str, str]]:
    """(wording, language) per campaign: spread over the allowed values in a seeded order,
    each archetype's preferred family first when allowed; English counts double."""
    rng = np.random.default_rng([seed, 501])
    w_order = [wordings[i] for i in rng.permutation(len(wordings))]
    l_order = [languages[i] for i in rng.permutation(len(languages))]
    w_used: Counter = Counter()
    l_used: Counter = Counter()
    out: list[tuple[str, str] | None] = [None] * len(archetypes)
    first = [i for i, a in enumerate(archetypes) if PREFERRED.get(a) in wordings]
    rest = [i for i in range(len(archetypes)) if i not in first]
    for i in first + rest:
        pref = PREFERRED.get(archetypes[i])
        w = pref if pref in wordings else _least_used(w_order, w_used, w_order, {})
        lang = _least_used(l_order, l_used, l_order, LANGUAGE_WEIGHT)
        w_used[w] += 1
        l_used[lang] += 1
        out[i] = (w, lang)
    return [x for x in out if x is not None]


@dataclass
class _Camp:
    """What a campaign builder gets: ids, size, its own generator and its wording."""

    cid: str
    ci: int
    kc: int
    rng: np.random.Generator
    spec: W.WordingSpec


def _camp_single_heavy(ctx: _Ctx, k: _Camp) -> tuple[Group, np.ndarray]:
    rng, b = ctx.rng, ctx.b
    g = ctx.group(
        k.cid,
        "single",
        "campaign",
        "One heavy account sweeping math/coding/agentic tasks with reasoning-trace "
        "elicitation, round the clock, from a few cloud IPs.",
        rate=max(300.0, 0.4 * ctx.N),
        wording=k.spec,
    )
    pool, pool_n = ctx.dc_pool(3)
    idx = b.add(
        1,
        group=ctx.gi(g),
        campaign=k.ci,
        signup=2,
        created=-rng.uniform(20, 90),
        country=COUNTRY_CODES.index("US"),
        tz=-5,
        client1=CI["openai_python"],
        p1_off=pool,
        p1_n=pool_n,
        n_keys=3,
        model=2,
        adopt=0.9,
        temp=1.0,
        max_tok=16000,
        rpm=TIER_ORG[0],
        rpd=TIER_ORG[1],
        sys=b.system(V.CAMPAIGN_SYSTEM_PROMPTS[0]),
    )
    return g, idx


def _camp_hydra(ctx: _Ctx, k: _Camp) -> tuple[Group, np.ndarray]:
    net, b, crng, kc = ctx.net, ctx.b, k.rng, k.kc
    g = ctx.group(
        k.cid,
        "hydra",
        "campaign",
        "Hydra cluster: many young self-serve accounts, each under the new-account "
        "rate limit, sharing subsets of payment cards, two custom TLS stacks, a few "
        "proxy/datacenter /24s; load-balanced, synchronised, round the clock.",
        wording=k.spec,
    )
    hosts = [net.datacenter[1], net.datacenter[4], net.proxy[3]]
    blocks = [net.block24(a) for a in hosts for _ in range(2)]
    # each account: 2-5 IPs from the shared /24s
    kk = crng.integers(2, 6, kc)
    bi = crng.integers(0, len(blocks), kk.sum())
    blk = np.asarray(blocks)[bi]
    asns = np.repeat(hosts, 2)[bi]
    off = net.add(asns, blk + crng.integers(1, 255, kk.sum())) + np.cumsum(kk) - kk
    cards = np.array([b.card() for _ in range(max(3, kc // 15))])
    pay = np.where(crng.random(kc) < 0.6, cards[crng.integers(0, len(cards), kc)], -2)
    tls_custom = [ctx.clients.add_tls(f"custom-{ctx.seed}-{k.cid}-{j}") for j in range(2)]
    tls = np.where(
        crng.random(kc) < 0.8,
        np.asarray(tls_custom)[crng.integers(0, 2, kc)],
        ctx.clients.tls_of_client[CI["openai_python"]][0],
    )
    ua = np.asarray([CI["openai_python"], CI["requests"], CI["httpx"]])[crng.integers(0, 3, kc)]
    # churn: most accounts run the whole window, some are rotated in and out
    start = np.where(crng.random(kc) < 0.7, -1.0, crng.uniform(0, ctx.days * 0.7, kc))
    stop = np.where(crng.random(kc) < 0.8, 1e9, start + crng.uniform(2, 6, kc))
    created = np.minimum(start, 0) - crng.uniform(0.2, 6, kc)
    created = np.round(created * 4) / 4 + crng.uniform(0, 0.05, kc)  # sign-up batches
    c, tz = _home(crng, kc, ["US", "US", "SG", "GB", "CA"])
    sysi = np.asarray([b.system(s) for s in V.CAMPAIGN_SYSTEM_PROMPTS])[crng.integers(0, 5, kc)]
    idx = b.add(
        kc,
        group=ctx.gi(g),
        campaign=k.ci,
        signup=crng.choice([0, 1, 2], kc, p=[0.75, 0.15, 0.1]),  # credit-programme abuse
        created=created,
        pay=pay,
        country=c,
        tz=tz,
        client1=ua,
        tls1=tls,
        p1_off=off,
        p1_n=kk,
        rate=crng.uniform(50, 95, kc),
        day_from=start,
        day_to=stop,
        n_keys=1,
        model=crng.choice([1, 2], kc, p=[0.4, 0.6]),
        adopt=0.3,
        temp=0.7,
        max_tok=8192,
        sys=sysi,
        rpm=TIER_NEW[0],
        rpd=TIER_NEW[1],
        phase=crng.random(kc),
    )
    return g, idx


def _camp_reseller_mixed(ctx: _Ctx, k: _Camp, share: float) -> tuple[Group, np.ndarray]:
    g = ctx.group(
        k.cid,
        "reseller",
        "campaign",
        f"Campaign mixed into a reseller: {share:.0%} of one reseller "
        "account's traffic is a coding/agentic sweep with reasoning elicitation, "
        "sent in regular batches.",
        wording=k.spec,
        real_p=0.6,
    )
    idx = _reseller_account(ctx, g, share, campaign=k.ci)
    g.params["batches"] = int(k.rng.integers(6, 14))
    return g, idx


def _camp_paraphrased(ctx: _Ctx, k: _Camp) -> tuple[Group, np.ndarray]:
    net, b, crng, kc = ctx.net, ctx.b, k.rng, k.kc
    g = ctx.group(
        k.cid,
        "paraphrased",
        "campaign",
        "Paraphrased campaign: no shared template (varied leads, order, synonyms, "
        "thousands of elicitation wordings), rotating residential proxy IPs, "
        "browser user agents; still reasoning elicitation and capability sweeps.",
        wording=k.spec,
    )
    resid = np.concatenate(
        [net.residential[COUNTRY_CODES.index(x)] for x in ("US", "GB", "DE", "CA")]
    )
    rp = net.add(resid[crng.integers(0, len(resid), max(500, kc * 60))])
    c, tz = _home(crng, kc, ["US", "GB", "DE", "CA"])
    tls_rare = ctx.clients.add_tls(f"headless-{ctx.seed}-{k.cid}")
    cl = _clients(crng, kc)
    idx = b.add(
        kc,
        group=ctx.gi(g),
        campaign=k.ci,
        signup=0,
        created=-crng.uniform(5, 40, kc),
        country=c,
        tz=tz,
        client1=cl,
        client2=_clients(crng, kc),
        client2_p=0.3,
        tls1=np.where(crng.random(kc) < 0.5, tls_rare, -1),
        p1_off=rp,
        p1_n=_last_len(net),
        rate=crng.uniform(40, 90, kc),
        model=crng.choice([1, 2], kc),
        adopt=0.4,
        rpm=TIER_NEW[0],
        rpd=TIER_NEW[1],
        phase=crng.uniform(0, 24, kc),
        temp=crng.choice([0.6, 0.8, 1.0], kc),
    )
    return g, idx


def _camp_slow_low(ctx: _Ctx, k: _Camp) -> tuple[Group, np.ndarray]:
    crng, kc = k.rng, k.kc
    g = ctx.group(
        k.cid,
        "slowlow",
        "campaign",
        "Slow and low: a few aged accounts on ordinary home IPs, human-like "
        "sessions in their time zone, ~15-35 requests a day for weeks, coding and "
        "math sweeps with naturally worded elicitation.",
        profile="human",
        week="human",
        wording=k.spec,
    )
    c, tz = _home(crng, kc, ["US", "GB", "CA", "AU"])
    home_off, home_n = _residential_pools(ctx.net, crng, c, 1, 2, v6=0.0)
    idx = ctx.b.add(
        kc,
        group=ctx.gi(g),
        campaign=k.ci,
        signup=0,
        created=_age(crng, kc, 150, 700),
        country=c,
        tz=tz,
        client1=_clients(crng, kc),
        p1_off=home_off,
        p1_n=home_n,
        rate=crng.uniform(15, 35, kc),
        p_active=0.92,
        model=crng.choice([1, 2], kc),
        adopt=0.2,
    )
    return g, idx


def _camp_release_pivot(ctx: _Ctx, k: _Camp) -> tuple[Group, np.ndarray]:
    net, b, crng, kc = ctx.net, ctx.b, k.rng, k.kc
    g = ctx.group(
        k.cid,
        "pivot",
        "campaign",
        "Release pivot: a cluster that moves onto the new model within hours of "
        "its first appearance and multiplies its volume; agentic, math and coding "
        "sweeps; shared cards and a custom TLS stack; regular cadence.",
        delay=float(crng.uniform(1, 8) * 3600),
        wording=k.spec,
    )
    hosts = [net.datacenter[2], net.datacenter[5], net.datacenter[5]]
    blocks = [net.block24(a) for a in hosts]
    kk = crng.integers(1, 4, kc)
    bi = crng.integers(0, 3, kk.sum())
    asns = np.asarray(hosts)[bi]
    ips = np.asarray(blocks)[bi] + crng.integers(1, 255, kk.sum())
    off = net.add(asns, ips) + np.cumsum(kk) - kk
    cards = np.array([b.card() for _ in range(3)])
    tls = ctx.clients.add_tls(f"pivot-{ctx.seed}-{k.cid}")
    c, tz = _home(crng, kc, ["US", "SG"])
    idx = b.add(
        kc,
        group=ctx.gi(g),
        campaign=k.ci,
        signup=np.where(crng.random(kc) < 0.3, 2, 0),
        created=-crng.uniform(15, 45, kc),
        pay=cards[crng.integers(0, 3, kc)],
        country=c,
        tz=tz,
        client1=CI["openai_python"],
        tls1=tls,
        p1_off=off,
        p1_n=kk,
        rate=crng.uniform(15, 30, kc),
        model=1,
        adopt=0.0,
        temp=0.8,
        max_tok=8192,
        phase=crng.uniform(0, 1, kc),
        sub=crng.integers(120, 250, kc),
    )
    return g, idx


def _scripted_tls(ctx: _Ctx, client: np.ndarray) -> np.ndarray:
    """The commonest TLS fingerprint of each (scripted) client library: what benign
    developers using the same library also present."""
    first = np.asarray(
        [ctx.clients.tls_of_client[c][0] for c in range(len(ctx.clients.user_agents))]
    )
    return first[client]


def _camp_pool_farm(ctx: _Ctx, k: _Camp) -> tuple[Group, np.ndarray]:
    net, b, crng, kc = ctx.net, ctx.b, k.rng, k.kc
    g = ctx.group(
        k.cid,
        "farm",
        "campaign",
        "Account farm on an IP pool: ~1,200 self-serve accounts created within three days, "
        "every request from a rotating pool of ~150 datacenter IPs (a few /24s, two hosting "
        "ASNs), two scripted-client TLS fingerprints that ordinary developers share, each "
        "payment card shared by ~15 accounts; low volume per account in daily shifts, so "
        "no single value links the whole farm.",
        wording=k.spec,
    )
    hosts = [net.datacenter[i] for i in crng.choice(len(net.datacenter), 2, replace=False)]
    n_ip = min(150, max(24, round(kc / 8)))
    n_blk = 4 if n_ip > 60 else 2
    per = -(-n_ip // n_blk)
    off = None
    for j in range(n_blk):
        o = net.add_block(hosts[j % 2], net.block24(hosts[j % 2]), per)
        off = o if off is None else off
    pool_n = n_blk * per
    cards = np.array([b.card() for _ in range(-(-kc // 15))])
    pay = cards[crng.permutation(kc) // 15]
    client = np.where(crng.random(kc) < 0.6, CI["requests"], CI["httpx"])
    c, tz = _home(crng, kc, ["US", "SG", "NL", "DE"])
    born = -crng.uniform(4, 12)
    idx = b.add(
        kc,
        group=ctx.gi(g),
        campaign=k.ci,
        signup=0,
        created=born + crng.uniform(0, 3, kc),
        pay=pay,
        country=c,
        tz=tz,
        client1=client,
        tls1=_scripted_tls(ctx, client),
        p1_off=off,
        p1_n=pool_n,
        rate=crng.uniform(4, 10, kc),
        p_active=0.65,
        model=crng.choice([1, 2], kc, p=[0.5, 0.5]),
        adopt=0.3,
        temp=crng.choice([0.7, 1.0], kc),
        rpm=TIER_NEW[0],
        rpd=TIER_NEW[1],
        phase=crng.uniform(0, 24, kc),
        span=crng.uniform(6, 16, kc),
    )
    return g, idx


def _camp_proxy_mismatch(ctx: _Ctx, k: _Camp) -> tuple[Group, np.ndarray]:
    net, b, crng, kc = ctx.net, ctx.b, k.rng, k.kc
    g = ctx.group(
        k.cid,
        "mismatch",
        "campaign",
        "Proxy fleet with a client mismatch: ~800 self-serve accounts, each with its own "
        "card, on rotating residential proxy IPs in ten countries; they send browser user "
        "agents (Chrome, Firefox, Safari) while their TLS fingerprint is that of a scripted "
        "HTTP library (the same value python-requests/httpx/curl developers present); "
        "human-like daily sessions, low volume per account.",
        profile="human",
        week="human",
        wording=k.spec,
    )
    countries = ["US", "GB", "DE", "CA", "FR", "BR", "IN", "ES", "NL", "AU"]
    resid = np.concatenate([net.residential[COUNTRY_CODES.index(x)] for x in countries])
    rp = net.add(resid[crng.integers(0, len(resid), max(1500, kc * 30))])
    c, tz = _home(crng, kc, countries)
    browsers = np.asarray([CI[x] for x in ("chrome_win", "chrome_mac", "firefox", "safari_mac")])
    ua = browsers[crng.choice(4, kc, p=[0.45, 0.25, 0.15, 0.15])]
    lib = np.asarray([CI["requests"], CI["httpx"], CI["curl"]])[
        crng.choice(3, kc, p=[0.75, 0.15, 0.1])
    ]
    idx = b.add(
        kc,
        group=ctx.gi(g),
        campaign=k.ci,
        signup=0,
        created=-crng.uniform(3, 60, kc),
        country=c,
        tz=tz,
        client1=ua,
        tls1=_scripted_tls(ctx, lib),
        p1_off=rp,
        p1_n=_last_len(net),
        rate=crng.uniform(3, 8, kc),
        p_active=0.9,
        model=crng.choice([1, 2], kc),
        adopt=0.4,
        rpm=TIER_NEW[0],
        rpd=TIER_NEW[1],
    )
    return g, idx


def _camp_reconstruct_daily(ctx: _Ctx, k: _Camp) -> tuple[Group, np.ndarray]:
    net, b, crng = ctx.net, ctx.b, k.rng
    rate = max(150.0, 1200.0 * ctx.N / 26000)
    g = ctx.group(
        k.cid,
        "daily",
        "campaign",
        f"One account sending ~{rate:,.0f} requests a day (1,200 at 26,000 accounts) in one "
        "wording for 14 days (or the whole window), in a working-hours batch from one "
        "static business IP.",
        wording=k.spec,
        rate=rate,
    )
    if ctx.days <= 14:
        d0, d1 = -1.0, 1e9
    else:
        d0 = float(crng.integers(0, ctx.days - 14 + 1))
        d1 = d0 + 14
    c, tz = _home(crng, 1, ["US", "GB", "DE", "SG", "KR", "JP"])
    asn = net.new_asn("business", int(c[0]))
    ip = net.add_block(asn, net.block24(asn), 1)
    idx = b.add(
        1,
        group=ctx.gi(g),
        campaign=k.ci,
        signup=0,
        created=-crng.uniform(30, 200),
        country=c[0],
        tz=tz[0],
        client1=CI["openai_python"],
        p1_off=ip,
        p1_n=1,
        day_from=d0,
        day_to=d1,
        model=2,
        adopt=0.6,
        temp=0.6,
        max_tok=8192,
        rpm=TIER_1[0],
        rpd=TIER_1[1],
        phase=np.mod(8.0 - tz[0], 24.0),
        span=float(crng.uniform(9, 13)),
    )
    return g, idx


def _camp_reseller_agentic(ctx: _Ctx, k: _Camp) -> tuple[Group, np.ndarray]:
    per_day = 31000.0 * ctx.N / 26000 / 7
    g = ctx.group(
        k.cid,
        "reseller",
        "campaign",
        f"Agentic campaign inside a reseller: ~{per_day * ctx.days:,.0f} agentic requests over "
        "the window (31,000 a week at 26,000 accounts) relayed round the clock through one "
        "reseller account, mixed with its own benign relayed traffic.",
        wording=k.spec,
        camp_rate=per_day,
        real_p=0.6,
    )
    idx = _reseller_account(ctx, g, 0.0, campaign=k.ci, camp_rate=per_day, volume_scale=0.5)
    return g, idx


BUILDERS: dict[str, Callable[[_Ctx, _Camp], tuple[Group, np.ndarray]]] = {
    "single_heavy": _camp_single_heavy,
    "hydra": _camp_hydra,
    "paraphrased": _camp_paraphrased,
    "slow_low": _camp_slow_low,
    "release_pivot": _camp_release_pivot,
    "pool_farm": _camp_pool_farm,
    "proxy_mismatch": _camp_proxy_mismatch,
    "reconstruct_daily": _camp_reconstruct_daily,
    "reseller_agentic": _camp_reseller_agentic,
}


def add_campaigns(
    ctx: _Ctx,
    campaigns: Sequence[str],
    reseller_share: float,
    wordings: Sequence[str],
    languages: Sequence[str],
) -> None:
    """Add every configured campaign (archetype, wording, language) to the population."""
    sizes = campaign_sizes(ctx.N)
    pairs = assign_wordings(campaigns, wordings, languages, ctx.seed)
    for ci, (arche, (wording, lang)) in enumerate(zip(campaigns, pairs, strict=True)):
        crng = np.random.default_rng([ctx.seed, 500, ci])
        spec = W.make_spec(
            np.random.default_rng([ctx.seed, 502, ci]), wording, lang, FORM[arche], KINDS[arche]
        )
        k = _Camp(f"{arche}-{ci + 1}", ci, sizes[arche], crng, spec)
        if arche == "reseller_mixed":
            g, idx = _camp_reseller_mixed(ctx, k, reseller_share)
        elif arche in BUILDERS:
            g, idx = BUILDERS[arche](ctx, k)
            if arche != "reseller_agentic":
                ctx.attach(g, idx)
        else:
            raise ValueError(f"unknown campaign archetype {arche!r}")
        g.campaign_id, g.archetype = k.cid, arche
