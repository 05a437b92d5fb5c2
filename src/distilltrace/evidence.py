"""One evidence protocol across subsystems, and Holm over a family of claims.

Every statistical answer in distilltrace (a traffic cluster test, a watermark test, a
radioactivity test, a provenance test, a paired test, a Holm family) exposes the same
small shape, like a scipy.stats result:

- ``name``: what was tested (short, stable: used as the claim's label);
- ``null``: the null hypothesis, in words;
- ``statistic``: the test statistic (None when the test did not run);
- ``pvalue``: a valid p-value under ``null`` (None when the test did not run);
- ``n``: how many units the test used (tokens, units, prompts, claims);
- ``details``: anything else (JSON-serialisable);
- ``to_dict()``.

So reports and evidence bundles combine results without special cases: ``family()``
takes any mix of them and returns the Holm-adjusted family, itself Evidence-shaped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from distilltrace.errors import InputError
from distilltrace.stats import HolmResult, holm

EVIDENCE_KEYS = ("name", "null", "statistic", "pvalue", "n", "details")


@runtime_checkable
class Evidence(Protocol):
    """The shape every test result shares (see the module docstring)."""

    @property
    def name(self) -> str: ...

    @property
    def null(self) -> str: ...

    @property
    def statistic(self) -> float | None: ...

    @property
    def pvalue(self) -> float | None: ...

    @property
    def n(self) -> int: ...

    @property
    def details(self) -> dict[str, Any]: ...

    def to_dict(self) -> dict[str, Any]: ...


def _jsonable(x: Any) -> Any:
    """Numbers, strings, lists and dicts only (numpy scalars and tuples converted)."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple | set | frozenset):
        return [_jsonable(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, str | int):
        return x
    if isinstance(x, float):
        return x
    if hasattr(x, "item"):  # numpy scalar
        return _jsonable(x.item())
    if hasattr(x, "to_dict"):
        return _jsonable(x.to_dict())
    return str(x)


def _opt_float(x: Any) -> float | None:
    return None if x is None else float(x)


@dataclass(frozen=True)
class EvidenceResult:
    """A plain Evidence value: what bundles store and reports render."""

    name: str
    null: str
    statistic: float | None
    pvalue: float | None
    n: int = 0
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        p = self.pvalue
        if p is not None and not (isinstance(p, int | float) and 0.0 <= p <= 1.0):
            raise InputError(f"evidence {self.name!r}: p-value {p!r} is not in [0, 1]")

    @property
    def ran(self) -> bool:
        return self.pvalue is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "null": self.null,
            "statistic": self.statistic,
            "pvalue": self.pvalue,
            "n": int(self.n),
            "details": _jsonable(self.details),
        }

    @classmethod
    def of(cls, x: Any, name: str | None = None) -> EvidenceResult:
        """The Evidence fields of any Evidence-shaped result (optionally renamed)."""
        if not isinstance(x, Evidence):
            raise InputError(f"{type(x).__name__} is not an Evidence-shaped result")
        return cls(
            name=name or str(x.name),
            null=str(x.null),
            statistic=_opt_float(x.statistic),
            pvalue=_opt_float(x.pvalue),
            n=int(x.n),
            details=_jsonable(dict(x.details)),
        )

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EvidenceResult:
        missing = [k for k in EVIDENCE_KEYS if k not in d]
        if missing:
            raise InputError(f"evidence record lacks {missing}")
        return cls(
            name=str(d["name"]),
            null=str(d["null"]),
            statistic=_opt_float(d["statistic"]),
            pvalue=_opt_float(d["pvalue"]),
            n=int(d["n"]),
            details=dict(d["details"] or {}),
        )


def evidence_dict(x: Any) -> dict[str, Any]:
    """The six protocol keys of an Evidence-shaped result, JSON-ready."""
    return EvidenceResult.of(x).to_dict()


@dataclass(frozen=True)
class Claim:
    """One member of a family: its raw and Holm-adjusted p-value."""

    name: str
    null: str
    pvalue: float
    adjusted: float
    reject: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "null": self.null,
            "pvalue": self.pvalue,
            "adjusted": self.adjusted,
            "reject": self.reject,
        }


@dataclass(frozen=True)
class FamilyResult:
    """Holm over a family of claims at family-wise level alpha (Evidence-shaped: its
    p-value is the smallest adjusted one, a valid p-value for the global null)."""

    claims: tuple[Claim, ...]
    skipped: tuple[str, ...]  # claims that did not run (p-value None): not in the family
    alpha: float
    holm: HolmResult

    name = "holm_family"

    @property
    def null(self) -> str:
        return (
            f"every one of the {len(self.claims)} null hypotheses in the family is true "
            "(Holm's step-down procedure keeps the chance of rejecting any true one <= alpha)"
        )

    @property
    def statistic(self) -> float | None:
        return self.pvalue

    @property
    def pvalue(self) -> float | None:
        return min((c.adjusted for c in self.claims), default=None)

    @property
    def n(self) -> int:
        return len(self.claims)

    @property
    def details(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "claims": [c.to_dict() for c in self.claims],
            "skipped": list(self.skipped),
            "n_rejected": sum(c.reject for c in self.claims),
        }

    @property
    def all_rejected(self) -> bool:
        """Every claim in the family rejected (and at least one claim)."""
        return bool(self.claims) and all(c.reject for c in self.claims)

    def claim(self, name: str) -> Claim:
        for c in self.claims:
            if c.name == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "null": self.null,
            "statistic": self.statistic,
            "pvalue": self.pvalue,
            "n": self.n,
            "details": self.details,
        }


def family(results: Iterable[Any] | Mapping[str, Any], alpha: float = 0.05) -> FamilyResult:
    """Holm over Evidence-shaped results (a mapping names them; else their own names).
    Results whose p-value is None did not run: they are listed as skipped."""
    if not 0 < alpha < 1:
        raise InputError(f"alpha must be in (0, 1), got {alpha}")
    items: Sequence[tuple[str, Any]]
    if isinstance(results, Mapping):
        items = [(str(k), v) for k, v in results.items()]
    else:
        items = [(str(getattr(r, "name", "")), r) for r in results]
    ran: list[tuple[str, str, float]] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for nm, r in items:
        e = EvidenceResult.of(r, name=nm)
        if e.name in seen:
            raise InputError(f"two claims are named {e.name!r}; name each claim once")
        seen.add(e.name)
        if e.pvalue is None or math.isnan(e.pvalue):
            skipped.append(e.name)
        else:
            ran.append((e.name, e.null, e.pvalue))
    h = holm([p for _, _, p in ran], alpha=alpha)
    claims = tuple(
        Claim(nm, null, p, adj, rej)
        for (nm, null, p), adj, rej in zip(ran, h.adjusted, h.reject, strict=True)
    )
    return FamilyResult(claims, tuple(skipped), alpha, h)
