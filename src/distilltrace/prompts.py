"""Instruction prompts shared by the subsystems (distillation sets, provenance probes,
watermark benchmarks): a seeded generator of diverse prompts, and a loader for prompt files.

The generator fills task templates (explanations, math word problems, code requests,
summaries, advice, creative writing, comparisons, lists, how-tos, rewrites) with topic
vocabularies written for this project. Same (n, seed, families), same prompts.
(`distilltrace.distill.prompts` re-exports this module.)
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from distilltrace import jsonl
from distilltrace.errors import InputError


@dataclass(frozen=True)
class Prompt:
    """One instruction prompt and where it came from."""

    text: str
    family: str
    topic: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


# --- vocabularies --------------------------------------------------------------------------

SCIENCE = [
    "photosynthesis",
    "plate tectonics",
    "the water cycle",
    "black holes",
    "vaccines",
    "natural selection",
    "the greenhouse effect",
    "electric circuits",
    "DNA replication",
    "ocean tides",
    "the immune system",
    "nuclear fusion",
    "rainbows",
    "earthquakes",
    "the speed of light",
    "antibiotic resistance",
    "volcanoes",
    "the human heart",
    "magnetism",
    "the periodic table",
    "sound waves",
    "cell division",
    "erosion",
    "the seasons",
    "solar eclipses",
    "fermentation",
    "static electricity",
    "friction",
    "the nitrogen cycle",
    "gravity",
    "entropy",
    "coral reefs",
    "bird migration",
    "the Doppler effect",
    "lightning",
    "radioactive decay",
    "the ozone layer",
]
TECH = [
    "hash tables",
    "recursion",
    "public-key cryptography",
    "TCP handshakes",
    "garbage collection",
    "database indexes",
    "neural networks",
    "version control",
    "DNS",
    "compilers",
    "virtual memory",
    "load balancers",
    "binary search",
    "unit testing",
    "containers",
    "caching",
    "regular expressions",
    "sorting algorithms",
    "HTTP cookies",
    "race conditions",
    "floating-point numbers",
    "message queues",
    "API rate limits",
    "password hashing",
    "linked lists",
    "deadlocks",
    "data compression",
    "event loops",
    "machine learning",
    "spreadsheets",
    "cloud storage",
    "open-source licences",
    "two-factor authentication",
]
SOCIETY = [
    "inflation",
    "the printing press",
    "supply and demand",
    "the Silk Road",
    "democracy",
    "the Industrial Revolution",
    "compound interest",
    "urban planning",
    "public libraries",
    "the Roman aqueducts",
    "minimum wage",
    "the invention of writing",
    "trade tariffs",
    "the history of the bicycle",
    "central banks",
    "the postal system",
    "renewable energy policy",
    "the scientific method",
    "jury trials",
    "the history of maps",
    "social media",
    "museums",
]
EVERYDAY = [
    "cooking rice",
    "saving money",
    "learning a language",
    "public speaking",
    "sleeping well",
    "starting a garden",
    "running a first 5k",
    "moving to a new city",
    "writing a resume",
    "reading more books",
    "organising a small kitchen",
    "keeping houseplants alive",
    "preparing for a job interview",
    "planning a road trip",
    "managing email",
    "taking better photos",
    "learning to swim",
    "budgeting for groceries",
    "making friends as an adult",
    "studying for exams",
    "caring for a puppy",
    "repairing a bicycle tyre",
    "hosting a dinner party",
    "reducing screen time",
    "choosing a laptop",
    "decluttering a closet",
    "staying focused at work",
]
AUDIENCES = [
    "a ten-year-old",
    "a high-school student",
    "a busy manager",
    "a complete beginner",
    "a retired engineer",
    "someone who speaks English as a second language",
    "a curious teenager",
    "a new employee",
    "a skeptical friend",
    "a first-year university student",
]
STYLES = [
    "in two sentences",
    "in one short paragraph",
    "using a simple analogy",
    "step by step",
    "with one concrete example",
    "in plain language",
    "in under fifty words",
    "as a short list",
    "without using jargon",
    "as if telling a story",
]
LANGUAGES = ["Python", "JavaScript", "Rust", "Go", "SQL", "Bash", "Java", "C", "TypeScript", "Ruby"]
CODE_TASKS = [
    "reverses a string",
    "checks whether a number is prime",
    "counts the words in a text file",
    "merges two sorted lists",
    "removes duplicates from a list while keeping order",
    "parses a date in the form YYYY-MM-DD",
    "computes the factorial of a number",
    "finds the largest element in an array",
    "validates an email address (roughly)",
    "reads a CSV file and sums one column",
    "converts Celsius to Fahrenheit",
    "flattens a nested list",
    "returns the n-th Fibonacci number",
    "checks if a string is a palindrome",
    "groups words by their first letter",
    "computes the average of a list of numbers",
    "finds the most common element in a list",
    "splits a list into chunks of size k",
    "counts vowels in a sentence",
    "rotates a matrix by 90 degrees",
    "implements a simple stack",
    "retries a function call up to three times",
    "formats a number with thousands separators",
    "finds all pairs in a list that sum to a target",
    "transposes a table of rows",
]
CODE_FRAMES = [
    "Write a {lang} function that {task}.",
    "Show me {lang} code that {task}, with a short comment on each step.",
    "How would I write a {lang} program that {task}?",
    "Give a minimal {lang} example that {task}, and explain its time complexity.",
    "Write a {lang} snippet that {task}. Keep it under fifteen lines.",
    "I'm new to {lang}. Can you write code that {task} and explain it simply?",
    "Write a unit test in {lang} for a function that {task}.",
]
EXPLAIN_FRAMES = [
    "Explain {topic} to {audience}.",
    "What is {topic}? Answer {style}.",
    "Can you explain how {topic} works {style}?",
    "Why does {topic} matter? Explain it to {audience}.",
    "Describe {topic} {style}.",
    "What are the most common misconceptions about {topic}?",
    "Give me a short introduction to {topic} for {audience}.",
    "What would happen if {topic} did not exist? Explain {style}.",
]
SUMMARY_FRAMES = [
    "Summarize the following text in one sentence:\n\n{passage}",
    "Write a short summary of this note for {audience}:\n\n{passage}",
    "What is the main point of the following paragraph?\n\n{passage}",
    "Condense this into three bullet points:\n\n{passage}",
    "Give a headline for this paragraph:\n\n{passage}",
]
ADVICE_FRAMES = [
    "What are some tips for {topic}?",
    "I'm struggling with {topic}. What should I try first?",
    "Give me a simple plan for {topic} over the next two weeks.",
    "What mistakes do people usually make when {topic}, and how can I avoid them?",
    "My friend asked me for advice on {topic}. What should I tell them, {style}?",
    "How can {audience} get better at {topic}?",
]
CREATIVE_FORMS = [
    "a short poem",
    "a haiku",
    "a limerick",
    "a two-paragraph story",
    "a fable with a moral",
    "a diary entry",
    "a dialogue between two characters",
    "a product description",
    "a letter to a future self",
    "an opening line for a novel",
    "a song chorus",
    "a riddle",
]
CREATIVE_SUBJECTS = [
    "a lighthouse keeper",
    "a lost umbrella",
    "the first snow of winter",
    "a robot learning to paint",
    "a city at dawn",
    "an old library",
    "a cat who runs a bakery",
    "a message in a bottle",
    "a train that never stops",
    "the last day of summer",
    "a forgotten garden",
    "a dragon afraid of heights",
    "a time traveller's breakfast",
    "a quiet mountain village",
    "the moon's day off",
    "a detective who is a squirrel",
    "a map with a missing island",
    "a song nobody remembers",
]
CREATIVE_FRAMES = [
    "Write {form} about {subject}.",
    "Compose {form} about {subject}, {style}.",
    "Write {form} about {subject} for {audience}.",
    "Invent {form} featuring {subject}.",
]
COMPARE_FRAMES = [
    "Compare {a} and {b}. What do they have in common, and how do they differ?",
    "What is the difference between {a} and {b}? Answer {style}.",
    "Which is easier to learn first, {a} or {b}, and why?",
    "Explain {a} and {b} side by side for {audience}.",
]
LIST_FRAMES = [
    "List five facts about {topic}.",
    "Give me three questions a teacher might ask about {topic}.",
    "Name four everyday examples of {topic}.",
    "List the key terms someone should know about {topic}, with one-line definitions.",
    "What are three good books or resources for learning about {topic}?",
]
HOWTO_FRAMES = [
    "How do I get started with {topic}?",
    "Walk me through {topic} {style}.",
    "What tools or materials do I need for {topic}?",
    "Write a checklist for {topic}.",
]
REWRITE_SENTENCES = [
    "the meeting has been moved to thursday because the room was double booked",
    "we regret to inform you that your order will arrive two days later than planned",
    "please remember to turn off the lights and lock the door when you leave the office",
    "the new software update fixes several bugs and makes the app start faster",
    "our team finished the project ahead of schedule thanks to good planning",
    "the library will be closed on monday for the public holiday",
    "i think we should try a different approach because the current one is too slow",
    "the results of the survey show that most people prefer working in the morning",
    "dont forget the report is due at the end of the week and it needs charts",
    "the weather was terrible but the concert went ahead and everyone had fun",
    "customers have complained that the checkout page is confusing",
    "the park volunteers planted two hundred trees along the river last spring",
]
REWRITE_FRAMES = [
    'Rewrite this sentence to sound more formal: "{sentence}"',
    'Fix the grammar and punctuation: "{sentence}"',
    'Make this friendlier: "{sentence}"',
    'Translate this into simple English for {audience}: "{sentence}"',
    'Shorten this without losing the meaning: "{sentence}"',
    'Turn this into a polite email opening: "{sentence}"',
]

# Math word problems: a template with numeric slots, filled with seeded numbers.
PEOPLE = [
    "Maya",
    "Tom",
    "Aisha",
    "Luis",
    "Kenji",
    "Sara",
    "Omar",
    "Elena",
    "Noah",
    "Priya",
    "Ben",
    "Zoe",
]
ITEMS = [
    ("apples", "basket"),
    ("pencils", "box"),
    ("cookies", "jar"),
    ("marbles", "bag"),
    ("stickers", "sheet"),
    ("books", "shelf"),
    ("eggs", "carton"),
    ("cards", "deck"),
    ("tomatoes", "crate"),
    ("buttons", "tin"),
]
MATH_TEMPLATES: list[Callable[[random.Random], tuple[str, str]]] = []


def _math(
    fn: Callable[[random.Random], tuple[str, str]],
) -> Callable[[random.Random], tuple[str, str]]:
    MATH_TEMPLATES.append(fn)
    return fn


@_math
def _m_groups(r: random.Random) -> tuple[str, str]:
    p, (item, cont) = r.choice(PEOPLE), r.choice(ITEMS)
    a, b, c = r.randint(3, 12), r.randint(4, 30), r.randint(2, 40)
    return (
        f"{p} has {a} {cont}s with {b} {item} in each. {p} gives away {c} {item}. "
        f"How many {item} are left? Show your reasoning.",
        "multiplication",
    )


@_math
def _m_speed(r: random.Random) -> tuple[str, str]:
    p = r.choice(PEOPLE)
    v, t = r.choice([30, 40, 45, 50, 60, 72, 80, 90]), r.choice([1.5, 2, 2.5, 3, 4, 0.75])
    return (
        f"{p} drives at {v} km/h for {t} hours. How far does {p} travel? "
        "Then say how long the same trip would take at half the speed.",
        "distance and speed",
    )


@_math
def _m_percent(r: random.Random) -> tuple[str, str]:
    price, pct = r.choice([20, 35, 48, 60, 75, 120, 250, 499]), r.choice([10, 15, 20, 25, 30, 40])
    thing = r.choice(["jacket", "lamp", "bicycle", "backpack", "kettle", "chair", "game"])
    return (
        f"A {thing} costs ${price}. It is on sale for {pct}% off. What is the sale price, "
        "and how much money is saved?",
        "percentages",
    )


@_math
def _m_share(r: random.Random) -> tuple[str, str]:
    p1, p2 = r.sample(PEOPLE, 2)
    total, k1, k2 = r.choice([24, 30, 36, 45, 60, 84, 96]), r.randint(1, 4), r.randint(1, 5)
    return (
        f"{p1} and {p2} share {total} dollars in the ratio {k1}:{k2}. How much does each get? "
        "Explain the steps.",
        "ratios",
    )


@_math
def _m_rect(r: random.Random) -> tuple[str, str]:
    w, h = r.randint(3, 25), r.randint(3, 25)
    place = r.choice(["garden", "room", "playground", "parking lot", "poster", "table"])
    return (
        f"A rectangular {place} is {w} metres by {h} metres. What are its area and perimeter?",
        "area and perimeter",
    )


@_math
def _m_age(r: random.Random) -> tuple[str, str]:
    p1, p2 = r.sample(PEOPLE, 2)
    a, d, y = r.randint(6, 40), r.randint(2, 30), r.randint(2, 15)
    return (
        f"{p1} is {a} years old and {p2} is {d} years older. How old will {p2} be in {y} years, "
        f"and what will the sum of their ages be then?",
        "ages",
    )


@_math
def _m_work(r: random.Random) -> tuple[str, str]:
    n, h = r.randint(2, 9), r.choice([6, 8, 10, 12, 18, 24])
    job = r.choice(
        ["paint a fence", "pack the boxes", "build a wall", "clean the hall", "sort the mail"]
    )
    return (
        f"{n} workers can {job} in {h} hours. Working at the same rate, how long would it take "
        f"{n + r.randint(1, 4)} workers? Assume they work equally fast.",
        "rates",
    )


@_math
def _m_interest(r: random.Random) -> tuple[str, str]:
    p0, rate, yrs = (
        r.choice([500, 1000, 1500, 2000, 5000]),
        r.choice([2, 3, 4, 5, 6]),
        r.randint(2, 5),
    )
    return (
        f"You put ${p0} in a savings account paying {rate}% interest per year, compounded yearly. "
        f"How much is in the account after {yrs} years? Round to the nearest cent.",
        "compound interest",
    )


@_math
def _m_prob(r: random.Random) -> tuple[str, str]:
    red, blue, green = r.randint(1, 9), r.randint(1, 9), r.randint(0, 6)
    return (
        f"A bag holds {red} red, {blue} blue and {green} green marbles. If you pick one at random, "
        "what is the probability that it is not blue? Give the answer as a fraction.",
        "probability",
    )


@_math
def _m_recipe(r: random.Random) -> tuple[str, str]:
    s1, s2 = r.choice([2, 4, 6]), r.choice([3, 5, 8, 9, 10, 12])
    flour, sugar = r.choice([150, 200, 250, 300]), r.choice([50, 75, 100, 120])
    return (
        f"A recipe for {s1} people uses {flour} g of flour and {sugar} g of sugar. "
        f"How much of each is needed for {s2} people?",
        "scaling",
    )


def _passage(r: random.Random) -> tuple[str, str]:
    topic = r.choice(SCIENCE + TECH + SOCIETY)
    opener = r.choice(
        [
            f"Many people have heard of {topic}, but few could explain it clearly.",
            f"Researchers and teachers often disagree about how to introduce {topic}.",
            f"A local group met last week to talk about {topic}.",
            f"The story of {topic} is longer than most people expect.",
        ]
    )
    middle = r.choice(
        [
            "Some argued that the basics should come first, while others wanted to start with examples.",
            "The discussion moved from simple definitions to practical consequences for daily life.",
            "Several speakers pointed out that the details are easy to get wrong.",
            "Over time the ideas changed as new evidence appeared and old assumptions were dropped.",
        ]
    )
    close = r.choice(
        [
            "In the end, most agreed that clear examples help more than long definitions.",
            "The group plans to meet again next month with a short reading list.",
            "The main lesson was that curiosity matters more than memorising terms.",
            "Everyone left with more questions than answers, which they considered a good sign.",
        ]
    )
    return f"{opener} {middle} {close}", topic


SUFFIXES = [
    "Keep it brief.",
    "Use a friendly tone.",
    "Avoid technical terms.",
    "End with a question.",
    "Use at most three sentences.",
    "Include one example.",
    "Be precise.",
    "Use British spelling.",
    "Make it easy to remember.",
    "Start with the most important point.",
    "Please be concise.",
    "Answer as a teacher would.",
    "Write it for a newsletter.",
    "No more than 80 words.",
]

FAMILIES: tuple[str, ...] = (
    "explain",
    "math",
    "code",
    "summary",
    "advice",
    "creative",
    "compare",
    "list",
    "howto",
    "rewrite",
)


def _fill(family: str, r: random.Random) -> tuple[str, str]:
    text, topic = _fill_frame(family, r)
    if family != "math" and r.random() < 0.35:
        text = f"{text} {r.choice(SUFFIXES)}"
    return text, topic


def _fill_frame(family: str, r: random.Random) -> tuple[str, str]:
    aud, sty = r.choice(AUDIENCES), r.choice(STYLES)
    if family == "explain":
        topic = r.choice(SCIENCE + TECH + SOCIETY)
        return r.choice(EXPLAIN_FRAMES).format(topic=topic, audience=aud, style=sty), topic
    if family == "math":
        return r.choice(MATH_TEMPLATES)(r)
    if family == "code":
        lang, task = r.choice(LANGUAGES), r.choice(CODE_TASKS)
        return r.choice(CODE_FRAMES).format(lang=lang, task=task), f"{lang}: {task}"
    if family == "summary":
        passage, topic = _passage(r)
        return r.choice(SUMMARY_FRAMES).format(passage=passage, audience=aud), topic
    if family == "advice":
        topic = r.choice(EVERYDAY)
        return r.choice(ADVICE_FRAMES).format(topic=topic, audience=aud, style=sty), topic
    if family == "creative":
        form, subj = r.choice(CREATIVE_FORMS), r.choice(CREATIVE_SUBJECTS)
        text = r.choice(CREATIVE_FRAMES).format(form=form, subject=subj, style=sty, audience=aud)
        return text, subj
    if family == "compare":
        pool = r.choice([SCIENCE, TECH, SOCIETY, LANGUAGES])
        a, b = r.sample(pool, 2)
        return r.choice(COMPARE_FRAMES).format(a=a, b=b, style=sty, audience=aud), f"{a} vs {b}"
    if family == "list":
        topic = r.choice(SCIENCE + TECH + SOCIETY)
        return r.choice(LIST_FRAMES).format(topic=topic), topic
    if family == "howto":
        topic = r.choice(EVERYDAY)
        return r.choice(HOWTO_FRAMES).format(topic=topic, style=sty), topic
    if family == "rewrite":
        s = r.choice(REWRITE_SENTENCES)
        return r.choice(REWRITE_FRAMES).format(sentence=s, audience=aud), "rewriting"
    raise InputError(f"unknown prompt family {family!r}; known: {', '.join(FAMILIES)}")


def generate_prompts(n: int, seed: int = 0, families: Sequence[str] | None = None) -> list[Prompt]:
    """`n` distinct instruction prompts, balanced over `families` (default: all), seeded."""
    if n < 0:
        raise InputError(f"n must be >= 0, got {n}")
    fams = list(families) if families else list(FAMILIES)
    unknown = [f for f in fams if f not in FAMILIES]
    if unknown:
        raise InputError(f"unknown prompt families {unknown}; known: {', '.join(FAMILIES)}")
    r = random.Random(f"distilltrace-prompts:{seed}")
    # Families come in shuffled blocks (their own generator) and prompts are drawn in order,
    # so the first k of generate_prompts(n) are generate_prompts(k): a prompt set can grow.
    order_rng = random.Random(f"distilltrace-prompt-families:{seed}")
    order: list[str] = []
    while len(order) < n:
        block = list(fams)
        order_rng.shuffle(block)
        order.extend(block)
    order = order[:n]
    seen: set[str] = set()
    out: list[Prompt] = []
    exhausted: set[str] = set()
    for fam in order:
        # A family whose vocabulary is used up hands its slot to the next family with room.
        candidates = [fam] + [f for f in fams if f != fam]
        for cand in candidates:
            if cand in exhausted:
                continue
            for _ in range(300):
                text, topic = _fill(cand, r)
                if text not in seen:
                    break
            else:
                exhausted.add(cand)
                continue
            seen.add(text)
            out.append(Prompt(text=text, family=cand, topic=topic))
            break
        else:
            raise InputError(
                f"could not make {n} distinct prompts for families {fams}: the vocabulary "
                f"ran out after {len(out)}; ask for fewer or add families"
            )
    return out


# --- loading user prompt files ------------------------------------------------------------


def unescape_pattern(text: str | None) -> str | None:
    """A prompt pattern typed on the command line, with \\n and \\t written as escapes."""
    return None if text is None else text.replace("\\n", "\n").replace("\\t", "\t")


def load_prompts(path: str | Path, column: str | None = None) -> list[str]:
    """Prompts from a file: one per line (.txt and others), JSONL (`column`, default
    "prompt") or CSV (`column`, default "prompt"). Errors name the file and line number."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"prompt file {p} does not exist")
    if p.is_dir():
        raise InputError(f"prompt file {p} is a directory")
    try:
        raw = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{p}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not raw.strip():
        raise InputError(f"{p}: the prompt file is empty (line 1)")
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        prompts = _load_jsonl(p, raw, column or "prompt")
    elif suffix in (".csv", ".tsv"):
        prompts = _load_csv(p, raw, column or "prompt", "\t" if suffix == ".tsv" else ",")
    else:
        if column is not None:
            raise InputError(f"{p}: --column applies to JSONL and CSV files, not plain text")
        prompts = [line.strip() for line in raw.splitlines() if line.strip()]
    if not prompts:
        raise InputError(f"{p}: no prompts found")
    return prompts


def _load_jsonl(p: Path, raw: str, field: str) -> list[str]:
    out: list[str] = []
    for i, line in enumerate(jsonl.lines(raw), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(
                f"{p}: line {i}: malformed JSON ({e.msg} at column {e.colno})"
            ) from None
        if isinstance(obj, str):
            value = obj
        elif isinstance(obj, dict):
            if field not in obj:
                keys = ", ".join(sorted(map(str, obj))[:10]) or "none"
                raise InputError(f"{p}: line {i}: no field {field!r} (fields: {keys})")
            value = obj[field]
        else:
            raise InputError(
                f"{p}: line {i}: expected a JSON object or string, got {type(obj).__name__}"
            )
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{p}: line {i}: field {field!r} is empty or not a string")
        out.append(value)
    return out


def _load_csv(p: Path, raw: str, column: str, delimiter: str) -> list[str]:
    reader = csv.reader(io.StringIO(raw, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as e:
        raise InputError(f"{p}: line 1: cannot read the CSV header ({e})") from None
    if column not in header:
        raise InputError(f"{p}: line 1: no column {column!r} (columns: {', '.join(header)})")
    idx = header.index(column)
    out: list[str] = []
    try:
        for row in reader:
            line = reader.line_num
            if not row or not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise InputError(
                    f"{p}: line {line}: {len(row)} fields, the header has {len(header)}"
                )
            value = row[idx]
            if not value.strip():
                raise InputError(f"{p}: line {line}: column {column!r} is empty")
            out.append(value)
    except csv.Error as e:
        raise InputError(f"{p}: line {reader.line_num}: malformed CSV ({e})") from None
    return out
