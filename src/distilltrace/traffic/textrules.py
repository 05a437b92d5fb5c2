"""Prompt-text features computed in SQL: skeletons, extraction-pattern rules, task families.

The rules are written from the phenomenon described in public reports on distillation
campaigns (not from any simulator's phrasing): asking the model to write out or
reconstruct its reasoning, to act as a grader or reward model, to answer in a fixed
structured format suitable for training data, or to give many alternative solutions.
Each rule is one RE2 regular expression over the lower-cased first
``TEXT_CHARS`` characters of the prompt, so the whole feature pass is vectorised.

The statistical component is a Bernoulli naive Bayes model over the rule indicators
and a few extra keyword indicators, fitted on the hand-labelled examples in
``data/elicitation_examples.json`` (written for this project). Its log-odds become a
per-request score in SQL; `fusion` calibrates the per-account counts against the
population.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

TEXT_CHARS = 800

#: Extraction-pattern rules (name -> RE2 pattern on lower-cased text).
RULES: dict[str, str] = {
    "show_reasoning": (
        r"(show|write out|spell out|lay out|include|give|provide|display|detail|list)"
        r" (me )?(all |your |every |each |the |of )*(full |complete |entire |detailed |whole |intermediate )*"
        r"(work|working|reasoning|steps|thinking|thought process|derivation|rationale)"
        r"|explain (your|the|each|every) (reasoning|thinking|thought|logic|step)"
        r"|chain[- ]of[- ]thought|reasoning (trace|chain|steps)|thought process"
        r"|scratch ?pad|think(ing)? (out loud|aloud)|inner monologue"
        r"|walk (me )?through (your|the|each|every) (reasoning|thinking|logic|steps?)"
    ),
    "reconstruct": (
        r"(reconstruct|reveal|reproduce|recreate|expose|verbali[sz]e|transcribe|dump|recover|output)"
        r" (your |the |all |of )*(hidden |internal |private |inner |raw |original |full |underlying )+"
        r"(reasoning|thoughts?|thinking|chain|deliberation|monologue|scratch ?pad)"
        r"|(hidden|internal|private|inner|raw) (reasoning|thoughts|chain of thought|monologue)"
        r"|(exactly|verbatim) (how|what) you (thought|reasoned)"
    ),
    "grade": (
        r"(act|serve|behave|respond|function) as (a |an |the )?(strict |impartial |expert |careful )*"
        r"(grader|judge|reward model|evaluator|critic|rater|annotator|verifier|scorer)"
        r"|reward (model|signal|score)|preference (label|data|pair|judg)"
        r"|(rate|score|grade|rank|judge|evaluate|compare) (the |this |these |each |both |following |two |candidate )*"
        r"(responses?|answers?|completions?|outputs?|solutions?|replies)"
        r"|which (response|answer|completion|output|solution|reply) is (better|more|correct|preferred)"
        r"|on a scale (of|from) [0-9]+ (to|-) ?[0-9]+|scoring rubric"
    ),
    "train_format": (
        r"<think>|</think>|<reasoning>|<scratchpad>|\[reasoning\]"
        r"|[\"'](thought|thoughts|reasoning|rationale|chain_of_thought|cot|steps|final_answer)[\"'] ?:"
        r"|(respond|output|answer|reply|return|format)( your answer| everything)?( only| strictly| exactly)? (in|as|using|with) "
        r"(valid |strict |the following |this )*(json|jsonl|xml|yaml|schema|format|template|fields)"
        r"|(training|fine[- ]?tun\w*|distill\w*|instruction[- ]tun\w*|sft) (data|dataset|examples?|samples?|corpus|pairs?)"
        r"|(question|instruction|prompt)[- ](answer|response|completion) pairs?"
        r"|(reasoning|thoughts?|rationale|analysis): .{0,200}(final answer|answer|output):"
    ),
    "multi_sample": (
        r"(give|generate|provide|write|produce|list) (me )?([0-9]+|two|three|four|five|several|multiple|many|ten|various)"
        r" (different|diverse|alternative|distinct|varied|independent|unique) "
        r"(solutions|answers|approaches|responses|versions|proofs|methods|explanations|ways)"
        r"|(an|one more|another|a different|alternative) (approach|solution|proof|method) (to|for) (the|this) same"
    ),
    "step_by_step": r"step[- ]by[- ]step|think (carefully|step|it through)|let'?s think|one step at a time",
}

#: Extra keyword indicators used only by the statistical model (not rules on their own).
KEYWORDS: dict[str, str] = {
    "kw_final_answer": r"final answer",
    "kw_each_step": r"(each|every) (step|stage|intermediate)",
    "kw_detailed": r"detailed|thorough|exhaustive|complete",
    "kw_model_self": r"\byou(r)? (model|assistant|ai)\b|as an ai",
    "kw_verify": r"verify|double[- ]check|check your",
    "kw_please": r"\bplease\b|\bthanks?\b|\bthank you\b",
    "kw_question": r"\?\s*$",
}

#: Task families, for capability concentration: a prompt belongs to the family of its
#: first (leftmost) cue; when one cue fits two families, the earlier family here wins.
TOPICS: list[tuple[str, str]] = [
    (
        "code",
        r"```|\bdef |\bclass |\bfunction\b|\bpython\b|javascript|typescript|\bjava\b|c\+\+|\brust\b|\bgolang\b"
        r"|\bsql\b|\bregex|\bcompile|\bbug\b|debug|refactor|unit test|stack ?trace|\bapi\b|algorithm|\bcode\b|implement",
    ),
    (
        "math",
        r"[0-9] ?[-+*/^=] ?[0-9]|\bsolve\b|equation|integral|derivative|\bprove\b|proof|theorem|probability"
        r"|matrix|polynomial|\bcalculate\b|\bcompute\b|arithmetic|geometry|algebra|\bsum of\b|how many|lemma",
    ),
    (
        "agentic",
        r"\btool\b|tools|function call|call the|\bagent\b|browse|web search|search the web|\bshell\b|terminal"
        r"|execute|plan (the|a|your) (steps|actions)|next action|observation:|action:|api call",
    ),
    (
        "science",
        r"physics|chemi|biolog|molecul|\bcell\b|quantum|energy|\batom|protein|\bdna\b|gene|reaction|climate",
    ),
    (
        "writing",
        r"\bwrite\b|essay|poem|story|email|letter|blog|rewrite|summari[sz]e|translate|paraphrase|draft|tweet|slogan",
    ),
]

SIGNAL_FEATURES = list(RULES) + list(KEYWORDS)
STRONG_RULES = ("show_reasoning", "reconstruct", "grade", "train_format", "multi_sample")


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def skeleton_sql(col: str = "prompt") -> str:
    """SQL turning a prompt into its skeleton: code blocks, URLs, quoted spans and numbers
    become ``#``, capitalised words (names) after a space become ``N``; lower-cased;
    whitespace runs collapsed. Three regex passes over at most TEXT_CHARS characters."""
    spans = (
        '```[\\s\\S]*?(?:```|$)|https?://\\S+|"[^"]{0,300}"|“[^”]{0,300}”|`[^`]{0,300}`'
        "|[0-9]+(?:[.,][0-9]+)*"
    )
    x = f"left({col}, {TEXT_CHARS})"
    x = f"regexp_replace({x}, '{spans}', '#', 'g')"
    x = f"regexp_replace({x}, ' [A-Z][a-zA-Z]*', ' N', 'g')"
    x = f"trim(regexp_replace(lower({x}), '\\s\\s+|[\\t\\n\\r\\f\\v]', ' ', 'g'))"
    return x


def rule_sql(text: str) -> dict[str, str]:
    """SQL 0/1 expressions for each rule and keyword on an already lower-cased text column."""
    out = {}
    for name, pat in {**RULES, **KEYWORDS}.items():
        out[name] = f"CAST(regexp_matches({text}, {_sql_str(pat)}) AS INTEGER)"
    return out


#: Indicators that can move the naive Bayes log-odds up a lot; the gate regex is their union.
GATE_FEATURES = list(RULES) + ["kw_final_answer", "kw_each_step", "kw_detailed", "kw_verify"]


def gate_sql(text_unused: str = "") -> str:
    """The union of the gate features' patterns, as one SQL string literal."""
    pats = {**RULES, **KEYWORDS}
    return _sql_str("|".join(f"(?:{pats[f]})" for f in GATE_FEATURES))


def gate_is_sound(model: NaiveBayes) -> bool:
    """True when a request matching none of GATE_FEATURES has negative log-odds."""
    rest = [w for f, w in zip(model.features, model.weights, strict=True) if f not in GATE_FEATURES]
    return model.bias + sum(max(w, 0.0) for w in rest) < 0


def topic_match_sql(text: str) -> str:
    """SQL extracting the first (leftmost) task-family cue in the text ('' when none):
    one regex pass; `topic_sql` then classifies the short matched cue."""
    union = "|".join(f"(?:{p})" for _, p in TOPICS)
    return f"regexp_extract({text}, {_sql_str(union)}, 0)"


def topic_sql(match: str) -> str:
    """SQL CASE assigning the family of a cue extracted by `topic_match_sql`."""
    whens = " ".join(
        f"WHEN regexp_matches({match}, {_sql_str(p)}) THEN {_sql_str(n)}" for n, p in TOPICS
    )
    return f"CASE WHEN {match} = '' THEN 'other' {whens} ELSE 'other' END"


def features_py(text: str) -> dict[str, int]:
    """The same indicators in Python (for tests and for the labelled examples)."""
    t = text[:TEXT_CHARS].lower()
    return {n: int(re.search(p, t) is not None) for n, p in {**RULES, **KEYWORDS}.items()}


@dataclass(frozen=True)
class NaiveBayes:
    """Bernoulli naive Bayes over the indicator features: log-odds = bias + x . weights."""

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    n_pos: int
    n_neg: int

    def log_odds(self, x: np.ndarray) -> np.ndarray:
        return self.bias + x @ np.asarray(self.weights)

    def sql(self) -> str:
        terms = " + ".join(
            f"{w:.6f} * {f}" for f, w in zip(self.features, self.weights, strict=True)
        )
        return f"({self.bias:.6f} + {terms})"

    def to_dict(self) -> dict:
        return {
            "features": list(self.features),
            "weights": [round(w, 4) for w in self.weights],
            "bias": round(self.bias, 4),
            "n_pos": self.n_pos,
            "n_neg": self.n_neg,
        }


def labelled_examples() -> list[tuple[str, int]]:
    """The hand-written labelled prompts: (text, 1 = extraction request, 0 = ordinary)."""
    raw = json.loads(
        resources.files("distilltrace.traffic")
        .joinpath("data/elicitation_examples.json")
        .read_text()
    )
    return [(t, 1) for t in raw["extraction"]] + [(t, 0) for t in raw["ordinary"]]


@lru_cache(maxsize=1)
def elicitation_model(prior_pos: float = 0.05, smoothing: float = 1.0) -> NaiveBayes:
    """Fit the Bernoulli naive Bayes on the labelled examples (deterministic).

    ``prior_pos`` is the assumed base rate of extraction requests in traffic, so the
    log-odds are on the scale of real traffic rather than the balanced example set.
    """
    ex = labelled_examples()
    X = np.array([[features_py(t)[f] for f in SIGNAL_FEATURES] for t, _ in ex], dtype=float)
    y = np.array([lab for _, lab in ex])
    pos, neg = X[y == 1], X[y == 0]
    th1 = (pos.sum(0) + smoothing) / (len(pos) + 2 * smoothing)
    th0 = (neg.sum(0) + smoothing) / (len(neg) + 2 * smoothing)
    w = np.log(th1 / th0) - np.log((1 - th1) / (1 - th0))
    bias = float(np.log(prior_pos / (1 - prior_pos)) + np.log((1 - th1) / (1 - th0)).sum())
    return NaiveBayes(
        tuple(SIGNAL_FEATURES), tuple(float(v) for v in w), bias, int(len(pos)), int(len(neg))
    )
