"""Real human prompts (ShareGPT V3, via `distilltrace.data.sharegpt`) for simulated traffic.

Ordinary users, relays and resellers send real prompts; English campaigns also quote real
opening turns as items. The pool is every kept human turn in file order, so consecutive
entries are the turns of one conversation. Each account (or relay) walks its own stretch of
the pool from a random start: its k-th real prompt of day d is entry
`(start + d * DAY_STRIDE + k) mod P` (relays move on by RELAY_STRIDE a day). An account never repeats itself within a day, follow-up
turns ("continue", "make it shorter") come after their opening turn, and every entry is
used about equally often; entries recur across accounts only once the simulated volume
exceeds the pool (see docs/traffic-simulator.md for the rates).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DAY_STRIDE = 211  # an account's start moves on by this much each day
RELAY_STRIDE = 8191  # a relay's (it sends thousands a day)
ITEM_MIN, ITEM_MAX = 40, 1500

# asks for worked reasoning in real prompts (marks the response preview as step-by-step)
REASONING_ASK = (
    r"(?i)step[- ]by[- ]step|show (your|the|all) (work|steps|working)|"
    r"explain (your|the) reasoning|walk me through|chain of thought"
)


@lru_cache(maxsize=1)
def pool() -> pa.Array:
    """Every kept human turn of the simulation split (the detector split is reserved for
    fitting detectors), in file order (a pyarrow string array)."""
    from distilltrace.data.sharegpt import human_prompts

    return human_prompts("all", split="simulation")


@lru_cache(maxsize=1)
def item_pool() -> pa.Array:
    """Self-contained opening turns of moderate length, for campaign items."""
    from distilltrace.data.sharegpt import human_prompts

    first = human_prompts("first", split="simulation")
    n = pc.utf8_length(first).to_numpy(zero_copy_only=False)
    return first.filter(pa.array((n >= ITEM_MIN) & (n <= ITEM_MAX)))


def rank_by_time(key: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Position of each row among the rows with the same key, in time order."""
    order = np.lexsort((t, key))
    k = key[order]
    first = np.r_[True, k[1:] != k[:-1]] if len(k) else np.zeros(0, bool)
    start = np.maximum.accumulate(np.where(first, np.arange(len(k)), 0))
    rank = np.empty(len(k), dtype=np.int64)
    rank[order] = np.arange(len(k)) - start
    return rank


def walk(start: np.ndarray, rank: np.ndarray, offset: int = 0) -> pa.Array:
    """The pool entries at start + offset + rank (mod the pool size); callers pass
    offset = day * DAY_STRIDE (accounts) or day * RELAY_STRIDE (relays)."""
    p = pool()
    idx = (np.asarray(start, np.int64) % len(p) + offset + rank) % len(p)
    return p.take(pa.array(idx))


def items(rng: np.random.Generator, n: int) -> pa.Array:
    """n opening turns drawn at random (campaign items quoting real prompts)."""
    p = item_pool()
    return p.take(pa.array(rng.integers(0, len(p), n)))


def reasoning_ask(text: pa.Array) -> np.ndarray:
    """Rows that explicitly ask for worked, step-by-step reasoning."""
    return pc.match_substring_regex(text, REASONING_ASK).to_numpy(zero_copy_only=False)
