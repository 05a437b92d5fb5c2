"""The naive keyword rule every traffic detector is compared with.

An account is flagged when at least half of its prompts match English "reasoning"
keywords (step by step, reasoning, chain of thought, walk me through, thought process)
and it sent at least 20 requests. It is what a tired analyst would write first; a
detector that loses to it on logs it has not seen is tuned to its own simulator.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

KEYWORDS = r"step[- ]by[- ]step|reasoning|chain[- ]of[- ]thought|walk me through|thought process"
MIN_SHARE = 0.5
MIN_REQUESTS = 20


def _reader(path: Path) -> str:
    p = str(path).replace("'", "''")
    suffix = "".join(path.suffixes[-2:]).lower()
    if ".parquet" in suffix:
        return f"read_parquet('{p}')"
    if ".jsonl" in suffix or ".json" in suffix:
        return f"read_json_auto('{p}', format='newline_delimited')"
    return f"read_csv_auto('{p}', all_varchar=true)"


def keyword_rule(
    paths: list[str | Path], *, min_share: float = MIN_SHARE, min_requests: int = MIN_REQUESTS
) -> pd.DataFrame:
    """Per account: requests, keyword matches and the rule's flag (DuckDB over the files)."""
    import duckdb

    union = " UNION ALL ".join(
        f"SELECT CAST(account_id AS VARCHAR) AS account_id, CAST(prompt AS VARCHAR) AS prompt "
        f"FROM {_reader(Path(p))}"
        for p in paths
    )
    con = duckdb.connect()
    try:
        df = con.execute(
            f"""SELECT account_id, count(*) AS n,
                   sum(CASE WHEN regexp_matches(lower(coalesce(prompt, '')), '{KEYWORDS}')
                       THEN 1 ELSE 0 END) AS k
                FROM ({union}) WHERE account_id IS NOT NULL GROUP BY account_id
                ORDER BY account_id"""
        ).df()
    finally:
        con.close()
    df["flagged"] = (df["n"] >= min_requests) & (df["k"] >= min_share * df["n"])
    return df
