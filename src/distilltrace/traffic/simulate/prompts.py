"""Vectorised prompt and response text: slot templates filled column-wise with pyarrow.

A template is a str.format-style string ("Solve {a}x + {b} = {c}"); `fill` picks a template
per row and fills every slot for all rows that use it at once (a loop over templates, never
over rows). Families build prompts for one kind of benign traffic (ordinary questions,
coding help, labelling rubrics, benchmark items, ...); campaign prompts are composed in
`wordings.py` from these helpers and the language packs.
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
    if len(chunks) == 1:
        return chunks[0]
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
    if len(chunks) == 1:
        return chunks[0]
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


# --- campaign item helpers (sweeps, synonyms) -----------------------------------------------


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
