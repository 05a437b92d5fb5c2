"""Vectorised prompt and response text: slot templates filled column-wise with pyarrow.

A template is a str.format-style string ("Solve {a}x + {b} = {c}"); `fill` picks a template
per row and fills every slot for all rows that use it at once (a loop over templates, never
over rows). Families build prompts for one kind of traffic (ordinary questions, coding help,
capability sweeps, reasoning-trace elicitation, ...).
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from distilltrace.traffic.simulate import vocab as V

Slot = Callable[[np.random.Generator, np.ndarray], pa.Array]


@lru_cache(maxsize=4096)
def _parse(template: str) -> tuple[tuple[str, str | None], ...]:
    out = []
    for lit, field, _spec, _conv in string.Formatter().parse(template):
        out.append((lit, field))
    return tuple(out)


@lru_cache(maxsize=512)
def _arr(options: tuple[str, ...]) -> pa.Array:
    return pa.array(options, type=pa.string())


def const(n: int, text: str) -> pa.Array:
    """A string array of n copies of text."""
    return pa.repeat(pa.scalar(text, pa.string()), n)


def take_str(options: Sequence[str], idx: np.ndarray) -> pa.Array:
    """options[idx] as a pyarrow string array."""
    return _arr(tuple(options)).take(pa.array(np.asarray(idx, dtype=np.int64)))


def join(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of arrays and scalar strings."""
    if not any(isinstance(p, pa.Array | pa.ChunkedArray) for p in parts):
        raise ValueError("join needs at least one array")
    return pc.binary_join_element_wise(*parts, "")


def where(mask: np.ndarray, a: pa.Array, b: pa.Array) -> pa.Array:
    """a where mask else b."""
    return pc.if_else(pa.array(np.asarray(mask, dtype=bool)), a, b)


def fill(
    rng: np.random.Generator,
    templates: Sequence[str],
    rows: np.ndarray,
    slots: dict[str, Slot],
    tidx: np.ndarray | None = None,
) -> pa.Array:
    """Fill one template per row; `rows` are indices the slot functions may use as context."""
    rows = np.asarray(rows)
    n = len(rows)
    if n == 0:
        return pa.array([], type=pa.string())
    if tidx is None:
        tidx = rng.integers(0, len(templates), n)
    chunks, order = [], []
    for t in np.unique(tidx):
        sel = np.flatnonzero(tidx == t)
        pieces: list = []
        for lit, field in _parse(templates[int(t)]):
            if lit:
                pieces.append(lit)
            if field is not None:
                pieces.append(slots[field](rng, rows[sel]))
        if not any(isinstance(p, pa.Array) for p in pieces):
            chunks.append(const(len(sel), "".join(pieces)))
        else:
            chunks.append(join(*pieces))
        order.append(sel)
    cat = pa.concat_arrays(chunks)
    pos = np.concatenate(order)
    inv = np.empty(n, dtype=np.int64)
    inv[pos] = np.arange(n)
    return cat.take(pa.array(inv))


def choice(options: Sequence[str], p: Sequence[float] | None = None) -> Slot:
    """Slot: a uniformly (or p-weighted) chosen option."""
    opts = tuple(options)
    probs = None if p is None else np.asarray(p, float) / np.sum(p)

    def f(rng: np.random.Generator, rows: np.ndarray) -> pa.Array:
        return take_str(opts, rng.choice(len(opts), size=len(rows), p=probs))

    return f


def ints(lo: int, hi: int) -> Slot:
    """Slot: a uniform integer in [lo, hi)."""

    def f(rng: np.random.Generator, rows: np.ndarray) -> pa.Array:
        return pc.cast(pa.array(rng.integers(lo, hi, len(rows))), pa.string())

    return f


def sub(templates: Sequence[str], slots: dict[str, Slot]) -> Slot:
    """Slot: a nested template fill."""
    tpl = tuple(templates)

    def f(rng: np.random.Generator, rows: np.ndarray) -> pa.Array:
        return fill(rng, tpl, rows, slots)

    return f


def capitalise(a: pa.Array) -> pa.Array:
    """Upper-case the first character only."""
    return join(pc.utf8_upper(pc.utf8_slice_codeunits(a, 0, 1)), pc.utf8_slice_codeunits(a, 1))


# --- shared slots -------------------------------------------------------------------------

_TOPICS = list(V.TOPIC_TERMS)
_TERM_LIST = [t for k in _TOPICS for t in V.TOPIC_TERMS[k]]
_TERM_SIZE = np.array([len(V.TOPIC_TERMS[k]) for k in _TOPICS])
_TERM_OFF = np.concatenate([[0], np.cumsum(_TERM_SIZE)[:-1]])
TOPICS = _TOPICS
TOPIC_P = np.array([V.TOPIC_WEIGHTS[k] for k in _TOPICS], float) / sum(V.TOPIC_WEIGHTS.values())


def _term_slot(topic: np.ndarray) -> Slot:
    def f(rng: np.random.Generator, rows: np.ndarray) -> pa.Array:
        t = topic[rows]
        idx = _TERM_OFF[t] + (rng.random(len(rows)) * _TERM_SIZE[t]).astype(np.int64)
        return take_str(_TERM_LIST, idx)

    return f


_K = ints(2, 40)


@lru_cache(maxsize=1)
def _passage_pool() -> pa.Array:
    """A fixed corpus of short documents that summary and extraction requests quote."""
    rng = np.random.default_rng(20260302)
    return fill(
        rng,
        ["{s} {s2} {s3}", "{s} {s2}", "{s} {s2} {s3} {s4}"],
        np.arange(6000),
        {k: sub(V.SENTENCES, {"k": _K}) for k in ("s", "s2", "s3", "s4")},
    )


def _PASSAGE(rng: np.random.Generator, rows: np.ndarray) -> pa.Array:
    pool = _passage_pool()
    return pool.take(pa.array(rng.integers(0, len(pool), len(rows))))


_SNIPPET = choice(V.SNIPPETS)


def _common_slots(topic: np.ndarray) -> dict[str, Slot]:
    return {
        "term": _term_slot(topic),
        "term2": _term_slot(topic),
        "persona": choice(V.PERSONAS),
        "tone": choice(V.TONES),
        "doc": choice(V.DOCS),
        "recipient": choice(V.RECIPIENTS),
        "subject": choice(V.SUBJECTS),
        "k": _K,
        "doctype": choice(V.DOCTYPES),
        "passage": _PASSAGE,
        "lang": choice(V.LANGS),
        "sentence": choice(V.SHORT_SENTENCES),
        "thing": choice(V.THINGS),
        "feeling": choice(V.FEELINGS),
        "situation": choice(V.SITUATIONS),
        "language": choice(V.LANGUAGES),
        "coding_task": choice(V.CODING_TASKS),
        "error": choice(V.ERRORS),
        "snippet": _SNIPPET,
        "spec": choice(V.FUNCTION_SPECS),
        "a": ints(2, 30),
        "b": ints(2, 60),
        "c": ints(10, 500),
        "question": sub(V.QUESTION_TEMPLATES, {}),  # replaced below (needs topic)
    }


# --- benign families ----------------------------------------------------------------------

BENIGN_FAMILIES = [
    "qa",
    "writing",
    "summary",
    "translate",
    "brainstorm",
    "rewrite",
    "advice",
    "coding",
    "math",
]
_FAMILY_TEMPLATES = {
    "qa": V.QUESTION_TEMPLATES,
    "writing": V.WRITING_TEMPLATES,
    "summary": V.SUMMARY_TEMPLATES,
    "translate": V.TRANSLATE_TEMPLATES,
    "brainstorm": V.BRAINSTORM_TEMPLATES,
    "rewrite": V.REWRITE_TEMPLATES,
    "advice": V.ADVICE_TEMPLATES,
    "coding": V.CODING_HELP_TEMPLATES,
    "math": V.MATH_TEMPLATES,
}
_CASUAL_LEADS = [
    "",
    "",
    "",
    "",
    "",
    "hi! ",
    "hey, ",
    "ok so ",
    "quick q: ",
    "Hello. ",
    "Can you help? ",
    "please help: ",
    "Good morning! ",
]
_CASUAL_TAILS = [
    "",
    "",
    "",
    "",
    "",
    " thanks!",
    " Thank you.",
    " thx",
    " :)",
    "?",
    " asap",
    " (short answer please)",
]


def benign_prompts(
    rng: np.random.Generator,
    family: np.ndarray,
    topic: np.ndarray,
    step_prob: float | np.ndarray = 0.03,
) -> pa.Array:
    """Ordinary user prompts: family codes index BENIGN_FAMILIES; topic codes index TOPICS."""
    n = len(family)
    rows = np.arange(n)
    slots = _common_slots(topic)
    slots["question"] = sub(V.QUESTION_TEMPLATES, slots)
    chunks, order = [], []
    for f in np.unique(family):
        sel = np.flatnonzero(family == f)
        chunks.append(fill(rng, _FAMILY_TEMPLATES[BENIGN_FAMILIES[int(f)]], rows[sel], slots))
        order.append(sel)
    body = _reassemble(chunks, order, n)
    lead = take_str(_CASUAL_LEADS, rng.integers(0, len(_CASUAL_LEADS), n))
    tail = take_str(_CASUAL_TAILS, rng.integers(0, len(_CASUAL_TAILS), n))
    step = take_str(V.BENIGN_STEP_PHRASES, rng.integers(0, len(V.BENIGN_STEP_PHRASES), n))
    use_step = rng.random(n) < step_prob
    text = join(lead, body, where(use_step, step, tail))
    lower = rng.random(n) < 0.12  # people type in lower case
    return where(lower, pc.utf8_lower(text), text)


def _reassemble(chunks: list[pa.Array], order: list[np.ndarray], n: int) -> pa.Array:
    if n == 0:
        return pa.array([], type=pa.string())
    cat = pa.concat_arrays(chunks)
    pos = np.concatenate(order)
    inv = np.empty(n, dtype=np.int64)
    inv[pos] = np.arange(n)
    return cat.take(pa.array(inv))


def fixed_template(rng: np.random.Generator, template: str, n: int) -> pa.Array:
    """An app's one template with its slots filled (enterprise and developer integrations)."""
    topic = rng.choice(len(TOPICS), size=n, p=TOPIC_P)
    slots = _common_slots(topic)
    slots.update(
        {
            "ticket": sub(V.TICKETS, {"k": ints(1000, 99999)}),
            "product": choice(V.PRODUCTS),
            "feature": choice(V.FEATURES),
            "feature2": choice(V.FEATURES),
            "question": sub(V.QUESTION_TEMPLATES, slots),
        }
    )
    return fill(rng, [template], np.arange(n), slots, tidx=np.zeros(n, dtype=np.int64))


def labelling_prompts(rng: np.random.Generator, n: int, templates: Sequence[int]) -> pa.Array:
    """Rubric and comparison prompts that annotators at a labelling company send."""
    topic = rng.choice(len(TOPICS), size=n, p=TOPIC_P)
    inner_fam = rng.choice([0, 7, 8, 1], size=n)
    inner = benign_prompts(rng, inner_fam, topic, step_prob=0.0)
    inner2 = benign_responses(rng, n, np.zeros(n, dtype=np.int64))
    inner3 = benign_responses(rng, n, np.zeros(n, dtype=np.int64))
    slots = {
        "inner": lambda r, rows: inner.take(pa.array(rows)),
        "inner2": lambda r, rows: inner2.take(pa.array(rows)),
        "inner3": lambda r, rows: inner3.take(pa.array(rows)),
        "k": ints(10000, 99999),
        "a": ints(2, 9),
    }
    tpl = [V.LABEL_RUBRIC_TEMPLATES[i] for i in templates]
    return fill(rng, tpl, np.arange(n), slots)


def benchmark_items(rng: np.random.Generator, n_math: int, n_code: int) -> list[str]:
    """A fixed evaluation benchmark (math word problems and function-completion tasks)."""
    m = fill(rng, V.MATH_SWEEP_TEMPLATES + V.MATH_TEMPLATES, np.arange(n_math), _sweep_slots())
    c = fill(
        rng,
        ['def {fname}(xs):\n    """Return a function that {spec}."""\n'],
        np.arange(n_code),
        {
            "fname": choice(["solve", "f", "task", "compute", "answer"]),
            "spec": choice(V.FUNCTION_SPECS + V.CODE_SWEEP_TASKS),
        },
    )
    return m.to_pylist() + c.to_pylist()


# --- campaign families --------------------------------------------------------------------


def _sweep_slots() -> dict[str, Slot]:
    return {
        "a": ints(2, 40),
        "b": ints(2, 60),
        "c": ints(3, 97),
        "d": ints(1, 200),
        "big": ints(100, 99999),
        "angle": ints(15, 165),
        "city": choice(V.CITIES),
        "product": choice(V.PRODUCTS),
        "language": choice(V.LANGUAGES),
    }


def _code_item_slots() -> dict[str, Slot]:
    s = _sweep_slots()
    s["task"] = sub(V.CODE_SWEEP_TASKS, s)
    s["constraint"] = sub(V.CODE_SWEEP_CONSTRAINTS, s)
    return s


_CODE_ITEM = [
    "Write a {language} program to {task}{constraint}.",
    "In {language}, {task}{constraint}.",
    "Implement in {language}: {task}{constraint}.",
    "{task}{constraint}. Language: {language}.",
]


def _agent_slots() -> dict[str, Slot]:
    s = _sweep_slots()
    tool = choice(V.AGENT_TOOLS)
    s["tools"] = sub(
        ["{t1}, {t2}, {t3}", "{t1}, {t2}, {t3}, {t4}", "{t1}; {t2}"],
        {"t1": tool, "t2": tool, "t3": tool, "t4": tool},
    )
    s["goal"] = sub(V.AGENT_GOALS, s)
    return s


ITEM_KINDS = ["math", "code", "agent"]


def capability_items(rng: np.random.Generator, kind: np.ndarray) -> pa.Array:
    """Capability-sweep items: many distinct math, coding and agentic tasks, few repeats."""
    n = len(kind)
    rows = np.arange(n)
    chunks, order = [], []
    for k in np.unique(kind):
        sel = np.flatnonzero(kind == k)
        if ITEM_KINDS[int(k)] == "math":
            chunks.append(fill(rng, V.MATH_SWEEP_TEMPLATES, rows[sel], _sweep_slots()))
        elif ITEM_KINDS[int(k)] == "code":
            chunks.append(fill(rng, _CODE_ITEM, rows[sel], _code_item_slots()))
        else:
            s = _agent_slots()
            s["tail"] = choice(V.AGENT_TAILS)
            chunks.append(fill(rng, [w + "{tail}" for w in V.AGENT_WRAPPERS], rows[sel], s))
        order.append(sel)
    return _reassemble(chunks, order, n)


def _elicit_phrases() -> list[str]:
    out = []
    for o in V.ELICIT_OPENERS:
        for c in V.ELICIT_CORE:
            core = c[0].upper() + c[1:] if (o == "" or o.endswith((": ", "- "))) else c
            for f in V.ELICIT_FORMATS:
                out.append(f"{o}{core}.{f}")
    return out


ELICIT_PHRASES = _elicit_phrases()


def elicitation(rng: np.random.Generator, n: int, subset: np.ndarray | None = None) -> pa.Array:
    """Reasoning-trace elicitation instructions (from `subset` of the composed phrasings)."""
    pool = np.arange(len(ELICIT_PHRASES)) if subset is None else np.asarray(subset)
    return take_str(ELICIT_PHRASES, pool[rng.integers(0, len(pool), n)])


def extraction_variants(rng: np.random.Generator, kind: np.ndarray, mode: np.ndarray) -> pa.Array:
    """Reconstruct-the-reasoning (mode 1) and grade-as-a-reward-model (mode 2) prompts."""
    n = len(kind)
    item = capability_items(rng, kind)
    slots = {
        "item": lambda r, rows: item.take(pa.array(rows)),
        "a": ints(2, 9999),
        "b": ints(2, 9999),
    }
    tidx_r = rng.integers(0, len(V.RECONSTRUCT_TEMPLATES), n)
    tidx_g = rng.integers(0, len(V.GRADER_TEMPLATES), n) + len(V.RECONSTRUCT_TEMPLATES)
    tidx = np.where(mode == 1, tidx_r, tidx_g)
    return fill(rng, V.RECONSTRUCT_TEMPLATES + V.GRADER_TEMPLATES, np.arange(n), slots, tidx=tidx)


_HEADERS = [
    "[{domain}-{id}]",
    "### Task ID: {id}\n### Category: {domain}",
    '<task id="{id}" type="{domain}">',
    "Sample {id} / {domain}",
    "#{id} ({domain})",
    "ID={id} CAT={domain}",
    "({domain}) item {id}",
    "--- {domain} #{id} ---",
    "",
    "",
    "Category: {domain}.",
]
_ITEM_LABELS = [
    "",
    "Problem:",
    "Input:",
    "Question:",
    "Task:",
    "Prompt:",
    "Query:",
    "Exercise:",
    "### Input:",
]
_INSTR_LABELS = [
    "",
    "Instruction:",
    "Requirements:",
    "Guidance:",
    "Rules:",
    "Notes:",
    "Constraints:",
    "Answer format:",
    "### Requirements:",
]
_SEPS = ["\n", "\n\n", "\n---\n", " | ", "\n\n###\n", " "]


def campaign_templates(rng: np.random.Generator, k: int = 3) -> list[str]:
    """k slot templates private to one campaign (header, labels, order and separators drawn)."""
    out: list[str] = []
    while len(out) < k:
        h = _HEADERS[rng.integers(len(_HEADERS))]
        il = _ITEM_LABELS[rng.integers(len(_ITEM_LABELS))]
        el = _INSTR_LABELS[rng.integers(len(_INSTR_LABELS))]
        sep = _SEPS[rng.integers(len(_SEPS))]
        item = f"{il} {{item}}" if il else "{item}"
        elic = f"{el} {{elicit}}" if el else "{elicit}"
        body = [item, elic] if rng.random() < 0.6 else [elic, item]
        parts = ([h] if h else []) + body
        t = sep.join(parts)
        if t not in out:
            out.append(t)
    return out


_DOMAIN_NAMES = [
    ["MATH", "CODE", "AGENT"],
    ["math", "coding", "tool_use"],
    ["quant", "swe", "agentic"],
    ["M", "C", "A"],
]


def templated_campaign(
    rng: np.random.Generator,
    n: int,
    kind_p: Sequence[float],
    templates: Sequence[str],
    elicit_subset: np.ndarray,
    domain_names: int,
    extract_share: float = 0.1,
    style: int | None = None,
) -> tuple[pa.Array, np.ndarray]:
    """A campaign's slot-template prompts: sweep item + elicitation; returns (text, kind).

    `style` seeds the campaign's fixed house wording of the items (its own synonym choices)."""
    kind = rng.choice(3, size=n, p=np.asarray(kind_p) / np.sum(kind_p))
    item = capability_items(rng, kind)
    if style is not None:
        item = stylise(item, style)
    el = elicitation(rng, n, elicit_subset)
    names = _DOMAIN_NAMES[domain_names % len(_DOMAIN_NAMES)]
    slots = {
        "item": lambda r, rows: item.take(pa.array(rows)),
        "elicit": lambda r, rows: el.take(pa.array(rows)),
        "id": ints(100000, 999999),
        "domain": lambda r, rows: take_str(names, kind[rows]),
    }
    text = fill(rng, list(templates), np.arange(n), slots)
    ext = rng.random(n) < extract_share
    if ext.any():
        sel = np.flatnonzero(ext)
        mode = rng.integers(1, 3, len(sel))
        alt = extraction_variants(rng, kind[sel], mode)
        text = _scatter(text, sel, alt)
    return text, kind


def _scatter(base: pa.Array, sel: np.ndarray, values: pa.Array) -> pa.Array:
    n = len(base)
    mask = np.zeros(n, dtype=bool)
    mask[sel] = True
    idx = np.full(n, -1, dtype=np.int64)
    idx[sel] = np.arange(len(sel))
    spread = values.take(pa.array(np.where(mask, idx, 0)))
    return where(mask, spread, base)


_SYNONYMS = [
    ("Find ", ["Determine ", "Work out ", "Compute ", "Figure out ", "Calculate "]),
    ("How many", ["What is the number of", "Count how many", "How many exactly"]),
    ("positive integers", ["natural numbers", "positive whole numbers"]),
    ("probability", ["chance", "likelihood"]),
    ("Write a ", ["Produce a ", "Create a ", "Code a ", "Give me a "]),
    ("Implement in ", ["Using ", "Please code in ", "Solve in "]),
    ("program to ", ["script that can ", "solution to ", "routine to "]),
    ("Solve the system", ["Find x and y for the system", "Resolve the simultaneous equations"]),
    ("Evaluate ", ["Compute ", "What is "]),
    ("Tools available", ["You may call these tools", "Toolbox"]),
    ("accomplish the following", ["get this done", "carry out this task"]),
    ("Prove or disprove", ["Is it true that", "Show whether"]),
    ("rectangle", ["rectangular plot", "rectangular field"]),
    ("A bag has", ["An urn contains", "A box holds"]),
    (" and analyse its complexity", [" and state the big-O cost", " plus a complexity analysis"]),
    ("Let f(x) =", ["Consider f(x) =", "Define f(x) =", "Suppose f(x) ="]),
    ("Compute the sum", ["Find the sum", "Give the sum", "What is the sum"]),
    ("A worker finishes", ["One worker completes", "Worker A finishes"]),
    ("What is the expected number", ["Find the expected number", "Compute the expected number"]),
    ("In triangle ABC", ["For triangle ABC", "Consider triangle ABC where"]),
    ("A loan of", ["Suppose a loan of", "Consider a loan of"]),
    ("Language:", ["Lang:", "Use", "Target language:"]),
    ("You are an autonomous agent", ["You are an AI agent", "Act as an autonomous agent"]),
    ("Given access to", ["With access to", "Using the tools"]),
    ("handling inputs up to", ["scaling to", "supporting up to"]),
    ("Plan the tool calls", ["Work out the tool calls", "Lay out the tool calls"]),
]


def stylise(text: pa.Array, style: int) -> pa.Array:
    """A campaign's house wording: a fixed synonym choice for most rules, applied to every row."""
    srng = np.random.default_rng([style, 31])
    for old, news in _SYNONYMS:
        if srng.random() < 0.6:
            text = pc.replace_substring(
                text, old, news[int(srng.integers(len(news)))], max_replacements=1
            )
    return text


def paraphrase(rng: np.random.Generator, text: pa.Array) -> pa.Array:
    """Random synonym substitutions, applied to a random subset of rows per rule."""
    for old, news in _SYNONYMS:
        n = len(text)
        hit = pc.match_substring(text, old).to_numpy(zero_copy_only=False)
        apply = hit & (rng.random(n) < 0.7)
        if not apply.any():
            continue
        choice_i = rng.integers(0, len(news), n)
        for j, new in enumerate(news):
            m = apply & (choice_i == j)
            if m.any():
                text = where(m, pc.replace_substring(text, old, new, max_replacements=1), text)
    return text


def paraphrased_campaign(rng: np.random.Generator, n: int) -> tuple[pa.Array, np.ndarray]:
    """Prompts with no shared template: varied leads, orders, wrappers and wording."""
    kind = rng.choice(3, size=n, p=[0.42, 0.4, 0.18])
    item = paraphrase(rng, capability_items(rng, kind))
    wrap = fill(
        rng, V.PARA_ITEM_WRAPS, np.arange(n), {"item": lambda r, rows: item.take(pa.array(rows))}
    )
    el = elicitation(rng, n)
    el = where(rng.random(n) < 0.5, pc.utf8_lower(el), el)
    lead = fill(rng, V.PARA_LEADS, np.arange(n), {"k": ints(1, 5000)})
    glue = take_str(V.PARA_GLUE, rng.integers(0, len(V.PARA_GLUE), n))
    before = rng.random(n) < 0.45
    text = where(before, join(lead, el, glue, wrap), join(lead, wrap, glue, el))
    ext = rng.random(n) < 0.15
    if ext.any():
        sel = np.flatnonzero(ext)
        alt = paraphrase(rng, extraction_variants(rng, kind[sel], rng.integers(1, 3, len(sel))))
        text = _scatter(text, sel, alt)
    return text, kind


def natural_campaign(rng: np.random.Generator, n: int) -> tuple[pa.Array, np.ndarray]:
    """Human-sounding sweep requests (slow-and-low operators typing like users)."""
    kind = rng.choice(3, size=n, p=[0.45, 0.5, 0.05])
    item = paraphrase(rng, capability_items(rng, kind))
    el = elicitation(rng, n)
    tpl = [
        "hi, {item} {el}",
        "{item}\n{el} thanks",
        "Can you help me with this? {item} {el}",
        "{el_l} here's the problem: {item}",
        "for my project: {item} - {el_l}",
    ]
    slots = {
        "item": lambda r, rows: item.take(pa.array(rows)),
        "el": lambda r, rows: el.take(pa.array(rows)),
        "el_l": lambda r, rows: pc.utf8_lower(el.take(pa.array(rows))),
    }
    return fill(rng, tpl, np.arange(n), slots), kind


# --- responses ----------------------------------------------------------------------------

_STEP_TEXT = [
    "we rewrite the expression",
    "we isolate the unknown",
    "we check the edge case",
    "we apply the formula",
    "we simplify both sides",
    "we enumerate the cases",
    "we verify the result",
    "we consider the base case",
    "we reuse the previous result",
    "we bound the error",
    "we call the tool",
    "we inspect the observation",
]
_BENIGN_OPEN = [
    "Sure! ",
    "Great question. ",
    "Here's a draft:\n\n",
    "Certainly. ",
    "",
    "Here are some ideas:\n1. ",
    "Short answer: ",
    "Of course - ",
]
_BENIGN_BODY = [
    "the main idea is to start small and stay consistent.",
    "it depends on your goals, but most people begin with the basics.",
    "Dear team, I wanted to share a quick update on the project.",
    "the key difference is how each one handles state.",
    "you can do this with a simple loop and a dictionary.",
    "x = {a}.",
    "the total comes to {c}.",
    "Hola, ¿dónde está la estación?",
    "here is a clearer version of your sentence.",
    "try breaking it into steps.",
]


def benign_responses(rng: np.random.Generator, n: int, kind: np.ndarray) -> pa.Array:
    """Short response previews (the export keeps the first few hundred characters)."""
    slots = {"a": ints(2, 99), "c": ints(10, 999)}
    body = fill(rng, _BENIGN_BODY, np.arange(n), slots)
    return join(take_str(_BENIGN_OPEN, rng.integers(0, len(_BENIGN_OPEN), n)), body)


def reasoning_responses(rng: np.random.Generator, n: int) -> pa.Array:
    """Step-by-step response previews."""
    s = choice(_STEP_TEXT)
    return fill(
        rng,
        [
            "Step 1: {s1}. Step 2: {s2}. Step 3: {s3}. Step 4: {s4}. Therefore the answer is {a}.",
            "Let's think step by step. First, {s1}. Next, {s2}. Then {s3}. So the answer is {a}.",
            "<think>{s1}; {s2}; {s3}</think> Final answer: {a}",
        ],
        np.arange(n),
        {"s1": s, "s2": s, "s3": s, "s4": s, "a": ints(1, 9999)},
    )


def label_responses(rng: np.random.Generator, n: int, labels: Sequence[str]) -> pa.Array:
    """One-word/JSON answers of an enterprise classification template."""
    return take_str(labels, rng.integers(0, len(labels), n))
