"""The simulated population: accounts, organisations, networks, clients, groups, campaigns.

`build_population` draws every account once (a loop over groups, vectorised over accounts):
the benign hard cases here, the newer look-alikes in `lookalikes.py`, the campaigns in
`campaigns.py`, then ordinary individuals; `traffic.py` turns the plan into requests day by
day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distilltrace.traffic.simulate import prompts as P
from distilltrace.traffic.simulate import vocab as V
from distilltrace.traffic.simulate.network import CLIENT_INDEX as CI
from distilltrace.traffic.simulate.network import (
    COUNTRIES,
    COUNTRY_CODES,
    COUNTRY_P,
    HUMAN_CLIENT_P,
    HUMAN_CLIENTS,
    SDK_CLIENT_P,
    SDK_CLIENTS,
    ClientTable,
    Internet,
)

SIGNUPS = ["self_serve", "education", "startup", "research", "enterprise", "reseller"]
MODELS = ["atlas-2-mini", "atlas-2", "atlas-2-reasoning", "atlas-3"]
REASONING_MODELS = {2, 3}
NEW_MODEL = 3

ARCHETYPES = [
    "single_heavy",
    "hydra",
    "reseller_mixed",
    "paraphrased",
    "slow_low",
    "release_pivot",
    "pool_farm",
    "proxy_mismatch",
    "reconstruct_daily",
    "reseller_agentic",
]
# benign look-alike (hard-case) families; each group in the truth names its family and variant
LOOKALIKES = [
    "university_nat",
    "corporate_nat",
    "corporate_vpn",
    "consumer_vpn",
    "mobile_cgnat",
    "enterprise_app",
    "eval_harness",
    "data_labelling",
    "reseller",
    "developer_apps",
    "chat_relay",
    "research_burst",
]

# requests-per-minute / per-day limits by tier
TIER_NEW = (20, 100)  # self-serve accounts younger than two weeks
TIER_1 = (60, 2000)
TIER_ORG = (600, 200000)


@dataclass
class Group:
    """A population group: ordinary users, a hard case, or one campaign."""

    name: str
    style: str
    kind: str  # "benign", "hard_case" or "campaign"
    description: str
    params: dict[str, Any] = field(default_factory=dict)
    accounts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    campaign_id: str | None = None
    archetype: str | None = None
    lookalike: str | None = None
    variant: str | None = None


_COLS: dict[str, Any] = {
    "group": 0,
    "campaign": -1,
    "org": -1,
    "signup": 0,
    "created": -200.0,
    "pay": -2,
    "country": 0,
    "tz": 0.0,
    "client1": 0,
    "client2": 0,
    "client2_p": 0.0,
    "tls1": -1,
    "tls2": -1,
    "p1_off": 0,
    "p1_n": 1,
    "p2_off": 0,
    "p2_n": 0,
    "p2_p": 0.0,
    "rate": 1.0,
    "p_active": 1.0,
    "day_from": -1e9,
    "day_to": 1e9,
    "n_keys": 1,
    "model": 1,
    "adopt": 0.0,
    "temp": np.nan,
    "max_tok": -1,
    "sys": 0,
    "rpm": TIER_1[0],
    "rpd": TIER_1[1],
    "fav1": 0,
    "fav2": 0,
    "share": 0.0,
    "app_tpl": -1,
    "step_p": 0.03,
    "phase": 0.0,
    "sub": 0,
    "span": 24.0,
    "pbase": 0,
}
_INT = {k for k, v in _COLS.items() if isinstance(v, int)}


@dataclass
class Population:
    """Every account's attributes (column arrays), groups, the network and the clients."""

    cols: dict[str, np.ndarray]
    groups: list[Group]
    internet: Internet
    clients: ClientTable
    system_prompts: list[str]
    n_orgs: int
    n_cards: int
    release_t: float  # seconds after the window start when the new model appears
    days: int
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.cols["group"])


class _Builder:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.blocks: list[dict[str, np.ndarray]] = []
        self.n = 0
        self.n_orgs = 0
        self.n_cards = 0
        self.sys: list[str] = [""]

    def org(self) -> int:
        self.n_orgs += 1
        return self.n_orgs - 1

    def card(self) -> int:
        self.n_cards += 1
        return self.n_cards - 1

    def system(self, text: str) -> int:
        if text not in self.sys:
            self.sys.append(text)
        return self.sys.index(text)

    def add(self, m: int, **cols: Any) -> np.ndarray:
        blk = {}
        for k, default in _COLS.items():
            v = cols.pop(k, default)
            arr = np.broadcast_to(np.asarray(v), (m,)).copy()
            blk[k] = arr.astype(np.int64 if k in _INT else np.float64)
        if cols:
            raise TypeError(f"unknown account columns: {sorted(cols)}")
        self.blocks.append(blk)
        idx = np.arange(self.n, self.n + m)
        self.n += m
        return idx

    def cols(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate([b[k] for b in self.blocks]) for k in _COLS}


def _home(rng: np.random.Generator, m: int, countries: list[str] | None = None):
    if countries is None:
        c = rng.choice(len(COUNTRY_CODES), size=m, p=COUNTRY_P)
    else:
        c = np.asarray([COUNTRY_CODES.index(x) for x in countries])[
            rng.integers(0, len(countries), m)
        ]
    tz = np.array([COUNTRIES[i][2][rng.integers(0, len(COUNTRIES[i][2]))] for i in c], float)
    return c, tz


def _clients(rng: np.random.Generator, m: int, human: bool = True) -> np.ndarray:
    names, p = (HUMAN_CLIENTS, HUMAN_CLIENT_P) if human else (SDK_CLIENTS, SDK_CLIENT_P)
    pick = rng.choice(len(names), size=m, p=p / p.sum())
    return np.asarray([CI[x] for x in names])[pick]


def _residential_pools(
    net: Internet,
    rng: np.random.Generator,
    country: np.ndarray,
    lo: int = 1,
    hi: int = 3,
    v6: float = 0.15,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-account home IPs (1-3, dynamic addresses) from an ISP of the home country."""
    m = len(country)
    k = rng.integers(lo, hi + 1, m)
    isp = np.array([net.residential[int(c)][rng.integers(0, 2)] for c in country], dtype=np.int64)
    rep = np.repeat(isp, k)
    use6 = rng.random(m) < v6
    off = np.empty(m, dtype=np.int64)
    start4 = net.add(rep[~np.repeat(use6, k)])
    start6 = net.add_v6(rep[np.repeat(use6, k)]) if use6.any() else 0
    c4 = np.cumsum(np.where(use6, 0, k)) - np.where(use6, 0, k)
    c6 = np.cumsum(np.where(use6, k, 0)) - np.where(use6, k, 0)
    off[~use6] = start4 + c4[~use6]
    off[use6] = start6 + c6[use6]
    return off, k


def _age(rng: np.random.Generator, m: int, lo: float = 15, hi: float = 900) -> np.ndarray:
    return -np.exp(rng.uniform(np.log(lo), np.log(hi), m))


def _scaled(n: int, per: float, lo: int = 1) -> int:
    return max(lo, int(round(n / per)))


class _Ctx:
    """Shared state of one population build: generators, internet, clients, accounts, groups."""

    def __init__(self, n_accounts: int, days: int, seed: int, activity: float):
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
        self.N = int(n_accounts)
        self.days = days
        self.seed = seed
        self.activity = activity
        self.net = Internet(self.rng)
        self.clients = ClientTable.standard()
        self.b = _Builder(self.rng)
        self.groups: list[Group] = []
        self.release_t = (np.floor(days / 2) + 17 / 24) * 86400.0 if days >= 2 else days * 43200.0
        self.cg_off = np.zeros(0, dtype=np.int64)
        self.cg_n = np.zeros(0, dtype=np.int64)

    def group(
        self,
        name: str,
        style: str,
        kind: str,
        desc: str,
        lookalike: str | None = None,
        variant: str | None = None,
        **params: Any,
    ) -> Group:
        g = Group(name, style, kind, desc, params, lookalike=lookalike, variant=variant)
        self.groups.append(g)
        return g

    def attach(self, g: Group, idx: np.ndarray) -> None:
        g.accounts = np.concatenate([g.accounts, idx])

    def gi(self, g: Group) -> int:
        return self.groups.index(g)

    def favs(self, m: int) -> dict[str, np.ndarray]:
        return {
            "fav1": self.rng.choice(len(P.TOPICS), m, p=P.TOPIC_P),
            "fav2": self.rng.choice(len(P.TOPICS), m, p=P.TOPIC_P),
        }

    def human_rates(self, m: int, median: float = 2.5, sigma: float = 1.2) -> dict[str, Any]:
        rate = median * np.exp(sigma * self.rng.standard_normal(m)) * self.activity
        return {"rate": np.minimum(rate, 600), "p_active": self.rng.beta(1.2, 2.3, m)}

    def dc_pool(self, lo: int, hi: int | None = None) -> tuple[int, int]:
        """A few hosts of one /24 of a random datacenter ASN: (offset, count)."""
        net, rng = self.net, self.rng
        asn = net.datacenter[int(rng.integers(0, len(net.datacenter)))]
        base = net.block24(asn)
        n = lo if hi is None else int(rng.integers(lo, hi))
        off = net.add_block(asn, base, n)
        return off, _last_len(net)


# ---- benign hard cases -------------------------------------------------------------------


def _university_nat(ctx: _Ctx) -> None:
    rng, net, b, N = ctx.rng, ctx.net, ctx.b, ctx.N
    nat_cap = max(0.06 * N, min(100, N / 10))
    for u in range(_scaled(N, 8000)):
        m = int(min(rng.uniform(150, 450), nat_cap))
        c, tz = _home(rng, 1)
        c, tz = np.full(m, c[0]), np.full(m, tz[0])
        g = ctx.group(
            f"university_nat_{u + 1}",
            "human",
            "hard_case",
            "University campus NAT: hundreds of student accounts on 1-3 egress IPs "
            "(education ASN), homework bursts before deadlines.",
            profile="student",
            week="student",
            families=[3, 2, 1, 1, 0, 1, 0, 6, 6],
            real_p=0.5,
            lookalike="university_nat",
            variant="campus",
            deadlines=sorted(rng.choice(7, 2, replace=False).tolist()),
            burst_frac=0.4,
        )
        asn = net.new_asn("education", int(c[0]))
        nat = net.add_block(asn, net.block24(asn), int(rng.integers(1, 4)))
        nat_n = _last_len(net)
        home_off, home_n = _residential_pools(net, rng, c)
        idx = b.add(
            m,
            group=ctx.gi(g),
            signup=np.where(rng.random(m) < 0.7, 1, 0),
            created=_age(rng, m, 3, 1200),
            pay=np.where(rng.random(m) < 0.5, -1, -2),
            country=c,
            tz=tz,
            client1=_clients(rng, m),
            client2=_clients(rng, m),
            client2_p=0.3,
            p1_off=nat,
            p1_n=nat_n,
            p2_off=home_off,
            p2_n=home_n,
            p2_p=0.3,
            model=0,
            adopt=rng.beta(0.5, 4, m),
            step_p=0.2,
            **ctx.human_rates(m, 2.0),
            **ctx.favs(m),
        )
        ctx.attach(g, idx)


def _corporate_nat(ctx: _Ctx) -> None:
    rng, net, b, N = ctx.rng, ctx.net, ctx.b, ctx.N
    for k in range(_scaled(N, 10000)):
        m = int(min(rng.uniform(100, 300), max(0.05 * N, min(100, N / 10))))
        c, tz = _home(rng, 1, ["US", "GB", "DE", "IN", "FR", "JP", "CA"])
        c, tz = np.full(m, c[0]), np.full(m, tz[0])
        g = ctx.group(
            f"corporate_nat_{k + 1}",
            "human",
            "hard_case",
            "Company office NAT: 100-300 employees on 1-2 IPs (business ASN), one org and "
            "one company card for most seats, office hours.",
            profile="work",
            week="work",
            families=[3, 4, 2, 0, 1, 2, 0, 3, 0],
            real_p=0.6,
            lookalike="corporate_nat",
            variant="office",
        )
        asn = net.new_asn("business", int(c[0]))
        nat = net.add_block(asn, net.block24(asn), int(rng.integers(1, 3)))
        nat_n = _last_len(net)
        home_off, home_n = _residential_pools(net, rng, c)
        org, card = b.org(), b.card()
        seat = rng.random(m) < 0.85
        client = np.full(m, CI["chrome_win"]) if rng.random() < 0.5 else np.full(m, CI["edge_win"])
        idx = b.add(
            m,
            group=ctx.gi(g),
            org=np.where(seat, org, -1),
            signup=np.where(seat, 4, 0),
            created=_age(rng, m, 5, 700),
            pay=np.where(seat, card, -2),
            country=c,
            tz=tz,
            client1=client,
            client2=_clients(rng, m, human=False),
            client2_p=0.15,
            p1_off=nat,
            p1_n=nat_n,
            p2_off=home_off,
            p2_n=home_n,
            p2_p=0.1,
            rpm=TIER_ORG[0],
            rpd=TIER_ORG[1],
            model=1,
            adopt=rng.beta(0.5, 3, m),
            sys=0,
            **ctx.human_rates(m, 4.0, 0.9),
            **ctx.favs(m),
        )
        ctx.attach(g, idx)


def _corporate_vpn(ctx: _Ctx) -> None:
    """A secure-web-gateway egress shared by employees of several companies."""
    rng, net, b, N = ctx.rng, ctx.net, ctx.b, ctx.N
    m = max(20, round(0.01 * N))
    g = ctx.group(
        "corporate_vpn",
        "human",
        "hard_case",
        "Cloud security proxy egress (proxy ASN) shared by employees of several unrelated "
        "companies; office hours.",
        profile="work",
        week="work",
        families=[3, 4, 2, 0, 1, 2, 0, 3, 0],
        real_p=0.6,
        lookalike="corporate_vpn",
        variant="secure_web_gateway",
    )
    asn = net.proxy[0]
    egress = net.add_block(asn, net.block24(asn), 24)
    egress_n = _last_len(net)
    c, tz = _home(rng, m, ["US", "GB", "DE", "FR", "NL"])
    orgs = np.array([b.org() for _ in range(max(3, N // 4000))])
    org = orgs[rng.integers(0, len(orgs), m)]
    home_off, home_n = _residential_pools(net, rng, c)
    idx = b.add(
        m,
        group=ctx.gi(g),
        org=org,
        signup=4,
        created=_age(rng, m),
        country=c,
        tz=tz,
        client1=_clients(rng, m),
        client2=_clients(rng, m, False),
        client2_p=0.2,
        p1_off=egress,
        p1_n=egress_n,
        p2_off=home_off,
        p2_n=home_n,
        p2_p=0.1,
        model=1,
        rpm=TIER_ORG[0],
        rpd=TIER_ORG[1],
        **ctx.human_rates(m, 4.0, 0.9),
        **ctx.favs(m),
    )
    ctx.attach(g, idx)


def _consumer_vpn(ctx: _Ctx) -> None:
    rng, net, b, N = ctx.rng, ctx.net, ctx.b, ctx.N
    m = max(10, round(0.02 * N))
    g = ctx.group(
        "consumer_vpn",
        "human",
        "hard_case",
        "Privacy VPN users: unrelated individuals sharing a commercial VPN's exit IPs (proxy ASN).",
        profile="human",
        week="human",
        families=[5, 2, 1, 1, 1, 1, 1, 3, 1],
        real_p=0.7,
        lookalike="consumer_vpn",
        variant="commercial_vpn",
    )
    exits = []
    for a in net.proxy[1:3]:
        exits.append((net.add_block(a, net.block24(a), 40), _last_len(net)))
    c, tz = _home(rng, m)
    home_off, home_n = _residential_pools(net, rng, c)
    which = rng.integers(0, len(exits), m)
    idx = b.add(
        m,
        group=ctx.gi(g),
        created=_age(rng, m),
        country=c,
        tz=tz,
        client1=_clients(rng, m),
        client2=_clients(rng, m),
        client2_p=0.2,
        p1_off=np.array([e[0] for e in exits])[which],
        p1_n=np.array([e[1] for e in exits])[which],
        p2_off=home_off,
        p2_n=home_n,
        p2_p=0.25,
        model=rng.integers(0, 3, m),
        adopt=rng.beta(0.5, 3, m),
        **ctx.human_rates(m),
        **ctx.favs(m),
    )
    ctx.attach(g, idx)


def _mobile_cgnat(ctx: _Ctx, include: bool = True) -> None:
    """Carrier CGNAT pools per country (individuals use them too) and their app users."""
    rng, net, b, N = ctx.rng, ctx.net, ctx.b, ctx.N
    m = max(20, round(0.08 * N))
    g = None
    if include:
        g = ctx.group(
            "mobile_cgnat",
            "human",
            "hard_case",
            "Phone users behind carrier-grade NAT: thousands of accounts rotating over a few "
            "dozen carrier IPs (mobile ASN).",
            profile="human",
            week="human",
            families=[5, 2, 1, 2, 1, 1, 2, 1, 1],
            real_p=0.7,
            lookalike="mobile_cgnat",
            variant="carrier_nat",
        )
        c, tz = _home(rng, m)
    cg_off = np.empty(len(COUNTRY_CODES), dtype=np.int64)
    cg_n = np.empty(len(COUNTRY_CODES), dtype=np.int64)
    for ci in range(len(COUNTRY_CODES)):
        a = net.mobile[ci][0]
        cg_off[ci] = net.add(np.full(int(rng.integers(16, 48)), a))
        cg_n[ci] = _last_len(net)
    ctx.cg_off, ctx.cg_n = cg_off, cg_n
    if g is None:
        return
    home_off, home_n = _residential_pools(net, rng, c)
    mob = np.where(rng.random(m) < 0.5, CI["ios_app"], CI["android_app"])
    idx = b.add(
        m,
        group=ctx.gi(g),
        created=_age(rng, m, 2, 900),
        country=c,
        tz=tz,
        client1=mob,
        client2=_clients(rng, m),
        client2_p=0.15,
        p1_off=cg_off[c],
        p1_n=cg_n[c],
        p2_off=home_off,
        p2_n=home_n,
        p2_p=0.2,
        model=0,
        adopt=rng.beta(0.3, 5, m),
        **ctx.human_rates(m, 2.0),
        **ctx.favs(m),
    )
    ctx.attach(g, idx)


def _enterprise_apps(ctx: _Ctx) -> None:
    """One template at huge volume, one org, a few keys."""
    rng, b, N = ctx.rng, ctx.b, ctx.N
    ent_templates = rng.permutation(len(V.ENTERPRISE_TEMPLATES))
    for k in range(_scaled(N, 7000)):
        m = int(rng.integers(1, 4))
        c, tz = _home(rng, 1, ["US", "GB", "DE", "JP", "BR", "IN"])
        tpl = int(ent_templates[k % len(ent_templates)])
        g = ctx.group(
            f"enterprise_app_{k + 1}",
            "enterprise",
            "hard_case",
            "Enterprise integration: one org, 1-3 accounts with several keys, one prompt "
            "template sent at very high volume from cloud servers.",
            lookalike="enterprise_app",
            variant="single_template",
            template=tpl,
            template2=int(ent_templates[(k + 1) % len(ent_templates)]),
            volume=rng.uniform(4000, 11000) * min(1.0, N / 7000) * ctx.activity,  # per day
            tz=float(tz[0]),
        )
        pool, pool_n = ctx.dc_pool(4, 9)
        org, card = b.org(), b.card()
        company = ["Acme", "Northwind", "Globex", "Initech", "Umbrella"][k % 5]
        sysi = b.system(
            f"You are the assistant inside {company} support tools. Follow the output format exactly."
        )
        idx = b.add(
            m,
            group=ctx.gi(g),
            org=org,
            signup=4,
            created=_age(rng, m, 90, 900),
            pay=card,
            country=c[0],
            tz=tz[0],
            client1=CI["requests"] if k % 2 else CI["openai_python"],
            p1_off=pool,
            p1_n=pool_n,
            n_keys=rng.integers(2, 5, m),
            model=0,
            temp=0.0,
            max_tok=256,
            sys=sysi,
            rpm=TIER_ORG[0] * 10,
            rpd=TIER_ORG[1] * 10,
        )
        ctx.attach(g, idx)


def _eval_harnesses(ctx: _Ctx) -> None:
    """Reasoning benchmarks, think step by step, regular cadence."""
    rng, b, N = ctx.rng, ctx.b, ctx.N
    for k in range(_scaled(N, 7000)):
        m = int(rng.integers(3, 7))
        c, tz = _home(rng, 1, ["US", "GB", "FR", "CA", "DE"])
        items = P.benchmark_items(
            np.random.default_rng([ctx.seed, 77, k]),
            int(rng.integers(150, 300)),
            int(rng.integers(40, 120)),
        )
        g = ctx.group(
            f"eval_harness_{k + 1}",
            "harness",
            "hard_case",
            "Research lab evaluation harness: a handful of accounts in one org running a "
            "fixed reasoning benchmark ('think step by step') nightly and on release day, "
            "at a regular cadence from datacenter IPs.",
            lookalike="eval_harness",
            variant="nightly",
            items=items,
            format=int(k % len(V.HARNESS_FORMATS)),
            hour=float(rng.uniform(0, 24)),
            gap=float(rng.uniform(0.6, 2.0)),
            release_delay=float(rng.uniform(1, 8) * 3600),
        )
        pool, pool_n = ctx.dc_pool(4)
        org, card = b.org(), b.card()
        sysi = b.system("You are a careful assistant. Answer the question.")
        idx = b.add(
            m,
            group=ctx.gi(g),
            org=org,
            signup=3,
            created=_age(rng, m, 60, 900),
            pay=card,
            country=c[0],
            tz=tz[0],
            client1=CI["httpx"],
            p1_off=pool,
            p1_n=pool_n,
            n_keys=2,
            model=2,
            temp=0.0,
            max_tok=2048,
            sys=sysi,
            rpm=TIER_ORG[0],
            rpd=TIER_ORG[1],
        )
        ctx.attach(g, idx)


def _data_labelling(ctx: _Ctx) -> None:
    """Many annotator accounts, one org, rubric prompts."""
    rng, net, b, N = ctx.rng, ctx.net, ctx.b, ctx.N
    for k in range(_scaled(N, 10000)):
        m = int(min(rng.uniform(60, 220), max(20, 0.04 * N)))
        c, tz = _home(rng, 1, ["KE", "PH", "IN", "NG", "VN"])
        c, tz = np.full(m, c[0]), np.full(m, tz[0])
        g = ctx.group(
            f"data_labelling_{k + 1}",
            "labelling",
            "hard_case",
            "Data-labelling company: many annotator accounts in one org on one company "
            "card, structured rubric/comparison prompts (grading), office shifts.",
            lookalike="data_labelling",
            variant="annotators",
            profile="work",
            week="labelling",
            templates=sorted(rng.choice(len(V.LABEL_RUBRIC_TEMPLATES), 2, replace=False).tolist()),
        )
        asn = net.new_asn("business", int(c[0]))
        office = net.add_block(asn, net.block24(asn), 2)
        office_n = _last_len(net)
        home_off, home_n = _residential_pools(net, rng, c)
        org, card = b.org(), b.card()
        sysi = b.system("You are an annotation assistant. Be precise and follow the guideline.")
        idx = b.add(
            m,
            group=ctx.gi(g),
            org=org,
            signup=4,
            created=_age(rng, m, 10, 500),
            pay=card,
            country=c,
            tz=tz,
            client1=CI["chrome_win"],
            client2=_clients(rng, m),
            client2_p=0.1,
            p1_off=office,
            p1_n=office_n,
            p2_off=home_off,
            p2_n=home_n,
            p2_p=0.35,
            rate=rng.uniform(25, 60, m) * ctx.activity,
            p_active=0.85,
            model=1,
            temp=0.2,
            sys=sysi,
            rpm=TIER_ORG[0],
            rpd=TIER_ORG[1],
        )
        ctx.attach(g, idx)


def _reseller_account(
    ctx: _Ctx,
    g: Group,
    share: float,
    campaign: int = -1,
    camp_rate: float = 0.0,
    volume_scale: float = 1.0,
) -> np.ndarray:
    """One account relaying many end users (a benign reseller, or a campaign's carrier;
    `camp_rate` campaign requests a day on top of the relayed traffic set its share)."""
    rng, b = ctx.rng, ctx.b
    c, tz = _home(rng, 1, ["US", "SG", "DE", "GB", "NL"])
    volume = rng.uniform(2500, 6000) * min(1.0, ctx.N / 5000) * ctx.activity
    g.params["volume"] = volume * volume_scale
    if camp_rate > 0:
        share = camp_rate / (camp_rate + g.params["volume"])
    pool, pool_n = ctx.dc_pool(3, 8)
    idx = b.add(
        1,
        group=ctx.gi(g),
        campaign=campaign,
        org=b.org(),
        signup=5,
        created=_age(rng, 1, 60, 700),
        country=c[0],
        tz=tz[0],
        client1=CI["go"] if rng.random() < 0.5 else CI["openai_node"],
        p1_off=pool,
        p1_n=pool_n,
        n_keys=int(rng.integers(2, 6)),
        model=1,
        adopt=0.5,
        rpm=TIER_ORG[0] * 5,
        rpd=TIER_ORG[1] * 5,
        share=share,
    )
    ctx.attach(g, idx)
    return idx


def _resellers(ctx: _Ctx) -> None:
    for k in range(_scaled(ctx.N, 5000)):
        g = ctx.group(
            f"reseller_{k + 1}",
            "reseller",
            "hard_case",
            "API reseller: one account relaying thousands of end users' requests from its "
            "servers (datacenter ASN), round the clock, every kind of task.",
            lookalike="reseller",
            variant="api_reseller",
            real_p=0.6,
        )
        _reseller_account(ctx, g, 0.0)


def _developer_apps(ctx: _Ctx) -> None:
    """Small developer integrations on cloud IPs (templated, some cron-driven)."""
    rng, net, b, N = ctx.rng, ctx.net, ctx.b, ctx.N
    m = max(10, round(0.015 * N))
    g = ctx.group(
        "developer_apps",
        "devapp",
        "hard_case",
        "Small developer apps: templated prompts from cloud servers, some on hourly cron batches.",
        lookalike="developer_apps",
        variant="integrations",
    )
    dc = np.asarray(net.datacenter)[rng.integers(0, len(net.datacenter), m)]
    k_ips = rng.integers(1, 4, m)
    off = net.add(np.repeat(dc, k_ips)) + np.cumsum(k_ips) - k_ips
    c, tz = _home(rng, m)
    idx = b.add(
        m,
        group=ctx.gi(g),
        signup=np.where(rng.random(m) < 0.5, 2, 0),
        created=_age(rng, m, 5, 700),
        country=c,
        tz=tz,
        client1=_clients(rng, m, False),
        p1_off=off,
        p1_n=k_ips,
        n_keys=rng.integers(1, 3, m),
        rate=np.exp(rng.uniform(np.log(10), np.log(300), m)) * ctx.activity,
        app_tpl=rng.integers(0, len(V.APP_TEMPLATES), m),
        sub=rng.integers(0, 2, m),
        phase=rng.uniform(0, 3600, m),
        model=rng.integers(0, 3, m),
        temp=rng.choice([0.0, 0.3, 0.7, 1.0], m),
        max_tok=rng.choice([256, 512, 1024], m),
        adopt=rng.beta(1, 3, m),
    )
    ctx.attach(g, idx)


# ---- ordinary individuals and the finishing touches --------------------------------------


def _individuals(ctx: _Ctx) -> np.ndarray:
    """Everyone not in another group: home connections, some on their phone's carrier."""
    rng, b = ctx.rng, ctx.b
    m = max(0, ctx.N - b.n)
    g = ctx.group(
        "individuals",
        "human",
        "benign",
        "Ordinary individuals and developers on home and office connections.",
        profile="human",
        week="human",
        families=[6, 3, 2, 1, 1, 1, 1, 4, 1],
        real_p=0.7,
    )
    c, tz = _home(rng, m)
    home_off, home_n = _residential_pools(ctx.net, rng, c)
    mob_p = np.where(rng.random(m) < 0.3, rng.uniform(0.1, 0.6, m), 0.0)
    new = rng.random(m) < 0.06
    created = np.where(new, rng.uniform(-14, ctx.days * 0.6, m), _age(rng, m, 15, 1500))
    dev = rng.random(m) < 0.25
    cl1 = np.where(dev, _clients(rng, m, False), _clients(rng, m))
    young = created > -14
    idx = b.add(
        m,
        group=ctx.gi(g),
        signup=rng.choice([0, 2, 1], m, p=[0.92, 0.05, 0.03]),
        created=created,
        pay=np.where(rng.random(m) < 0.03, -1, -2),
        country=c,
        tz=tz,
        client1=cl1,
        client2=np.where(dev, _clients(rng, m), CI["ios_app"]),
        client2_p=mob_p,
        p1_off=home_off,
        p1_n=home_n,
        p2_off=ctx.cg_off[c],
        p2_n=ctx.cg_n[c],
        p2_p=mob_p,
        model=rng.choice(3, m, p=[0.45, 0.4, 0.15]),
        adopt=rng.beta(0.6, 3, m),
        temp=np.where(dev, rng.choice([0.0, 0.2, 0.7, 1.0], m), np.nan),
        max_tok=np.where(dev, rng.choice([512, 1024, 4096], m), -1),
        rpm=np.where(young, TIER_NEW[0], TIER_1[0]),
        rpd=np.where(young, TIER_NEW[1], TIER_1[1]),
        **ctx.human_rates(m),
        **ctx.favs(m),
    )
    ctx.attach(g, idx)
    return idx


def _finish(ctx: _Ctx, individuals: np.ndarray) -> Population:
    """Family cards, own orgs and cards for everyone else, TLS fingerprints per client."""
    rng, b = ctx.rng, ctx.b
    cols = b.cols()
    share = individuals[rng.random(len(individuals)) < 0.02]
    if len(share) >= 2:  # family cards: a few individuals share a card with another
        pairs = share[: len(share) // 2 * 2].reshape(-1, 2)
        cards = np.array([b.card() for _ in range(len(pairs))])
        cols["pay"][pairs[:, 0]] = cards
        cols["pay"][pairs[:, 1]] = cards
    cols["org"] = np.where(cols["org"] < 0, b.n_orgs + np.arange(b.n), cols["org"])
    n_orgs = b.n_orgs + b.n
    own = cols["pay"] == -2
    cols["pay"][own] = b.n_cards + np.arange(int(own.sum()))
    n_cards = b.n_cards + int(own.sum())
    # TLS fingerprints consistent with the client library unless a campaign pinned one
    t1 = ctx.clients.pick(rng, cols["client1"])
    cols["tls1"] = np.where(cols["tls1"] < 0, t1, cols["tls1"])
    cols["tls2"] = ctx.clients.pick(rng, cols["client2"])
    # each account's own start in the real-prompt pool (a separate stream: draws above stay put)
    cols["pbase"] = np.random.default_rng([ctx.seed, 3]).integers(0, 1 << 40, b.n)
    return Population(
        cols=cols,
        groups=ctx.groups,
        internet=ctx.net,
        clients=ctx.clients,
        system_prompts=b.sys,
        n_orgs=n_orgs,
        n_cards=n_cards,
        release_t=ctx.release_t,
        days=ctx.days,
        seed=ctx.seed,
    )


def build_population(
    n_accounts: int,
    days: int,
    seed: int,
    campaigns: tuple[str, ...] = tuple(ARCHETYPES),
    reseller_share: float = 0.05,
    activity: float = 1.0,
    wordings: tuple[str, ...] | None = None,
    languages: tuple[str, ...] | None = None,
    lookalikes: tuple[str, ...] = tuple(LOOKALIKES),
    real_prompts: float = 1.0,
) -> Population:
    """Draw the accounts, their networks and clients, the hard-case groups and the campaigns.

    `wordings`/`languages` restrict the campaigns' wording families and languages (None: all);
    `lookalikes` selects the benign look-alike families; `real_prompts` scales the share of
    real ShareGPT prompts that ordinary users and resellers send (0: their templates only;
    chat relays always relay real prompts, English campaigns still quote some)."""
    from distilltrace.traffic.simulate.campaigns import add_campaigns
    from distilltrace.traffic.simulate.langs import LANGUAGES, WORDINGS
    from distilltrace.traffic.simulate.lookalikes import add_lookalikes

    ctx = _Ctx(n_accounts, days, seed, activity)
    sel = set(lookalikes)
    steps = [
        ("university_nat", _university_nat),
        ("corporate_nat", _corporate_nat),
        ("corporate_vpn", _corporate_vpn),
        ("consumer_vpn", _consumer_vpn),
    ]
    for name, step in steps:
        if name in sel:
            step(ctx)
    _mobile_cgnat(ctx, include="mobile_cgnat" in sel)  # its carrier pools serve individuals too
    steps = [
        ("enterprise_app", _enterprise_apps),
        ("eval_harness", _eval_harnesses),
        ("data_labelling", _data_labelling),
        ("reseller", _resellers),
        ("developer_apps", _developer_apps),
    ]
    for name, step in steps:
        if name in sel:
            step(ctx)
    add_lookalikes(ctx, sel)
    add_campaigns(
        ctx,
        campaigns,
        reseller_share,
        tuple(wordings) if wordings is not None else WORDINGS,
        tuple(languages) if languages is not None else LANGUAGES,
    )
    pop = _finish(ctx, _individuals(ctx))
    pop.extra["real_prompts"] = float(real_prompts)
    return pop


def _last_len(net: Internet) -> int:
    return len(net._ent_asn[-1])


def describe(pop: Population) -> dict[str, Any]:
    """Ground truth: campaigns (id, archetype, wording, language, accounts) and groups (hard
    cases with their look-alike family and variant)."""
    out: dict[str, Any] = {"campaigns": [], "groups": []}
    for g in pop.groups:
        d: dict[str, Any] = {"name": g.name, "kind": g.kind, "description": g.description}
        d["n_accounts"] = int(len(g.accounts))
        if g.kind == "campaign":
            d.update(id=g.campaign_id, campaign_id=g.campaign_id, archetype=g.archetype)
            spec = g.params.get("wording")
            if spec is not None:
                d.update(spec.describe())
            if g.archetype in ("reseller_mixed", "reseller_agentic"):
                d["share"] = float(pop.cols["share"][g.accounts].max())
            out["campaigns"].append(d)
        else:
            if g.lookalike:
                d.update(lookalike=g.lookalike, variant=g.variant)
            if "language" in g.params:
                d["language"] = g.params["language"]
            out["groups"].append(d)
    return out
