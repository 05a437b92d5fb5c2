"""The scan's per-account signals as one registry: adding a signal is one `Signal` entry.

Every signal is a record: its name, the log columns it needs, its weight in the fused
behaviour score, whether its statistic is a -log10 p-value (its calibrated tail scale is
calibrated by `fusion.pvalue_tail`), whether it is *harvest* evidence (what an
account asks for, which a campaign must show unless its behaviour alone is extreme) and
a function from the reduced tables to one statistic per account, larger meaning more
campaign-like. The scanner loops over `SIGNALS`; a signal whose columns are missing (or
whose input, such as the content model, is off) is skipped and listed with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from distilltrace.traffic import signals


@dataclass
class Reduced:
    """The small per-account tables a scan works on once the engine has reduced events."""

    acct: pd.DataFrame
    present: set[str]
    acct_topic: pd.DataFrame
    acct_hod: pd.DataFrame
    acct_value: pd.DataFrame
    acct_model: pd.DataFrame | None = None
    acct_client: pd.DataFrame | None = None
    acct_ip: pd.DataFrame | None = None
    content: Any = None  # content.ContentFeatures, or None when the model is off
    memo: dict[str, Any] = field(default_factory=dict)

    @property
    def accounts(self) -> pd.Index:
        return pd.Index(self.acct["account_id"].astype(str))

    @property
    def t0(self) -> float:
        return float(self.acct["first_t"].min())

    def once(self, key: str, fn: Callable[[], Any]) -> Any:
        if key not in self.memo:
            self.memo[key] = fn()
        return self.memo[key]


@dataclass(frozen=True)
class Signal:
    """One per-account signal (see the module docstring)."""

    name: str
    compute: Callable[[Reduced], np.ndarray]
    weight: float
    columns: tuple[str, ...] = ()
    pvalue_stat: bool = False
    harvest: bool = False
    needs_content: bool = False

    def skip_reason(self, red: Reduced) -> str | None:
        missing = [c for c in self.columns if c not in red.present]
        if missing:
            return "missing column " + ", ".join(missing)
        if self.needs_content and red.content is None:
            return "content model off"
        return None


def _elicitation(r: Reduced) -> np.ndarray:
    stat, base = signals.elicitation_stat(r.acct)
    r.memo["elicitation_base_rate"] = base
    return stat


def _concentration(r: Reduced) -> pd.DataFrame:
    return r.once("conc", lambda: signals.concentration_stat(r.acct_topic, r.accounts))


def _timing(r: Reduced) -> pd.DataFrame:
    return r.once(
        "timing",
        lambda: signals.timing_stats(r.acct.set_index("account_id"), r.acct_hod, r.accounts),
    )


def _young(r: Reduced) -> np.ndarray:
    age_days = (r.acct["first_t"] - r.acct["created_t"]).to_numpy(float) / 86400
    return -np.nan_to_num(np.clip(age_days, 0, None), nan=np.inf)


def _mismatch(r: Reduced) -> np.ndarray:
    share, _ = r.once("mismatch", lambda: signals.client_mismatch(r.acct_client, r.accounts))
    return share


def _content(col: str) -> Callable[[Reduced], np.ndarray]:
    return lambda r: r.content.table[col].to_numpy(float)


#: The registry. Order is the column order of accounts.parquet.
SIGNALS: list[Signal] = [
    Signal("elicitation", _elicitation, 1.0, pvalue_stat=True, harvest=True),
    Signal("intent", _content("intent"), 1.0, pvalue_stat=True, harvest=True, needs_content=True),
    Signal("semantic_shift", _content("mmd"), 0.7, needs_content=True),
    Signal(
        "template",
        lambda r: signals.template_share(r.acct_value, r.accounts, r.acct["n_req"].to_numpy(float)),
        1.0,
    ),
    Signal(
        "concentration", lambda r: _concentration(r)[0]["conc"].to_numpy(), 0.5, pvalue_stat=True
    ),
    Signal("sweep", lambda r: signals.sweep_stat(r.acct, _concentration(r)[0]), 0.3),
    Signal("cadence", lambda r: _timing(r)["regular"].to_numpy(), 0.5),
    Signal("round_the_clock", lambda r: _timing(r)["clock"].to_numpy(), 0.3),
    Signal("young_account", _young, 0.5, columns=("account_created_at",)),
    Signal("volume", lambda r: np.log1p(r.acct["n_req"].to_numpy(float)), 0.3),
    Signal(
        "release_pivot",
        lambda r: signals.pivot_stat(r.acct_model, r.accounts, r.t0)["pivot"].to_numpy(),
        0.7,
        columns=("model",),
    ),
    Signal("client_mismatch", _mismatch, 0.5, columns=("tls_fingerprint", "user_agent")),
]


def by_name() -> dict[str, Signal]:
    return {s.name: s for s in SIGNALS}


def compute(
    red: Reduced, signals_: list[Signal] | None = None
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every applicable signal's statistic (one column each) and the skipped ones' reasons."""
    feats = pd.DataFrame(index=red.accounts)
    skipped: dict[str, str] = {}
    for sig in signals_ or SIGNALS:
        why = sig.skip_reason(red)
        if why:
            skipped[sig.name] = why
            continue
        feats[sig.name] = np.asarray(sig.compute(red), float)
    return feats, skipped
