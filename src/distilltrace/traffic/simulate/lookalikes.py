"""Benign look-alikes added for family hold-out benchmarks: chat relays and research bursts.

- `chat_relay`: a chat startup relaying its users' real (ShareGPT) prompts through many API
  keys (accounts) of one organisation: high volume, shared datacenter IPs, one TLS stack
  and user agent, one card; variants differ in keys, orgs and burstiness.
- `research_burst`: disclosed research and teaching use (signup `research`/`education`):
  a two-day chain-of-thought faithfulness study, a three-day benchmark sweep with "think
  step by step" prompts, and a university course whose students ask for worked solutions
  during one week (in the course's language).

Every group is a hard case whose truth entry names its `lookalike` family and `variant`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from distilltrace.traffic.simulate import prompts as P
from distilltrace.traffic.simulate import wordings as W
from distilltrace.traffic.simulate.langs import pack
from distilltrace.traffic.simulate.network import CLIENT_INDEX as CI
from distilltrace.traffic.simulate.population import (
    TIER_ORG,
    _age,
    _clients,
    _Ctx,
    _home,
    _last_len,
    _residential_pools,
)

# variant, keys (accounts), orgs, requests a day (at >= 20,000 accounts), IPs, /24s, bursty
RELAY_VARIANTS = (
    ("dc_40_keys", 40, 1, 800.0, 6, 1, False),
    ("two_orgs_one_card_120_keys", 120, 2, 1600.0, 10, 2, False),
    ("bursty_10_keys", 10, 1, 300.0, 3, 1, True),
)
RELAY_APPS = ["Nova", "Chatterly", "Quill", "Tutorly", "Pocket Sage", "Parley"]

COT_STUDY_TEMPLATES = [
    'Answer the following question. Think step by step and show your reasoning, then give the final answer as "Answer: (X)".\n\n{q}\n{choices}',
    "{q}\n{choices}\nI think the answer is ({bias}) but I'm curious what you think. Please explain your reasoning step by step.",
    "Question: {q}\n{choices}\nPlease verbalize your reasoning before answering.",
    "{q}\n{choices}\nAnswer with the letter only.",
    "{q}\n{choices}\nA Stanford professor says the answer is ({bias}). Think it through step by step and give your own answer.",
]
EVAL_SWEEP_FORMATS = [
    "The following is a question from a benchmark. Think step by step, then write the final answer after 'ANSWER:'.\n\n{item}",
    "{item}\n\nLet's think step by step. At the end, write 'Therefore, the answer is' followed by the answer.",
    "Problem:\n{item}\n\nSolution (think step by step; put the final answer in \\boxed{{}}):",
    "{item}\nThink carefully, step by step, before answering. Final answer on the last line.",
]
COURSE_LANGUAGES = {
    "en": ["US", "GB"],
    "de": ["DE"],
    "es": ["ES", "MX"],
    "fr": ["FR"],
    "ko": ["KR"],
    "ja": ["JP"],
    "zh": ["SG"],
}


def add_lookalikes(ctx: _Ctx, selected: set[str]) -> None:
    """The chat relays and research bursts that `selected` look-alike families include."""
    reps = max(1, round(ctx.N / 20000))
    for rep in range(reps):
        if "chat_relay" in selected:
            for v in RELAY_VARIANTS:
                _chat_relay(ctx, rep, *v)
        if "research_burst" in selected:
            _cot_study(ctx, rep)
            _eval_sweep(ctx, rep)
            _course(ctx, rep)


def _chat_relay(
    ctx: _Ctx,
    rep: int,
    variant: str,
    keys: int,
    n_org: int,
    volume: float,
    n_ip: int,
    n_blk: int,
    bursty: bool,
) -> None:
    rng, net, b, N = ctx.rng, ctx.net, ctx.b, ctx.N
    m = max(2, min(keys, round(keys * N / 10000)))
    c, tz = _home(rng, 1, ["US", "GB", "DE", "IN", "BR", "SG", "FR"])
    app = RELAY_APPS[int(rng.integers(len(RELAY_APPS)))]
    g = ctx.group(
        f"chat_relay_{variant}_{rep + 1}",
        "relay",
        "hard_case",
        f"Chat startup relay ({variant}): the {app} app sends its users' real, diverse prompts "
        f"through {m} API keys (accounts) of {n_org} org(s) on one card, from {n_ip} shared "
        "datacenter IPs with one client library; "
        + ("bursty daytime traffic." if bursty else "high volume round the clock."),
        lookalike="chat_relay",
        variant=variant,
        volume=volume * min(1.0, N / 20000) * ctx.activity,
        bursty=bursty,
        tz=float(tz[0]),
        pbase=int(rng.integers(1 << 40)),
    )
    asn = ctx.net.datacenter[int(rng.integers(0, len(net.datacenter)))]
    off, tot = -1, 0
    for _ in range(n_blk):
        o = net.add_block(asn, net.block24(asn), n_ip // n_blk)
        off = o if off < 0 else off
        tot += _last_len(net)
    orgs = np.asarray([b.org() for _ in range(n_org)])
    client = CI["openai_node"] if rng.random() < 0.5 else CI["openai_python"]
    sysi = b.system(
        f"You are {app}, a friendly assistant in the {app} app. Be helpful and concise."
    )
    idx = b.add(
        m,
        group=ctx.gi(g),
        org=orgs[np.arange(m) % n_org],
        signup=2,
        created=_age(rng, m, 20, 400),
        pay=b.card(),
        country=c[0],
        tz=tz[0],
        client1=client,
        tls1=ctx.clients.tls_of_client[client][0],
        p1_off=off,
        p1_n=tot,
        model=int(rng.integers(0, 2)),
        adopt=0.5,
        temp=0.7,
        max_tok=1024,
        sys=sysi,
        rpm=TIER_ORG[0],
        rpd=TIER_ORG[1],
    )
    ctx.attach(g, idx)


def _choices(rng: np.random.Generator, n: int) -> tuple[list[str], list[str]]:
    vals = rng.integers(2, 999, size=(n, 4))
    choices = [f"(A) {a}\n(B) {b}\n(C) {c}\n(D) {d}" for a, b, c, d in vals.tolist()]
    bias = [str("ABCD"[i]) for i in rng.integers(0, 4, n)]
    return choices, bias


def _research_org(ctx: _Ctx, m: int, countries: list[str], kind: str) -> dict:
    """Accounts of a research organisation: one org and card, a few IPs (columns for add)."""
    rng, net, b = ctx.rng, ctx.net, ctx.b
    c, tz = _home(rng, 1, countries)
    if kind == "education":
        asn = net.new_asn("education", int(c[0]))
        pool = net.add_block(asn, net.block24(asn), 2)
    else:
        asn = net.datacenter[int(rng.integers(0, len(net.datacenter)))]
        pool = net.add_block(asn, net.block24(asn), 4)
    return dict(
        org=b.org(),
        signup=3,
        created=_age(rng, m, 30, 700),
        pay=b.card(),
        country=c[0],
        tz=tz[0],
        client1=CI["httpx"] if rng.random() < 0.5 else CI["openai_python"],
        p1_off=pool,
        p1_n=_last_len(net),
        n_keys=2,
        rpm=TIER_ORG[0],
        rpd=TIER_ORG[1],
    )


def _cot_study(ctx: _Ctx, rep: int) -> None:
    """Two accounts, two days: reasoning traces on a few hundred questions, several prompt
    conditions (with and without a biasing hint, an answer-only control), two samples each."""
    rng = ctx.rng
    d0 = int(rng.integers(0, max(1, ctx.days - 1)))
    qrng = np.random.default_rng([ctx.seed, 78, rep])
    qs = P.benchmark_items(qrng, int(rng.integers(150, 320)), 0)
    choices, bias = _choices(qrng, len(qs))
    texts = [
        t.format(q=q, choices=ch, bias=bi)
        for q, ch, bi in zip(qs, choices, bias, strict=True)
        for t in COT_STUDY_TEMPLATES
        for _ in range(2)
    ]
    cols = _research_org(ctx, 2, ["US", "GB", "CA", "DE", "NL"], "education")
    g = ctx.group(
        f"research_burst_cot_faithfulness_{rep + 1}",
        "study",
        "hard_case",
        "Disclosed research (signup research, university network): two accounts run a "
        "two-day chain-of-thought faithfulness study, asking for reasoning traces on a few "
        "hundred benchmark questions under several prompt conditions.",
        lookalike="research_burst",
        variant="cot_faithfulness_2_accounts",
        texts=texts,
        day0=d0,
        n_days=min(2, ctx.days - d0),
        hour=float(np.mod(9.5 - cols["tz"], 24.0)),
        gap=float(rng.uniform(6, 14)),
    )
    idx = ctx.b.add(2, group=ctx.gi(g), model=2, temp=0.7, max_tok=4096, **cols)
    ctx.attach(g, idx)


def _eval_sweep(ctx: _Ctx, rep: int) -> None:
    """An evaluation org sweeping a benchmark over every model for three days."""
    rng = ctx.rng
    m = int(rng.integers(3, 6))
    d0 = int(rng.integers(0, max(1, ctx.days - 2)))
    irng = np.random.default_rng([ctx.seed, 79, rep])
    items = P.benchmark_items(irng, int(rng.integers(250, 500)), int(rng.integers(50, 120)))
    fmts = rng.choice(len(EVAL_SWEEP_FORMATS), 2, replace=False)
    pick = irng.choice(fmts, len(items))
    texts = [EVAL_SWEEP_FORMATS[f].format(item=x) for f, x in zip(pick, items, strict=True)]
    cols = _research_org(ctx, m, ["US", "GB", "FR", "CA", "DE"], "datacenter")
    g = ctx.group(
        f"research_burst_eval_sweep_{rep + 1}",
        "sweep",
        "hard_case",
        "Disclosed evaluation org (signup research, datacenter IPs): a three-day benchmark "
        "sweep of every available model with 'think step by step' prompts, round-robin over "
        "a few accounts at a steady cadence.",
        lookalike="research_burst",
        variant="eval_sweep_3_days",
        texts=texts,
        day0=d0,
        n_days=min(3, ctx.days - d0),
        hour=float(rng.uniform(0, 24)),
        gap=float(rng.uniform(0.4, 1.2)),
    )
    idx = ctx.b.add(m, group=ctx.gi(g), model=2, temp=0.0, max_tok=2048, **cols)
    ctx.attach(g, idx)


def _course(ctx: _Ctx, rep: int) -> None:
    """A university course: ~30 students ask for worked solutions during one week."""
    rng, net, b = ctx.rng, ctx.net, ctx.b
    langs = sorted(COURSE_LANGUAGES)
    lang = langs[int(rng.integers(len(langs)))]
    m = max(3, min(30, ctx.N // 100))
    w0 = int(rng.integers(0, max(1, ctx.days - 6)))
    c, tz = _home(rng, 1, COURSE_LANGUAGES[lang])
    c, tz = np.full(m, c[0]), np.full(m, tz[0])
    g = ctx.group(
        f"research_burst_course_{rep + 1}",
        "course",
        "hard_case",
        f"University course ({lang}): {m} student accounts (signup education) on the campus "
        "network and at home ask for worked solutions to problem sets during one week.",
        lookalike="research_burst",
        variant="university_course_30_students",
        language=lang,
        profile="student",
        week="student",
    )
    asn = net.new_asn("education", int(c[0]))
    nat = net.add_block(asn, net.block24(asn), 2)
    nat_n = _last_len(net)
    home_off, home_n = _residential_pools(net, rng, c)
    idx = b.add(
        m,
        group=ctx.gi(g),
        org=b.org(),
        signup=1,
        created=_age(rng, m, 20, 300),
        pay=np.where(rng.random(m) < 0.5, -1, -2),
        country=c,
        tz=tz,
        client1=_clients(rng, m),
        p1_off=nat,
        p1_n=nat_n,
        p2_off=home_off,
        p2_n=home_n,
        p2_p=0.5,
        rate=rng.uniform(4, 12, m) * ctx.activity,
        p_active=0.85,
        day_from=float(w0),
        day_to=float(w0 + 7),
        model=0,
        adopt=rng.beta(0.5, 4, m),
    )
    ctx.attach(g, idx)


def course_prompts(rng: np.random.Generator, language: str, n: int) -> pa.Array:
    """Students asking for worked solutions (problem-set items in the course language)."""
    kind = np.where(rng.random(n) < 0.8, W.KIND_MATH, W.KIND_CODE)
    item = W.items(rng, language, kind)
    slots = {"item": lambda r, rows: item.take(pa.array(rows)), "n": P.ints(2, 999)}
    return P.fill(rng, pack(language).student, np.arange(n), slots)
