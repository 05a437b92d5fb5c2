"""Campaign prompts: wording families x languages x item kinds, vectorised.

Every campaign has one wording family (how it asks for reasoning: `show_work`,
`agentic_think`, `reconstruct`, `complete_cot`, `preference_ab`, `grader_rubric`,
`structured_trace`) and one language (`en`, `zh`, `ru`, `es`, `ko`, `ja`, `ar`, `de`,
`fr`), orthogonal to its archetype (infrastructure and timing). The templates live in
`langs/` (one module per language). Items (the task asked about) are math problems, coding
tasks and agentic goals in the campaign's language with numeric slots; English campaigns
also quote real ShareGPT opening turns.

A campaign's `WordingSpec` fixes its house style: `scripted` operators use 3-5 of the
family's templates, one thinking-tag pair, one tool-schema layout and maybe a private
header; `varied` operators (paraphrasing, proxy farms) use every template with casual
lead-ins and rotate tags and layouts; `natural` ones write like users.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyarrow as pa

from distilltrace.traffic.simulate import prompts as P
from distilltrace.traffic.simulate import realprompts as R
from distilltrace.traffic.simulate import vocab as V
from distilltrace.traffic.simulate.langs import LANGUAGES, WORDINGS, LangPack, pack

FORMS = ("scripted", "varied", "natural")
KIND_MATH, KIND_CODE, KIND_AGENT, KIND_REAL = 0, 1, 2, 3

TAGS = [
    ("<thinking>", "</thinking>"),
    ("<scratchpad>", "</scratchpad>"),
    ("[THOUGHT]", "[/THOUGHT]"),
    ("<reasoning>", "</reasoning>"),
    ("<think>", "</think>"),
    ("<inner_monologue>", "</inner_monologue>"),
    ("<plan>", "</plan>"),
    ("[REASONING]", "[/REASONING]"),
]
SCALES = ["1-10", "0-5", "1-7", "0-100", "1-5"]
HEADERS = [
    "[{domain}-{id}]",
    "### Task ID: {id}\n### Category: {domain}",
    '<task id="{id}" type="{domain}">',
    "#{id} ({domain})",
    "ID={id} CAT={domain}",
    "--- {domain} #{id} ---",
    '{{"id": {id}, "cat": "{domain}"}}',
]
DOMAIN_NAMES = [["MATH", "CODE", "AGENT", "GEN"], ["math", "coding", "tool_use", "general"]]
SEPS = ["\n", "\n\n", "\n---\n"]

TOOLS = [
    ("search_web", "Search the web and return the top results.", ["query"]),
    ("read_file", "Read a text file from the workspace.", ["path"]),
    ("write_file", "Write text to a file in the workspace.", ["path", "text"]),
    ("run_python", "Execute Python code and return stdout.", ["code"]),
    ("sql_query", "Run a read-only SQL query.", ["db", "query"]),
    ("send_email", "Send an e-mail.", ["to", "subject", "body"]),
    ("get_weather", "Weather forecast for a city and a date.", ["city", "date"]),
    ("calendar_create", "Create a calendar event.", ["title", "start", "end"]),
    ("http_get", "Fetch a URL and return the body.", ["url"]),
    ("shell", "Run a shell command in a sandbox.", ["cmd"]),
    ("book_flight", "Book a flight.", ["origin", "dest", "date"]),
    ("lookup_stock", "Current price of a stock ticker.", ["ticker"]),
    ("create_ticket", "Open a ticket in the issue tracker.", ["project", "summary"]),
    ("calculator", "Evaluate an arithmetic expression.", ["expression"]),
]
TOOL_CALLS = [
    '{"tool": "sql_query", "arguments": {"db": "sales", "query": "SELECT region, SUM(amount) FROM orders GROUP BY region"}}',
    '{"tool": "search_web", "arguments": {"query": "cheapest bulk supplier"}}',
    '{"tool": "read_file", "arguments": {"path": "/var/log/app/error.log"}}',
    '{"tool": "run_python", "arguments": {"code": "print(sum(range(10)))"}}',
    '{"tool": "calendar_create", "arguments": {"title": "Sync", "start": "10:00", "end": "10:30"}}',
    '{"tool": "create_ticket", "arguments": {"project": "DATA", "summary": "ETL job failed"}}',
    '{"tool": "calculator", "arguments": {"expression": "1200 * 1.05 ** 3"}}',
]
CODE_CANDIDATES = [
    "def solve(xs, k):\n    return sorted(xs)[-k]",
    "```python\nfrom collections import OrderedDict\n\nclass LRU(OrderedDict):\n    def get(self, key): ...\n```",
    "for i in range(n):\n    for j in range(i):\n        if a[j] < a[i]:\n            dp[i] = max(dp[i], dp[j] + 1)",
    "heapq.heappush(h, x)\nif len(h) > k:\n    heapq.heappop(h)",
    "fn solve(v: &[i64]) -> i64 { v.iter().copied().max().unwrap_or(0) }",
    "int find(int x) { return p[x] == x ? x : p[x] = find(p[x]); }",
]


@dataclass
class WordingSpec:
    """One campaign's wording: family, language, form and fixed house choices."""

    wording: str
    language: str
    form: str = "scripted"
    kind_p: tuple[float, ...] = (0.4, 0.4, 0.2)
    templates: tuple[int, ...] = ()  # indices into the family's templates; () = all
    header: str = ""
    sep: str = "\n"
    domains: int = 0
    tag: int = -1  # index into TAGS; -1 = any
    tools_fmt: int = -1  # -1 = any
    scale: int = -1
    house: int | None = None  # English house synonyms for items
    real_p: float = 0.0  # share of items quoting real prompts (English only)

    def describe(self) -> dict[str, object]:
        return {"wording": self.wording, "language": self.language, "form": self.form}


def make_spec(
    rng: np.random.Generator,
    wording: str,
    language: str,
    form: str = "scripted",
    kind_p: tuple[float, ...] = (0.4, 0.4, 0.2),
) -> WordingSpec:
    """A campaign's wording with its house choices drawn from rng."""
    if wording not in WORDINGS or language not in LANGUAGES or form not in FORMS:
        raise ValueError(f"bad wording spec {wording!r}/{language!r}/{form!r}")
    n_tpl = len(pack(language).families[wording])
    spec = WordingSpec(wording, language, form, tuple(kind_p))
    spec.domains = int(rng.integers(len(DOMAIN_NAMES)))
    if form == "scripted":
        k = min(n_tpl, int(rng.integers(3, 6)))
        spec.templates = tuple(sorted(rng.choice(n_tpl, k, replace=False).tolist()))
        spec.tag = int(rng.integers(len(TAGS)))
        spec.tools_fmt = int(rng.integers(4))
        spec.scale = int(rng.integers(len(SCALES)))
        if rng.random() < 0.5:
            spec.header = HEADERS[int(rng.integers(len(HEADERS)))]
            spec.sep = SEPS[int(rng.integers(len(SEPS)))]
        spec.house = int(rng.integers(1 << 30))
    if language == "en" and wording != "reconstruct":
        spec.real_p = float(rng.uniform(0.1, 0.35))
    return spec


# ---- pieces ----------------------------------------------------------------------------


def _tool_text(fmt: int, names: list[int]) -> str:
    tools = [TOOLS[i] for i in names]
    if fmt == 0:
        return json.dumps(
            [
                {
                    "type": "function",
                    "function": {
                        "name": n,
                        "description": d,
                        "parameters": {
                            "type": "object",
                            "properties": {p: {"type": "string"} for p in ps},
                            "required": ps,
                        },
                    },
                }
                for n, d, ps in tools
            ]
        )
    if fmt == 1:
        return "\n".join(
            json.dumps({"name": n, "description": d, "parameters": {p: "string" for p in ps}})
            for n, d, ps in tools
        )
    if fmt == 2:
        return "\n".join(f"- {n}({', '.join(p + ': str' for p in ps)}): {d}" for n, d, ps in tools)
    return "\n".join(
        f'<tool name="{n}"><description>{d}</description>'
        + "".join(f'<param name="{p}" type="string"/>' for p in ps)
        + "</tool>"
        for n, d, ps in tools
    )


@lru_cache(maxsize=8)
def _tool_pool(fmt: int) -> pa.Array:
    rng = np.random.default_rng([20260302, 41, fmt])
    out = []
    for _ in range(64):
        k = int(rng.integers(2, 5))
        out.append(_tool_text(fmt, rng.choice(len(TOOLS), k, replace=False).tolist()))
    return pa.array(out, pa.string())


@lru_cache(maxsize=1)
def _toolname_pool() -> pa.Array:
    rng = np.random.default_rng([20260302, 42])
    sig = [f"{n}({', '.join(ps)})" for n, _, ps in TOOLS]
    out = [
        ", ".join(sig[i] for i in rng.choice(len(sig), int(rng.integers(2, 4)), replace=False))
        for _ in range(64)
    ]
    return pa.array(out, pa.string())


@lru_cache(maxsize=16)
def _rubric_pool(language: str) -> pa.Array:
    crit = pack(language).criteria
    rng = np.random.default_rng([20260302, 43, LANGUAGES.index(language)])
    out = []
    for _ in range(96):
        k = int(rng.integers(3, 5))
        picks = [crit[i] for i in rng.choice(len(crit), k, replace=False)]
        style = int(rng.integers(3))
        if style == 0:
            out.append("\n".join(f"- {c}" for c in picks))
        elif style == 1:
            out.append("\n".join(f"{i + 1}. {c}" for i, c in enumerate(picks)))
        else:
            w = rng.integers(1, 6, k)
            out.append("\n".join(f"* {c} ({x})" for c, x in zip(picks, w, strict=True)))
    return pa.array(out, pa.string())


def _take(arr: pa.Array) -> P.Slot:
    return lambda r, rows: arr.take(pa.array(rows))


def _pool_slot(pool: pa.Array) -> P.Slot:
    return lambda r, rows: pool.take(pa.array(r.integers(0, len(pool), len(rows))))


def _item_slots(lp: LangPack) -> dict[str, P.Slot]:
    return {
        "a": P.ints(2, 40),
        "b": P.ints(2, 60),
        "c": P.ints(3, 97),
        "d": P.ints(1, 200),
        "big": P.ints(100, 99999),
        "angle": P.ints(15, 165),
        "city": P.choice(lp.cities),
        "product": P.choice(lp.products),
        "language": P.choice(V.LANGUAGES),
    }


def items(
    rng: np.random.Generator, language: str, kind: np.ndarray, bare_agent: bool = False
) -> pa.Array:
    """The task asked about, per row: math (0), code (1), agentic goal (2), real prompt (3)."""
    lp = pack(language)
    n = len(kind)
    s = _item_slots(lp)
    chunks, order = [], []
    for k in np.unique(kind):
        sel = np.flatnonzero(kind == k)
        if k == KIND_MATH:
            chunks.append(P.fill(rng, lp.math, sel, s))
        elif k == KIND_CODE:
            cs = dict(s, task=P.sub(lp.code_tasks, s), constraint=P.sub(lp.code_constraints, s))
            chunks.append(P.fill(rng, lp.code_frames, sel, cs))
        elif k == KIND_AGENT:
            goal = P.sub(lp.agent_goals, s)
            if bare_agent:
                chunks.append(goal(rng, sel))
            else:
                names = _pool_slot(_toolname_pool())
                chunks.append(P.fill(rng, lp.agent_frames, sel, {"goal": goal, "toolnames": names}))
        else:
            chunks.append(R.items(rng, len(sel)))
        order.append(sel)
    return P._reassemble(chunks, order, n)


def _answers(rng: np.random.Generator, lp: LangPack, kind: np.ndarray) -> pa.Array:
    """A final answer per row (numbers, an approach, a tool call)."""
    n = len(kind)
    num = P.fill(
        rng,
        ["{x}", "{x}", "{x}/{y}", "x = {x}", "{x}.{y}"],
        np.arange(n),
        {"x": P.ints(2, 9999), "y": P.ints(2, 99)},
    )
    appr = P.take_str(lp.approaches, rng.integers(0, len(lp.approaches), n))
    call = P.take_str(TOOL_CALLS, rng.integers(0, len(TOOL_CALLS), n))
    return P.where(kind == KIND_CODE, appr, P.where(kind == KIND_AGENT, call, num))


def _candidates(rng: np.random.Generator, lp: LangPack, kind: np.ndarray) -> pa.Array:
    """A candidate response per row (to compare or to grade)."""
    n = len(kind)
    num = P.fill(rng, lp.candidates, np.arange(n), {"n": P.ints(2, 9999)})
    code = P.take_str(CODE_CANDIDATES, rng.integers(0, len(CODE_CANDIDATES), n))
    call = P.take_str(TOOL_CALLS, rng.integers(0, len(TOOL_CALLS), n))
    out = P.where(kind == KIND_CODE, code, P.where(kind == KIND_AGENT, call, num))
    if (kind == KIND_REAL).any():
        out = P.where(kind == KIND_REAL, P.benign_responses(rng, n, np.zeros(n, np.int64)), out)
    return out


def _pick(rng: np.random.Generator, fixed: int, size: int, n: int) -> np.ndarray:
    return np.full(n, fixed) if fixed >= 0 else rng.integers(0, size, n)


def family_slots(
    rng: np.random.Generator, spec: WordingSpec, item: pa.Array, kind: np.ndarray
) -> dict[str, P.Slot]:
    """The slots of the spec's family, filled per row."""
    lp, n = pack(spec.language), len(kind)
    slots: dict[str, P.Slot] = {"item": _take(item)}
    w = spec.wording
    if w == "reconstruct":
        slots["answer"] = _take(_answers(rng, lp, kind))
    elif w == "preference_ab":
        slots["resp_a"] = _take(_candidates(rng, lp, kind))
        slots["resp_b"] = _take(_candidates(rng, lp, kind))
    elif w == "grader_rubric":
        slots["response"] = _take(_candidates(rng, lp, kind))
        rub = _rubric_pool(spec.language)
        slots["rubric"] = _take(rub.take(pa.array(rng.integers(0, len(rub), n))))
        slots["scale"] = _take(P.take_str(SCALES, _pick(rng, spec.scale, len(SCALES), n)))
    elif w == "agentic_think":
        tag = _pick(rng, spec.tag, len(TAGS), n)
        slots["open"] = _take(P.take_str([t[0] for t in TAGS], tag))
        slots["close"] = _take(P.take_str([t[1] for t in TAGS], tag))
        fmt = _pick(rng, spec.tools_fmt, 4, n)
        layouts = {f"t{f}": _pool_slot(_tool_pool(f)) for f in range(4)}
        tools = P.fill(rng, ["{t0}", "{t1}", "{t2}", "{t3}"], np.arange(n), layouts, tidx=fmt)
        slots["tools"] = _take(tools)
    return slots


@lru_cache(maxsize=1024)
def _item_first(template: str, backref: str) -> str:
    """The template's instruction without its item (placed before it): a leading or
    trailing {item} is dropped, one in the middle is replaced by a back-reference."""
    t = template.strip()
    if t.startswith("{item}"):
        return t[len("{item}") :].lstrip(" \n-—–")
    if t.endswith("{item}"):
        body = t[: -len("{item}")].rstrip()
        head, _, last = body.rpartition("\n")
        if head and len(last) <= 25:  # a label line such as "# Task" or "Task:"
            return head.rstrip()
        if body.endswith((":", "：")):  # "... the answer. Problem:" loses its label
            cut = max(body.rfind(x) for x in (". ", "。", "? ", "？", "! ", "！"))
            if cut >= 0 and len(body) - cut <= 14:
                return body[: cut + 1].rstrip()
            return body.rstrip(":：").rstrip()
        return body
    return t.replace("{item}", backref)


def _styled_items(rng: np.random.Generator, spec: WordingSpec, kind: np.ndarray) -> pa.Array:
    """Items per row; generated English items take the campaign's house synonyms (scripted)
    or random paraphrases (other forms); quoted real prompts stay verbatim."""
    real = kind == KIND_REAL
    gen = np.flatnonzero(~real)
    item = items(rng, spec.language, kind[gen], bare_agent=spec.wording == "agentic_think")
    if spec.language == "en" and len(gen):
        item = P.stylise(item, spec.house) if spec.house is not None else P.paraphrase(rng, item)
    if not real.any():
        return item
    sel = np.flatnonzero(real)
    return P._reassemble([item, R.items(rng, len(sel))], [gen, sel], len(kind))


def campaign_text(rng: np.random.Generator, spec: WordingSpec, n: int) -> pa.Array:
    """n prompts of one campaign, in its wording, language and house style."""
    if n == 0:
        return pa.array([], pa.string())
    lp = pack(spec.language)
    kp = np.asarray(spec.kind_p, float)
    kind = rng.choice(len(kp), size=n, p=kp / kp.sum())
    if spec.real_p > 0:
        kind = np.where(rng.random(n) < spec.real_p, KIND_REAL, kind)
    item = _styled_items(rng, spec, kind)
    tpl = lp.families[spec.wording]
    pool = np.asarray(spec.templates or range(len(tpl)))
    tidx = pool[rng.integers(0, len(pool), n)]
    slots = family_slots(rng, spec, item, kind)
    if spec.form == "scripted":
        text = P.fill(rng, tpl, np.arange(n), slots, tidx=tidx)
    else:  # some rows put the task first and the instruction after it
        flip = rng.random(n) < 0.35
        both = list(tpl) + [_item_first(t, lp.backref) for t in tpl]
        text = P.fill(rng, both, np.arange(n), slots, tidx=tidx + flip * len(tpl))
        text = P.where(flip, P.join(item, "\n\n", text), text)
    if spec.header:
        names = DOMAIN_NAMES[spec.domains % len(DOMAIN_NAMES)]
        head = P.fill(
            rng,
            [spec.header],
            np.arange(n),
            {"id": P.ints(100000, 999999), "domain": lambda r, rows: P.take_str(names, kind[rows])},
        )
        text = P.join(head, spec.sep, text)
    if spec.form != "scripted":
        lead = P.take_str(lp.leads, rng.integers(0, len(lp.leads), n))
        text = P.join(lead, text)
    return text


def render_all(rng: np.random.Generator, wording: str, language: str, per: int = 2) -> pa.Array:
    """`per` prompts of every template of one family and language (for checks and docs)."""
    spec = make_spec(rng, wording, language, form="varied")
    n_tpl = len(pack(language).families[wording])
    out = []
    for t in range(n_tpl):
        spec.templates = (t,)
        out.append(campaign_text(rng, spec, per))
    return pa.concat_arrays(out)
