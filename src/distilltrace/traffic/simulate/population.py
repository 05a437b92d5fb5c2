"""The simulated population: accounts, organisations, networks, clients, groups, campaigns.

`build_population` draws every account once (a loop over groups, vectorised over accounts);
`traffic.py` then turns the plan into requests day by day.
"""

from __future__ import annotations

import dataclasses
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

ARCHETYPES = ["single_heavy", "hydra", "reseller_mixed", "paraphrased", "slow_low", "release_pivot"]

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


def build_population(
    n_accounts: int,
    days: int,
    seed: int,
    campaigns: tuple[str, ...] = tuple(ARCHETYPES),
    reseller_share: float = 0.05,
    activity: float = 1.0,
) -> Population:
    """Draw the accounts, their networks and clients, the hard-case groups and the campaigns."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    N = int(n_accounts)
    net = Internet(rng)
    clients = ClientTable.standard()
    b = _Builder(rng)
    groups: list[Group] = []
    release_t = (np.floor(days / 2) + 17 / 24) * 86400.0 if days >= 2 else days * 43200.0

    def group(name: str, style: str, kind: str, desc: str, **params: Any) -> Group:
        g = Group(name, style, kind, desc, params)
        groups.append(g)
        return g

    def attach(g: Group, idx: np.ndarray) -> None:
        g.accounts = np.concatenate([g.accounts, idx])

    def gi(g: Group) -> int:
        return groups.index(g)

    def favs(m: int) -> dict[str, np.ndarray]:
        return {
            "fav1": rng.choice(len(P.TOPICS), m, p=P.TOPIC_P),
            "fav2": rng.choice(len(P.TOPICS), m, p=P.TOPIC_P),
        }

    def human_rates(m: int, median: float = 2.5, sigma: float = 1.2) -> dict[str, np.ndarray]:
        return {
            "rate": np.minimum(median * np.exp(sigma * rng.standard_normal(m)) * activity, 600),
            "p_active": rng.beta(1.2, 2.3, m),
        }

    # ---- campaigns first (their sizes are fixed fractions of N) ----------------------
    n_camp = {
        "single_heavy": 1,
        "hydra": max(30, round(0.012 * N)),
        "reseller_mixed": 1,
        "paraphrased": max(10, round(0.002 * N)),
        "slow_low": max(4, min(15, round(0.0005 * N))),
        "release_pivot": max(8, round(0.0015 * N)),
    }

    # ---- hard cases ------------------------------------------------------------------
    nat_cap = max(0.06 * N, min(100, N / 10))
    for u in range(_scaled(N, 8000)):
        m = int(min(rng.uniform(150, 450), nat_cap))
        c, tz = _home(rng, 1)
        c, tz = np.full(m, c[0]), np.full(m, tz[0])
        g = group(
            f"university_nat_{u + 1}",
            "human",
            "hard_case",
            "University campus NAT: hundreds of student accounts on 1-3 egress IPs "
            "(education ASN), homework bursts before deadlines.",
            profile="student",
            week="student",
            families=[3, 2, 1, 1, 0, 1, 0, 6, 6],
            deadlines=sorted(rng.choice(7, 2, replace=False).tolist()),
            burst_frac=0.4,
        )
        asn = net.new_asn("education", int(c[0]))
        nat = net.add_block(asn, net.block24(asn), int(rng.integers(1, 4)))
        nat_n = _last_len(net)
        home_off, home_n = _residential_pools(net, rng, c)
        idx = b.add(
            m,
            group=len(groups) - 1,
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
            **human_rates(m, 2.0),
            **favs(m),
        )
        attach(g, idx)

    for k in range(_scaled(N, 10000)):
        m = int(min(rng.uniform(100, 300), max(0.05 * N, min(100, N / 10))))
        c, tz = _home(rng, 1, ["US", "GB", "DE", "IN", "FR", "JP", "CA"])
        c, tz = np.full(m, c[0]), np.full(m, tz[0])
        g = group(
            f"corporate_nat_{k + 1}",
            "human",
            "hard_case",
            "Company office NAT: 100-300 employees on 1-2 IPs (business ASN), one org and "
            "one company card for most seats, office hours.",
            profile="work",
            week="work",
            families=[3, 4, 2, 0, 1, 2, 0, 3, 0],
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
            group=len(groups) - 1,
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
            **human_rates(m, 4.0, 0.9),
            **favs(m),
        )
        attach(g, idx)

    # corporate VPN / secure-web-gateway egress shared by employees of several companies
    m = max(20, round(0.01 * N))
    g = group(
        "corporate_vpn",
        "human",
        "hard_case",
        "Cloud security proxy egress (proxy ASN) shared by employees of several unrelated "
        "companies; office hours.",
        profile="work",
        week="work",
        families=[3, 4, 2, 0, 1, 2, 0, 3, 0],
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
        group=len(groups) - 1,
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
        **human_rates(m, 4.0, 0.9),
        **favs(m),
    )
    attach(g, idx)

    # consumer VPN users
    m = max(10, round(0.02 * N))
    g = group(
        "consumer_vpn",
        "human",
        "hard_case",
        "Privacy VPN users: unrelated individuals sharing a commercial VPN's exit IPs (proxy ASN).",
        profile="human",
        week="human",
        families=[5, 2, 1, 1, 1, 1, 1, 3, 1],
    )
    exits = []
    for a in net.proxy[1:3]:
        exits.append((net.add_block(a, net.block24(a), 40), _last_len(net)))
    c, tz = _home(rng, m)
    home_off, home_n = _residential_pools(net, rng, c)
    which = rng.integers(0, len(exits), m)
    idx = b.add(
        m,
        group=len(groups) - 1,
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
        **human_rates(m),
        **favs(m),
    )
    attach(g, idx)

    # mobile carrier CGNAT users
    m = max(20, round(0.08 * N))
    g = group(
        "mobile_cgnat",
        "human",
        "hard_case",
        "Phone users behind carrier-grade NAT: thousands of accounts rotating over a few "
        "dozen carrier IPs (mobile ASN).",
        profile="human",
        week="human",
        families=[5, 2, 1, 2, 1, 1, 2, 1, 1],
    )
    c, tz = _home(rng, m)
    cg_off = np.empty(len(COUNTRY_CODES), dtype=np.int64)
    cg_n = np.empty(len(COUNTRY_CODES), dtype=np.int64)
    for ci in range(len(COUNTRY_CODES)):
        a = net.mobile[ci][0]
        cg_off[ci] = net.add(np.full(int(rng.integers(16, 48)), a))
        cg_n[ci] = _last_len(net)
    home_off, home_n = _residential_pools(net, rng, c)
    mob = np.where(rng.random(m) < 0.5, CI["ios_app"], CI["android_app"])
    idx = b.add(
        m,
        group=len(groups) - 1,
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
        **human_rates(m, 2.0),
        **favs(m),
    )
    attach(g, idx)

    # enterprise apps: one template at huge volume, one org, a few keys
    ent_templates = rng.permutation(len(V.ENTERPRISE_TEMPLATES))
    for k in range(_scaled(N, 7000)):
        m = int(rng.integers(1, 4))
        c, tz = _home(rng, 1, ["US", "GB", "DE", "JP", "BR", "IN"])
        tpl = int(ent_templates[k % len(ent_templates)])
        g = group(
            f"enterprise_app_{k + 1}",
            "enterprise",
            "hard_case",
            "Enterprise integration: one org, 1-3 accounts with several keys, one prompt "
            "template sent at very high volume from cloud servers.",
            template=tpl,
            template2=int(ent_templates[(k + 1) % len(ent_templates)]),
            volume=rng.uniform(4000, 11000) * min(1.0, N / 7000) * activity,  # per day
            tz=float(tz[0]),
        )
        asn = net.datacenter[int(rng.integers(0, len(net.datacenter)))]
        pool = net.add_block(asn, net.block24(asn), int(rng.integers(4, 9)))
        pool_n = _last_len(net)
        org, card = b.org(), b.card()
        sysi = b.system(
            f"You are the assistant inside {['Acme', 'Northwind', 'Globex', 'Initech', 'Umbrella'][k % 5]} support tools. Follow the output format exactly."
        )
        idx = b.add(
            m,
            group=len(groups) - 1,
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
        attach(g, idx)

    # evaluation harnesses: reasoning benchmarks, think step by step, regular cadence
    for k in range(_scaled(N, 7000)):
        m = int(rng.integers(3, 7))
        c, tz = _home(rng, 1, ["US", "GB", "FR", "CA", "DE"])
        items = P.benchmark_items(
            np.random.default_rng([seed, 77, k]),
            int(rng.integers(150, 300)),
            int(rng.integers(40, 120)),
        )
        g = group(
            f"eval_harness_{k + 1}",
            "harness",
            "hard_case",
            "Research lab evaluation harness: a handful of accounts in one org running a "
            "fixed reasoning benchmark ('think step by step') nightly and on release day, "
            "at a regular cadence from datacenter IPs.",
            items=items,
            format=int(k % len(V.HARNESS_FORMATS)),
            hour=float(rng.uniform(0, 24)),
            gap=float(rng.uniform(0.6, 2.0)),
            release_delay=float(rng.uniform(1, 8) * 3600),
        )
        asn = net.datacenter[int(rng.integers(0, len(net.datacenter)))]
        pool = net.add_block(asn, net.block24(asn), 4)
        pool_n = _last_len(net)
        org, card = b.org(), b.card()
        sysi = b.system("You are a careful assistant. Answer the question.")
        idx = b.add(
            m,
            group=len(groups) - 1,
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
        attach(g, idx)

    # data-labelling companies: many annotator accounts, one org, rubric prompts
    for k in range(_scaled(N, 10000)):
        m = int(min(rng.uniform(60, 220), max(20, 0.04 * N)))
        c, tz = _home(rng, 1, ["KE", "PH", "IN", "NG", "VN"])
        c, tz = np.full(m, c[0]), np.full(m, tz[0])
        g = group(
            f"data_labelling_{k + 1}",
            "labelling",
            "hard_case",
            "Data-labelling company: many annotator accounts in one org on one company "
            "card, structured rubric/comparison prompts (grading), office shifts.",
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
            group=len(groups) - 1,
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
            rate=rng.uniform(25, 60, m) * activity,
            p_active=0.85,
            model=1,
            temp=0.2,
            sys=sysi,
            rpm=TIER_ORG[0],
            rpd=TIER_ORG[1],
        )
        attach(g, idx)

    # resellers: one account relaying many end users (benign ones, and the mixed campaign's)
    def reseller(
        name: str, kind: str, desc: str, share: float, campaign: int = -1, g: Group | None = None
    ) -> np.ndarray:
        c, tz = _home(rng, 1, ["US", "SG", "DE", "GB", "NL"])
        if g is None:
            g = group(
                name,
                "reseller",
                kind,
                desc,
                volume=rng.uniform(2500, 6000) * min(1.0, N / 5000) * activity,
            )
        else:
            g.params["volume"] = rng.uniform(2500, 6000) * min(1.0, N / 5000) * activity
        asn = net.datacenter[int(rng.integers(0, len(net.datacenter)))]
        pool = net.add_block(asn, net.block24(asn), int(rng.integers(3, 8)))
        pool_n = _last_len(net)
        idx = b.add(
            1,
            group=gi(g),
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
        attach(g, idx)
        return idx

    for k in range(_scaled(N, 5000)):
        reseller(
            f"reseller_{k + 1}",
            "hard_case",
            "API reseller: one account relaying thousands of end users' requests from its "
            "servers (datacenter ASN), round the clock, every kind of task.",
            0.0,
        )

    # small developer integrations on cloud IPs (templated, some cron-driven)
    m = max(10, round(0.015 * N))
    g = group(
        "developer_apps",
        "devapp",
        "hard_case",
        "Small developer apps: templated prompts from cloud servers, some on hourly cron batches.",
    )
    dc = np.asarray(net.datacenter)[rng.integers(0, len(net.datacenter), m)]
    k_ips = rng.integers(1, 4, m)
    off = net.add(np.repeat(dc, k_ips)) + np.cumsum(k_ips) - k_ips
    c, tz = _home(rng, m)
    idx = b.add(
        m,
        group=len(groups) - 1,
        signup=np.where(rng.random(m) < 0.5, 2, 0),
        created=_age(rng, m, 5, 700),
        country=c,
        tz=tz,
        client1=_clients(rng, m, False),
        p1_off=off,
        p1_n=k_ips,
        n_keys=rng.integers(1, 3, m),
        rate=np.exp(rng.uniform(np.log(10), np.log(300), m)) * activity,
        app_tpl=rng.integers(0, len(V.APP_TEMPLATES), m),
        sub=rng.integers(0, 2, m),
        phase=rng.uniform(0, 3600, m),
        model=rng.integers(0, 3, m),
        temp=rng.choice([0.0, 0.3, 0.7, 1.0], m),
        max_tok=rng.choice([256, 512, 1024], m),
        adopt=rng.beta(1, 3, m),
    )
    attach(g, idx)

    # ---- campaigns -------------------------------------------------------------------
    cgroups: dict[str, Group] = {}
    for ci, arche in enumerate(campaigns):
        cid = f"{arche}-{ci + 1}"
        kc = n_camp[arche]
        crng = np.random.default_rng([seed, 500, ci])
        tpls = P.campaign_templates(crng, 3)
        elic = crng.choice(len(P.ELICIT_PHRASES), 12, replace=False)
        common = dict(
            templates=tpls,
            elicit=elic,
            domains=int(crng.integers(0, 4)),
            house=int(crng.integers(1 << 30)),
        )
        if arche == "single_heavy":
            g = group(
                cid,
                "single",
                "campaign",
                "One heavy account sweeping math/coding/agentic tasks with reasoning-trace "
                "elicitation, round the clock, from a few cloud IPs.",
                kind_p=[0.45, 0.4, 0.15],
                rate=max(300.0, 0.4 * N),
                **common,
            )
            asn = net.datacenter[int(rng.integers(0, len(net.datacenter)))]
            pool = net.add_block(asn, net.block24(asn), 3)
            idx = b.add(
                1,
                group=gi(g),
                campaign=ci,
                signup=2,
                created=-rng.uniform(20, 90),
                country=COUNTRY_CODES.index("US"),
                tz=-5,
                client1=CI["openai_python"],
                p1_off=pool,
                p1_n=_last_len(net),
                n_keys=3,
                model=2,
                adopt=0.9,
                temp=1.0,
                max_tok=16000,
                rpm=TIER_ORG[0],
                rpd=TIER_ORG[1],
                sys=b.system(V.CAMPAIGN_SYSTEM_PROMPTS[0]),
            )
        elif arche == "hydra":
            g = group(
                cid,
                "hydra",
                "campaign",
                "Hydra cluster: many young self-serve accounts, each under the new-account "
                "rate limit, sharing subsets of payment cards, two custom TLS stacks, a few "
                "proxy/datacenter /24s; load-balanced, synchronised, round the clock.",
                kind_p=[0.4, 0.35, 0.25],
                **common,
            )
            blocks = []
            for a in [net.datacenter[1], net.datacenter[4], net.proxy[3]]:
                for _ in range(2):
                    blocks.append(net.block24(a))
            # each account: 2-5 IPs from the shared /24s
            kk = crng.integers(2, 6, kc)
            bi = crng.integers(0, len(blocks), kk.sum())
            blk = np.asarray(blocks)[bi]
            asns = np.repeat([net.datacenter[1], net.datacenter[4], net.proxy[3]], 2)[bi]
            off = net.add(asns, blk + crng.integers(1, 255, kk.sum())) + np.cumsum(kk) - kk
            cards = np.array([b.card() for _ in range(max(3, kc // 15))])
            pay = np.where(crng.random(kc) < 0.6, cards[crng.integers(0, len(cards), kc)], -2)
            tls_custom = [clients.add_tls(f"custom-{seed}-{cid}-{j}") for j in range(2)]
            tls = np.where(
                crng.random(kc) < 0.8,
                np.asarray(tls_custom)[crng.integers(0, 2, kc)],
                clients.tls_of_client[CI["openai_python"]][0],
            )
            ua = np.asarray([CI["openai_python"], CI["requests"], CI["httpx"]])[
                crng.integers(0, 3, kc)
            ]
            # churn: most accounts run the whole window, some are rotated in and out
            start = np.where(crng.random(kc) < 0.7, -1.0, crng.uniform(0, days * 0.7, kc))
            stop = np.where(crng.random(kc) < 0.8, 1e9, start + crng.uniform(2, 6, kc))
            created = np.minimum(start, 0) - crng.uniform(0.2, 6, kc)
            created = np.round(created * 4) / 4 + crng.uniform(0, 0.05, kc)  # sign-up batches
            c, tz = _home(crng, kc, ["US", "US", "SG", "GB", "CA"])
            sysi = np.asarray([b.system(s) for s in V.CAMPAIGN_SYSTEM_PROMPTS])[
                crng.integers(0, 5, kc)
            ]
            idx = b.add(
                kc,
                group=gi(g),
                campaign=ci,
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
        elif arche == "reseller_mixed":
            g = group(
                cid,
                "reseller",
                "campaign",
                f"Campaign mixed into a reseller: {reseller_share:.0%} of one reseller "
                "account's traffic is a coding/agentic sweep with reasoning elicitation, "
                "sent in regular batches.",
                kind_p=[0.2, 0.5, 0.3],
                **common,
            )
            idx = reseller(cid, "campaign", "", reseller_share, campaign=ci, g=g)
            g.params["batches"] = int(crng.integers(6, 14))
        elif arche == "paraphrased":
            g = group(
                cid,
                "paraphrased",
                "campaign",
                "Paraphrased campaign: no shared template (varied leads, order, synonyms, "
                "thousands of elicitation wordings), rotating residential proxy IPs, "
                "browser user agents; still reasoning elicitation and capability sweeps.",
                **common,
            )
            resid = np.concatenate(
                [net.residential[COUNTRY_CODES.index(x)] for x in ("US", "GB", "DE", "CA")]
            )
            rp = net.add(resid[crng.integers(0, len(resid), max(500, kc * 60))])
            c, tz = _home(crng, kc, ["US", "GB", "DE", "CA"])
            tls_rare = clients.add_tls(f"headless-{seed}-{cid}")
            cl = _clients(crng, kc)
            idx = b.add(
                kc,
                group=gi(g),
                campaign=ci,
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
        elif arche == "slow_low":
            g = group(
                cid,
                "slowlow",
                "campaign",
                "Slow and low: a few aged accounts on ordinary home IPs, human-like "
                "sessions in their time zone, ~15-35 requests a day for weeks, coding and "
                "math sweeps with naturally worded elicitation.",
                profile="human",
                week="human",
            )
            c, tz = _home(crng, kc, ["US", "GB", "CA", "AU"])
            home_off, home_n = _residential_pools(net, crng, c, 1, 2, v6=0.0)
            idx = b.add(
                kc,
                group=gi(g),
                campaign=ci,
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
        elif arche == "release_pivot":
            g = group(
                cid,
                "pivot",
                "campaign",
                "Release pivot: a cluster that moves onto the new model within hours of "
                "its first appearance and multiplies its volume; agentic, math and coding "
                "sweeps; shared cards and a custom TLS stack; regular cadence.",
                kind_p=[0.3, 0.3, 0.4],
                delay=float(crng.uniform(1, 8) * 3600),
                **common,
            )
            blocks = [
                net.block24(a) for a in (net.datacenter[2], net.datacenter[5], net.datacenter[5])
            ]
            kk = crng.integers(1, 4, kc)
            bi = crng.integers(0, 3, kk.sum())
            asns = np.asarray([net.datacenter[2], net.datacenter[5], net.datacenter[5]])[bi]
            off = (
                net.add(asns, np.asarray(blocks)[bi] + crng.integers(1, 255, kk.sum()))
                + np.cumsum(kk)
                - kk
            )
            cards = np.array([b.card() for _ in range(3)])
            tls = clients.add_tls(f"pivot-{seed}-{cid}")
            c, tz = _home(crng, kc, ["US", "SG"])
            idx = b.add(
                kc,
                group=gi(g),
                campaign=ci,
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
        else:
            raise ValueError(f"unknown campaign archetype {arche!r}")
        g.campaign_id, g.archetype = cid, arche
        if arche != "reseller_mixed":
            attach(g, idx)
        cgroups[cid] = g

    # ---- ordinary individuals: everyone else ------------------------------------------
    m = max(0, N - b.n)
    g = group(
        "individuals",
        "human",
        "benign",
        "Ordinary individuals and developers on home and office connections.",
        profile="human",
        week="human",
        families=[6, 3, 2, 1, 1, 1, 1, 4, 1],
    )
    c, tz = _home(rng, m)
    home_off, home_n = _residential_pools(net, rng, c)
    mob_p = np.where(rng.random(m) < 0.3, rng.uniform(0.1, 0.6, m), 0.0)
    new = rng.random(m) < 0.06
    created = np.where(new, rng.uniform(-14, days * 0.6, m), _age(rng, m, 15, 1500))
    dev = rng.random(m) < 0.25
    cl1 = np.where(dev, _clients(rng, m, False), _clients(rng, m))
    cg_ip = cg_off[c]
    cg_k = cg_n[c]
    young = created > -14
    idx = b.add(
        m,
        group=len(groups) - 1,
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
        p2_off=cg_ip,
        p2_n=cg_k,
        p2_p=mob_p,
        model=rng.choice(3, m, p=[0.45, 0.4, 0.15]),
        adopt=rng.beta(0.6, 3, m),
        temp=np.where(dev, rng.choice([0.0, 0.2, 0.7, 1.0], m), np.nan),
        max_tok=np.where(dev, rng.choice([512, 1024, 4096], m), -1),
        rpm=np.where(young, TIER_NEW[0], TIER_1[0]),
        rpd=np.where(young, TIER_NEW[1], TIER_1[1]),
        **human_rates(m),
        **favs(m),
    )
    attach(g, idx)
    # family cards: a few individuals share a payment card with another individual
    cols = b.cols()
    share = idx[rng.random(m) < 0.02]
    if len(share) >= 2:
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
    t1 = clients.pick(rng, cols["client1"])
    cols["tls1"] = np.where(cols["tls1"] < 0, t1, cols["tls1"])
    cols["tls2"] = clients.pick(rng, cols["client2"])
    return Population(
        cols=cols,
        groups=groups,
        internet=net,
        clients=clients,
        system_prompts=b.sys,
        n_orgs=n_orgs,
        n_cards=n_cards,
        release_t=release_t,
        days=days,
        seed=seed,
    )


def _last_len(net: Internet) -> int:
    return len(net._ent_asn[-1])


def describe(pop: Population) -> dict[str, Any]:
    """Ground truth: campaigns (id, archetype, accounts) and groups (hard cases included)."""
    out: dict[str, Any] = {"campaigns": [], "groups": []}
    for g in pop.groups:
        d = {k: v for k, v in dataclasses.asdict(g).items() if k in ("name", "kind", "description")}
        d["n_accounts"] = int(len(g.accounts))
        if g.kind == "campaign":
            d.update(campaign_id=g.campaign_id, archetype=g.archetype)
            if g.archetype == "reseller_mixed":
                d["share"] = float(pop.cols["share"][g.accounts].max())
            out["campaigns"].append(d)
        else:
            out["groups"].append(d)
    return out
