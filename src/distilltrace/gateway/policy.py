"""Policy: rules on calibrated live scores decide allow / flag / throttle / block / degrade.

A policy is a TOML file (stdlib ``tomllib``)::

    default = "allow"

    [[rule]]
    id = "block-campaigns"
    when = "cluster_flagged"          # a small expression language, never eval()
    scope = "cluster"                 # every member of the account's cluster
    action = "block"

    [[rule]]
    id = "degrade-suspects"
    when = "pvalue < 1e-4 and not flagged"
    action = "degrade"
    max_tokens = 128
    strip_reasoning = true

Rules are tried in file order; the first whose condition holds decides. Conditions are
``and`` / ``or`` / ``not`` / parentheses over the names in :data:`VARIABLES` (a bare name
is true when its value is true or non-zero) and comparisons ``name OP number``
(``<``, ``<=``, ``>``, ``>=``, ``==``, ``!=``). Anything else is a one-line
:class:`PolicyError` naming the rule, when the file is loaded.

Every change of an account's action is written to an append-only JSONL audit trail
(:class:`AuditLog`): who (rule id or ``admin:NAME``), when, the subject, the action,
why, and the evidence (the scan's p-values and flag reason).
"""

from __future__ import annotations

import json
import os
import re
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from distilltrace.errors import DistilltraceError
from distilltrace.gateway.hooks import ACTIONS, Decision


class PolicyError(DistilltraceError):
    """A policy file that cannot be read or has a bad rule."""


#: The names a condition may use, and what they mean (all from the latest live scan).
VARIABLES: dict[str, str] = {
    "flagged": "the scan flagged the account (campaign member or flagged alone)",
    "cluster_flagged": "the account's linkage cluster or group is a flagged campaign",
    "campaign_flagged": "alias of cluster_flagged",
    "review": "flag_reason is 'review' (extreme behaviour without harvest evidence)",
    "pvalue": "risk_tail_p: the account's calibrated p-value (smaller of its own and its"
    " candidate groups' adjusted p-values)",
    "account_pvalue": "account_tail_p: the account's own calibrated p-value",
    "extraction_pvalue": "extraction_tail_p: calibrated harvest tail",
    "behaviour_pvalue": "behaviour_tail_p: calibrated behaviour tail",
    "risk": "-log10(pvalue)",
    "n_requests": "requests in the window",
    "cluster_size": "accounts in the account's linkage cluster",
}

_TOKEN = re.compile(
    r"\s*(?:(?P<num>[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?)"
    r"|(?P<op><=|>=|==|!=|<|>)|(?P<par>[()])|(?P<name>[A-Za-z_][A-Za-z0-9_]*))"
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos, text = [], 0, text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"unexpected character {text[pos]!r} at position {pos}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


class Condition:
    """A parsed condition (a tree of tuples); ``Condition(text)(variables) -> bool``.

    Grammar: ``expr := and ("or" and)*``; ``and := not ("and" not)*``;
    ``not := "not" not | "(" expr ")" | NAME [OP NUMBER]``.
    """

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("empty condition")
        self.text = text
        self._toks = _tokens(text)
        self._i = 0
        self.tree = self._or()
        if self._i != len(self._toks):
            raise ValueError(f"unexpected {self._toks[self._i][1]!r}")
        del self._toks

    def _peek(self) -> tuple[str, str] | None:
        return self._toks[self._i] if self._i < len(self._toks) else None

    def _take(self) -> tuple[str, str]:
        tok = self._peek()
        if tok is None:
            raise ValueError("condition ends early")
        self._i += 1
        return tok

    def _or(self):
        node = self._and()
        while self._peek() == ("name", "or"):
            self._i += 1
            node = ("or", node, self._and())
        return node

    def _and(self):
        node = self._not()
        while self._peek() == ("name", "and"):
            self._i += 1
            node = ("and", node, self._not())
        return node

    def _not(self):
        kind, val = self._take()
        if (kind, val) == ("name", "not"):
            return ("not", self._not())
        if (kind, val) == ("par", "("):
            node = self._or()
            if self._take() != ("par", ")"):
                raise ValueError("missing ')'")
            return node
        if kind != "name" or val in ("and", "or"):
            raise ValueError(f"expected a name, got {val!r}")
        if val not in VARIABLES:
            raise ValueError(f"unknown name {val!r} (known: {', '.join(VARIABLES)})")
        tok = self._peek()
        if tok and tok[0] == "op":
            self._i += 1
            nkind, num = self._take()
            if nkind != "num":
                raise ValueError(f"expected a number after {tok[1]}, got {num!r}")
            return ("cmp", val, tok[1], float(num))
        return ("var", val)

    def __call__(self, env: Mapping[str, Any]) -> bool:
        return bool(self._eval(self.tree, env))

    def _eval(self, node, env) -> bool:
        op = node[0]
        if op == "or":
            return self._eval(node[1], env) or self._eval(node[2], env)
        if op == "and":
            return self._eval(node[1], env) and self._eval(node[2], env)
        if op == "not":
            return not self._eval(node[1], env)
        if op == "var":
            return bool(env.get(node[1], False))
        value = env.get(node[1])
        return value is not None and _OPS[node[2]](float(value), node[3])


@dataclass(frozen=True)
class Rule:
    """One policy rule: when ``condition`` holds on the ``scope``'s scores, ``action``."""

    id: str
    when: str
    action: str
    scope: str = "account"  # "account" or "cluster"
    max_tokens: int | None = None
    strip_reasoning: bool = False
    retry_after_s: float | None = None
    rate_per_min: float | None = None  # throttle: requests allowed per minute
    condition: Condition = field(repr=False, compare=False, default=None)  # type: ignore[assignment]

    def decision(self, why: str) -> Decision:
        return Decision(
            action=self.action,  # type: ignore[arg-type]
            reason=why,
            rule=self.id,
            max_tokens=self.max_tokens,
            strip_reasoning=self.strip_reasoning,
            retry_after_s=self.retry_after_s,
        )


_RULE_KEYS = {
    "id",
    "when",
    "action",
    "scope",
    "max_tokens",
    "strip_reasoning",
    "retry_after_s",
    "rate_per_min",
}


def _rule(i: int, raw: Any) -> Rule:
    where = f"rule {i + 1}"
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: a [[rule]] table is expected")
    rid = str(raw.get("id") or f"rule-{i + 1}")
    where = f"rule {rid!r}"
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    action = raw.get("action")
    if action not in ACTIONS:
        raise PolicyError(f"{where}: action must be one of {', '.join(ACTIONS)}, got {action!r}")
    scope = raw.get("scope", "account")
    if scope not in ("account", "cluster"):
        raise PolicyError(f"{where}: scope must be 'account' or 'cluster', got {scope!r}")
    try:
        cond = Condition(raw.get("when", ""))
    except ValueError as e:
        raise PolicyError(f"{where}: bad condition {raw.get('when')!r}: {e}") from None
    num = {}
    for key, kind in (("max_tokens", int), ("retry_after_s", float), ("rate_per_min", float)):
        v = raw.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or v <= 0):
            raise PolicyError(f"{where}: {key} must be a positive number, got {v!r}")
        num[key] = None if v is None else kind(v)
    if not isinstance(raw.get("strip_reasoning", False), bool):
        raise PolicyError(f"{where}: strip_reasoning must be true or false")
    return Rule(
        id=rid,
        when=cond.text,
        action=action,
        scope=scope,
        strip_reasoning=raw.get("strip_reasoning", False),
        condition=cond,
        **num,
    )


@dataclass(frozen=True)
class Policy:
    """Ordered rules and a default action; :meth:`decide` returns the first match."""

    rules: tuple[Rule, ...] = ()
    default: str = "allow"

    @classmethod
    def from_toml(cls, text: str, *, source: str = "<policy>") -> Policy:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise PolicyError(f"{source}: not valid TOML ({e})") from None
        unknown = set(data) - {"default", "rule"}
        if unknown:
            raise PolicyError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}")
        default = data.get("default", "allow")
        if default not in ACTIONS:
            raise PolicyError(f"{source}: default must be one of {', '.join(ACTIONS)}")
        raw_rules = data.get("rule", [])
        if not isinstance(raw_rules, list):
            raise PolicyError(f"{source}: 'rule' must be an array of tables ([[rule]])")
        try:
            rules = tuple(_rule(i, r) for i, r in enumerate(raw_rules))
        except PolicyError as e:
            raise PolicyError(f"{source}: {e}") from None
        ids = [r.id for r in rules]
        if len(set(ids)) != len(ids):
            raise PolicyError(f"{source}: rule ids must be unique")
        return cls(rules=rules, default=default)

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise PolicyError(f"cannot read policy file {p}: {e.__class__.__name__}") from None
        return cls.from_toml(text, source=str(p))

    def decide(self, account_env: Mapping[str, Any], cluster_env: Mapping[str, Any]) -> Decision:
        """The first rule whose condition holds on its scope's variables, else the default."""
        for rule in self.rules:
            env = cluster_env if rule.scope == "cluster" else account_env
            if rule.condition(env):
                return rule.decision(f"{rule.scope} {rule.when}")
        return Decision(action=self.default, reason="default", rule=None)  # type: ignore[arg-type]

    def rule(self, rule_id: str | None) -> Rule | None:
        return next((r for r in self.rules if r.id == rule_id), None)


#: A policy that flags what the scan flags, blocks flagged campaigns' clusters, and
#: degrades accounts under review: the default when no file is given.
DEFAULT_POLICY_TOML = """
default = "allow"

[[rule]]
id = "block-campaign"
when = "cluster_flagged"
scope = "cluster"
action = "block"

[[rule]]
id = "block-flagged"
when = "flagged"
action = "block"

[[rule]]
id = "flag-suspect"
when = "pvalue < 0.001"
action = "flag"
"""


def default_policy() -> Policy:
    return Policy.from_toml(DEFAULT_POLICY_TOML, source="<default policy>")


class AuditLog:
    """Append-only JSONL audit trail (one fsync'd line per entry), thread-safe.

    Entry: ``{"ts", "who", "scope", "subject", "account_id", "cluster_id", "action",
    "previous", "why", "evidence", "watermark"}``. Without a path, entries stay in memory.
    """

    def __init__(self, path: str | Path | None = None, *, keep: int = 10_000) -> None:
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._recent: list[dict] = []
        self._keep = keep
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, entry: dict) -> dict:
        entry = {"ts": datetime.now(UTC).isoformat(), **entry}
        line = json.dumps(entry, sort_keys=True, default=str, ensure_ascii=False)
        with self._lock:
            if self.path is not None:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(line + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            self._recent.append(entry)
            del self._recent[: -self._keep]
        return entry

    def recent(self, n: int = 200) -> list[dict]:
        """The latest ``n`` entries written by this process, newest first."""
        with self._lock:
            return list(reversed(self._recent[-n:]))

    def read(self) -> list[dict]:
        """Every entry on disk (oldest first); the in-memory ones without a path."""
        if self.path is None or not self.path.exists():
            return list(reversed(self.recent(self._keep)))
        with open(self.path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
