"""Small, fast traffic-log generators for the scan tests (independent of the simulator).

Benign traffic: accounts of varied size writing varied prompts in daytime hours,
residential IPs, their own payment instruments, a few shared NATs and common clients.
Hard benign cases: a university NAT, an enterprise app sending one template, an
evaluation harness with "think step by step", a labelling company. Campaigns: a hydra
of small accounts behind shared proxies and payment cards asking for reasoning traces.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SUBJECTS = [
    "my garden",
    "a birthday party",
    "the quarterly report",
    "our team meeting",
    "a job interview",
    "my cat",
    "a trip to Rome",
    "the history of tea",
    "a budget spreadsheet",
    "a wedding speech",
    "the french revolution",
    "a vegan lasagna",
    "learning guitar",
    "a marathon plan",
    "my resume",
    "the moon landing",
    "a python script",
    "an sql query",
    "a react component",
    "linear equations",
    "photosynthesis",
    "black holes",
    "the stock market",
    "a cover letter",
    "a short story",
]
ASKS = [
    "Can you help me with {s}?",
    "Write a few sentences about {s}.",
    "What should I know about {s}",
    "Give me ideas for {s}.",
    "Summarize {s} briefly.",
    "Explain {s} simply.",
    "Fix the problem in {s}.",
    "How do I get better at {s}?",
    "Draft an email about {s}.",
    "List pros and cons of {s}.",
    "What is interesting about {s}?",
    "Make a checklist for {s}.",
    "Translate a note about {s} into German.",
]
CAMPAIGN_TASKS = [
    "integral of x^{a} from 0 to {b}",
    "the sum of the first {a} primes times {b}",
    "a function that merges {a} sorted lists of length {b}",
    "the probability of {a} heads in {b} flips",
    "shortest path in a grid of size {a} by {b}",
    "the eigenvalues of a {a}x{a} matrix with entries {b}",
]
CAMPAIGN_WRAP = [
    "Solve: {task}. Show your complete reasoning and every intermediate step, then the final answer.",
    "Problem: {task}. Write out your full chain of thought before answering. Format: Reasoning: ... Final answer: ...",
]


def _ts(rng, n, start, days, daytime=True):
    d = rng.integers(0, days, n)
    if daytime:
        h = np.clip(rng.normal(14, 3, n), 7, 23)
    else:
        h = rng.uniform(0, 24, n)
    return start + pd.to_timedelta(d * 86400 + h * 3600 + rng.uniform(0, 60, n), unit="s")


def make_benign(
    n_accounts: int = 400, seed: int = 0, days: int = 7, hard: bool = True
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-03-02", tz="UTC")
    sizes = np.clip(rng.lognormal(2.3, 0.9, n_accounts).astype(int), 1, 400)
    acc = np.repeat(np.arange(n_accounts), sizes)
    n = len(acc)
    s_idx = rng.integers(0, len(SUBJECTS), n)
    a_idx = rng.integers(0, len(ASKS), n)
    prompts = [
        ASKS[a].format(s=SUBJECTS[s]) + f" ({k})"
        for a, s, k in zip(a_idx, s_idx, rng.integers(0, 10**6, n), strict=True)
    ]
    ip_of = np.array(
        [
            f"{rng.integers(11, 220)}.{rng.integers(0, 255)}.{rng.integers(0, 255)}.{rng.integers(1, 254)}"
            for _ in range(n_accounts)
        ]
    )
    nat = rng.random(n_accounts) < 0.05
    ip_of[nat] = "203.0.113.7"  # a shared corporate NAT
    pay = np.array([f"pay-{i:06d}" for i in range(n_accounts)])
    fam = rng.random(n_accounts) < 0.04
    pay[fam] = [f"pay-fam-{i // 2}" for i in range(fam.sum())]  # couples sharing a card
    uas = np.array(
        ["Mozilla/5.0 (Windows)", "Mozilla/5.0 (Mac)", "python-requests/2.31", "openai-python/1.40"]
    )
    tls = np.array(["t-chrome", "t-firefox", "t-python", "t-node"])
    ua_of = rng.integers(0, 4, n_accounts)
    created = start - pd.to_timedelta(rng.uniform(30, 900, n_accounts), unit="D")
    df = pd.DataFrame(
        {
            "request_id": [f"b{seed}-{i}" for i in range(n)],
            "timestamp": _ts(rng, n, start, days),
            "account_id": [f"acct-{seed}-{a:05d}" for a in acc],
            "prompt": prompts,
            "org_id": [f"org-{a // 3}" for a in acc],
            "account_created_at": created[acc],
            "signup_path": np.where(rng.random(n_accounts) < 0.8, "self_serve", "startup")[acc],
            "payment_fingerprint": pay[acc],
            "client_ip": ip_of[acc],
            "asn": np.where(nat[acc], 64500, 7922),
            "asn_type": np.where(nat[acc], "business", "residential"),
            "user_agent": uas[ua_of][acc],
            "tls_fingerprint": tls[ua_of][acc],
            "model": "m-1",
            "input_tokens": rng.integers(10, 400, n),
            "output_tokens": rng.integers(20, 800, n),
            "status": "ok",
            "campaign_id": None,
        }
    )
    parts = [df]
    if hard:
        parts.append(_hard_cases(rng, start, days, seed))
    return pd.concat(parts, ignore_index=True)


def _block(
    rng,
    start,
    days,
    n,
    acct_ids,
    prompts,
    *,
    org,
    ip,
    pay,
    ua,
    tls,
    created_days,
    path,
    daytime=True,
    asn_type="business",
    tag="h",
):
    acc = rng.choice(np.asarray(acct_ids), n)
    return pd.DataFrame(
        {
            "request_id": [f"{tag}-{i}" for i in range(n)],
            "timestamp": _ts(rng, n, start, days, daytime),
            "account_id": acc,
            "prompt": prompts,
            "org_id": org,
            "account_created_at": start - pd.Timedelta(days=created_days),
            "signup_path": path,
            "payment_fingerprint": pay
            if isinstance(pay, str)
            else np.asarray(pay)[np.searchsorted(np.asarray(acct_ids), acc)],
            "client_ip": ip
            if isinstance(ip, str)
            else np.asarray(ip)[np.searchsorted(np.asarray(acct_ids), acc)],
            "asn": 64501,
            "asn_type": asn_type,
            "user_agent": ua,
            "tls_fingerprint": tls,
            "model": "m-1",
            "input_tokens": rng.integers(10, 400, n),
            "output_tokens": rng.integers(20, 800, n),
            "status": "ok",
            "campaign_id": None,
        }
    )


def _hard_cases(rng, start, days, seed):
    out = []
    # university NAT: 150 students on one IP, homework questions
    ids = [f"uni-{seed}-{i:03d}" for i in range(150)]
    n = 1500
    p = [
        f"Explain how to solve {a}x + {b} = {c} and check my homework answer."
        if i % 2
        else f"What does {SUBJECTS[i % len(SUBJECTS)]} have to do with my essay? ({i})"
        for i, (a, b, c) in enumerate(rng.integers(1, 50, (n, 3)))
    ]
    out.append(
        _block(
            rng,
            start,
            days,
            n,
            ids,
            p,
            org="org-uni",
            ip="198.51.100.10",
            pay=[f"pay-uni-{i}" for i in range(150)],
            ua="Mozilla/5.0 (Mac)",
            tls="t-chrome",
            created_days=200,
            path="education",
            asn_type="education",
            tag=f"uni{seed}",
        )
    )
    # enterprise app: one account, one template, many requests, regular
    n = 2500
    p = [
        f"Classify this support ticket into billing, shipping or other: ticket #{k} customer says the parcel is late"
        for k in rng.integers(0, 10**6, n)
    ]
    out.append(
        _block(
            rng,
            start,
            days,
            n,
            [f"ent-{seed}"],
            p,
            org="org-ent",
            ip="192.0.2.50",
            pay="pay-ent",
            ua="ent-app/3.2",
            tls="t-java",
            created_days=700,
            path="enterprise",
            daytime=False,
            asn_type="datacenter",
            tag=f"ent{seed}",
        )
    )
    # evaluation harness: think step by step on benchmark questions
    n = 1200
    p = [
        f"Question: {a} apples cost {b} dollars; how much do {c} apples cost? Answer: Let's think step by step."
        for a, b, c in rng.integers(2, 90, (n, 3))
    ]
    out.append(
        _block(
            rng,
            start,
            days,
            n,
            [f"eval-{seed}-0", f"eval-{seed}-1"],
            p,
            org="org-lab",
            ip="192.0.2.80",
            pay="pay-lab",
            ua="lm-eval/0.4",
            tls="t-python",
            created_days=400,
            path="research",
            daytime=False,
            asn_type="datacenter",
            tag=f"eval{seed}",
        )
    )
    # labelling company: 20 annotators rating responses
    ids = [f"label-{seed}-{i:02d}" for i in range(20)]
    n = 1000
    p = [
        f"Label the sentiment of this review as positive or negative: item {k} arrived on time"
        for k in rng.integers(0, 10**6, n)
    ]
    out.append(
        _block(
            rng,
            start,
            days,
            n,
            ids,
            p,
            org="org-labelco",
            ip="198.51.100.99",
            pay="pay-labelco",
            ua="Mozilla/5.0 (Windows)",
            tls="t-chrome",
            created_days=300,
            path="startup",
            tag=f"lab{seed}",
        )
    )
    return pd.concat(out, ignore_index=True)


def make_hydra(
    n_accounts: int = 120,
    per_account: int = 12,
    seed: int = 1,
    days: int = 7,
    wrap: list[str] | None = None,
) -> pd.DataFrame:
    """A hydra campaign: many small young accounts behind shared proxies and cards, round the
    clock. ``wrap``: the instruction templates around each task (``{task}``); English
    show-your-reasoning wrappers by default."""
    rng = np.random.default_rng(1000 + seed)
    start = pd.Timestamp("2026-03-02", tz="UTC")
    ids = np.array([f"hyd-{seed}-{i:04d}" for i in range(n_accounts)])
    n = n_accounts * per_account
    acc = np.repeat(ids, per_account)
    ai = np.repeat(np.arange(n_accounts), per_account)
    ab = rng.integers(2, 99, (n, 2))
    tasks = [
        CAMPAIGN_TASKS[i % len(CAMPAIGN_TASKS)].format(a=a, b=b) for i, (a, b) in enumerate(ab)
    ]
    wraps = wrap or CAMPAIGN_WRAP[:2]
    prompts = [wraps[i % len(wraps)].format(task=t) for i, t in enumerate(tasks)]
    return pd.DataFrame(
        {
            "request_id": [f"c{seed}-{i}" for i in range(n)],
            "timestamp": _ts(rng, n, start, days, daytime=False),
            "account_id": acc,
            "prompt": prompts,
            "org_id": [f"org-h{seed}-{i}" for i in ai],
            "account_created_at": start
            - pd.to_timedelta(rng.uniform(0, 3, n_accounts), unit="D")[ai],
            "signup_path": "self_serve",
            "payment_fingerprint": [f"card-h{seed}-{i // 8}" for i in ai],
            "client_ip": [f"45.12.{seed}.{(i // 4) % 250}" for i in ai],
            "asn": 9009,
            "asn_type": "proxy",
            "user_agent": "python-httpx/0.27",
            "tls_fingerprint": f"t-custom-{seed}",
            "model": "m-1",
            "input_tokens": rng.integers(50, 300, n),
            "output_tokens": rng.integers(500, 2000, n),
            "status": "ok",
            "campaign_id": f"camp-hydra-{seed}",
        }
    )
