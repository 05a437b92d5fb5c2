"""Traffic simulator: benign API traffic with hard cases plus labelled distillation campaigns.

`simulate(n_accounts, days, seed)` returns a pyarrow Table in the traffic log schema
(every optional column filled, plus the evaluation-only `campaign_id`); the ground truth
(campaigns, hard-case groups and their accounts) rides along in the table's schema metadata
and is written next to the logs by `write_logs`. Vectorised with numpy/pyarrow: loops run
over days, groups and templates, never over requests.

Campaigns carry an archetype, a wording family and a language, benign look-alike groups a
look-alike family; `families()` lists them and `family_config()` builds a configuration that
selects or holds out one (see docs/traffic-simulator.md).
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from distilltrace.errors import InputError
from distilltrace.traffic.simulate.langs import LANGUAGES, WORDINGS
from distilltrace.traffic.simulate.population import (
    ARCHETYPES,
    LOOKALIKES,
    build_population,
    describe,
)
from distilltrace.traffic.simulate.traffic import DAY, STYLES, Tables, finalise

TRUTH_KEY = b"distilltrace.truth"
MIN_ACCOUNTS = 300  # below this the hard cases and campaigns leave no room for individuals
FORMATS = ("parquet", "jsonl", "csv")

SCHEMA = pa.schema(
    [
        ("request_id", pa.string()),
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("account_id", pa.string()),
        ("prompt", pa.string()),
        ("org_id", pa.string()),
        ("api_key_id", pa.string()),
        ("account_created_at", pa.timestamp("s", tz="UTC")),
        ("signup_path", pa.string()),
        ("payment_fingerprint", pa.string()),
        ("client_ip", pa.string()),
        ("asn", pa.int64()),
        ("asn_type", pa.string()),
        ("country", pa.string()),
        ("user_agent", pa.string()),
        ("tls_fingerprint", pa.string()),
        ("model", pa.string()),
        ("system_prompt", pa.string()),
        ("response", pa.string()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("reasoning_tokens", pa.int64()),
        ("temperature", pa.float64()),
        ("max_tokens", pa.int64()),
        ("status", pa.string()),
        ("campaign_id", pa.string()),
    ]
)


@dataclass
class SimConfig:
    """Simulation parameters (see docs/traffic-simulator.md)."""

    n_accounts: int = 20000
    days: int = 7
    seed: int = 0
    start: str = "2026-03-02T00:00:00Z"
    campaigns: tuple[str, ...] = tuple(ARCHETYPES)
    reseller_share: float = 0.05
    activity: float = 1.0
    wordings: tuple[str, ...] = WORDINGS
    languages: tuple[str, ...] = LANGUAGES
    lookalikes: tuple[str, ...] = tuple(LOOKALIKES)
    real_prompts: float = 1.0

    def validate(self) -> None:
        if self.n_accounts < MIN_ACCOUNTS:
            raise InputError(f"--accounts must be at least {MIN_ACCOUNTS} (got {self.n_accounts})")
        if not 1 <= self.days <= 120:
            raise InputError(f"--days must be between 1 and 120 (got {self.days})")
        bad = [c for c in self.campaigns if c not in ARCHETYPES]
        if bad:
            raise InputError(f"unknown campaign archetype(s) {bad}; choose from {list(ARCHETYPES)}")
        if len(set(self.campaigns)) != len(self.campaigns):
            raise InputError("each campaign archetype may appear once")
        if not 0.0 < self.reseller_share < 0.5:
            raise InputError(f"reseller share must be in (0, 0.5) (got {self.reseller_share})")
        if self.activity <= 0:
            raise InputError("activity must be positive")
        for name, values, allowed in (
            ("wording", self.wordings, WORDINGS),
            ("language", self.languages, LANGUAGES),
            ("look-alike", self.lookalikes, LOOKALIKES),
        ):
            bad = [v for v in values if v not in allowed]
            if bad:
                raise InputError(f"unknown {name} value(s) {bad}; choose from {list(allowed)}")
            if len(set(values)) != len(values):
                raise InputError(f"each {name} value may appear once")
        if self.campaigns and not (self.wordings and self.languages):
            raise InputError("campaigns need at least one wording family and one language")
        if not 0.0 <= self.real_prompts <= 1.0:
            raise InputError(f"real_prompts must be in [0, 1] (got {self.real_prompts})")
        _start_ms(self.start)


FAMILY_KINDS = {
    "archetypes": "campaigns",
    "wordings": "wordings",
    "languages": "languages",
    "lookalikes": "lookalikes",
}


def families() -> dict[str, list[str]]:
    """Every family value a benchmark can hold out: campaign archetypes, wording families,
    languages and benign look-alike families."""
    return {
        "archetypes": list(ARCHETYPES),
        "wordings": list(WORDINGS),
        "languages": list(LANGUAGES),
        "lookalikes": list(LOOKALIKES),
    }


def family_config(
    kind: str,
    values: str | tuple[str, ...] | list[str],
    hold_out: bool = False,
    base: SimConfig | None = None,
    **overrides: Any,
) -> SimConfig:
    """A SimConfig whose `kind` family ("archetypes", "wordings", "languages" or
    "lookalikes") is restricted to `values` (hold_out=False: only those, e.g. the test log
    of a held-out family) or excludes them (hold_out=True: the training/tuning logs).

    Other fields come from `base` (default SimConfig()) and `overrides`, e.g.
    `family_config("wordings", "reconstruct", n_accounts=5000, seed=1)`."""
    from dataclasses import replace

    if kind not in FAMILY_KINDS:
        raise InputError(f"unknown family kind {kind!r}; choose from {list(FAMILY_KINDS)}")
    vals = (values,) if isinstance(values, str) else tuple(values)
    every = families()[kind]
    bad = [v for v in vals if v not in every]
    if bad:
        raise InputError(f"unknown {kind} value(s) {bad}; choose from {every}")
    chosen = tuple(v for v in every if (v in vals) != hold_out)
    cfg = replace(base or SimConfig(), **overrides)
    return replace(cfg, **{FAMILY_KINDS[kind]: chosen})


def _start_ms(start: str) -> int:
    try:
        d = _dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
    except ValueError as e:
        raise InputError(f"bad start time {start!r}: {e}") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=_dt.UTC)
    return int(d.timestamp() * 1000)


@dataclass
class Simulation:
    """The planned population; iterate `days()` for the requests of each day."""

    config: SimConfig
    truth: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cfg = self.config
        cfg.validate()
        self.pop = build_population(
            cfg.n_accounts,
            cfg.days,
            cfg.seed,
            tuple(cfg.campaigns),
            cfg.reseller_share,
            cfg.activity,
            wordings=tuple(cfg.wordings),
            languages=tuple(cfg.languages),
            lookalikes=tuple(cfg.lookalikes),
            real_prompts=cfg.real_prompts,
        )
        self.start_ms = _start_ms(cfg.start)
        self.tables = Tables(self.pop, self.start_ms)
        ids = self.tables.account_id
        self.truth = describe(self.pop)
        for d, g in zip(
            self.truth["campaigns"] + self.truth["groups"],
            [g for g in self.pop.groups if g.kind == "campaign"]
            + [g for g in self.pop.groups if g.kind != "campaign"],
            strict=True,
        ):
            if g.kind != "benign":
                d["accounts"] = ids.take(pa.array(g.accounts)).to_pylist()
        self.truth.update(
            config=asdict(cfg),
            n_accounts=self.pop.n,
            release={
                "model": "atlas-3",
                "first_seen_after": _iso(self.start_ms + self.pop.release_t * 1000),
            },
            window={
                "start": _iso(self.start_ms),
                "end": _iso(self.start_ms + cfg.days * DAY * 1000),
            },
        )

    def day(self, day: int) -> pa.Table | None:
        """The requests of one simulated day, time-ordered (None when the day is empty)."""
        base = day << 40  # request-id counter space of this day
        dow0 = _dt.datetime.fromtimestamp(self.start_ms / 1000, _dt.UTC).weekday()
        tables = []
        for gi, g in enumerate(self.pop.groups):
            if len(g.accounts) == 0:
                continue
            rng = np.random.default_rng([self.config.seed, 2, day, gi])
            piece = STYLES[g.style](rng, self.pop, g, day, (dow0 + day) % 7)
            if len(piece):
                tables.append(finalise(self.pop, self.tables, piece, rng, base, self.config.days))
                base += len(piece)
        if not tables:
            return None
        tbl = pa.concat_tables(tables)
        tbl = tbl.take(pa.array(np.argsort(tbl["timestamp"].to_numpy(), kind="stable")))
        return tbl.cast(SCHEMA)

    def days(self, workers: int = 1) -> Iterator[pa.Table]:
        """One table per simulated day, in order; `workers` > 1 draws days in parallel
        processes (the same tables as serially: every day has its own seeded generators)."""
        if workers <= 1 or self.config.days == 1:
            for d in range(self.config.days):
                tbl = self.day(d)
                if tbl is not None:
                    yield tbl
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(
            workers, mp_context=ctx, initializer=_worker_init, initargs=(self.config,)
        ) as ex:
            pending = [ex.submit(_worker_day, d) for d in range(min(workers + 1, self.config.days))]
            nxt = len(pending)
            while pending:  # a bounded window of days in flight keeps memory bounded
                tbl = pending.pop(0).result()
                if nxt < self.config.days:
                    pending.append(ex.submit(_worker_day, nxt))
                    nxt += 1
                if tbl is not None:
                    yield tbl

    def schema_with_truth(self) -> pa.Schema:
        return SCHEMA.with_metadata({TRUTH_KEY: json.dumps(self.truth).encode()})


_WORKER: dict[str, Simulation] = {}


def _worker_init(config: SimConfig) -> None:
    _WORKER["sim"] = Simulation(config)


def _worker_day(day: int) -> pa.Table | None:
    return _WORKER["sim"].day(day)


def default_workers(config: SimConfig) -> int:
    """Parallel day workers worth starting: 1 for small simulations, else up to 4 CPUs."""
    import os

    if config.n_accounts * config.days < 300_000:
        return 1
    return max(1, min(4, os.cpu_count() or 1, config.days))


def _iso(ms: float) -> str:
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.UTC).isoformat().replace("+00:00", "Z")


def simulate(n_accounts: int = 20000, days: int = 7, seed: int = 0, **kwargs: Any) -> pa.Table:
    """Simulated request logs in the traffic schema; ground truth in the schema metadata."""
    sim = Simulation(SimConfig(n_accounts=n_accounts, days=days, seed=seed, **kwargs))
    tables = list(sim.days())
    tbl = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    return tbl.replace_schema_metadata(sim.schema_with_truth().metadata)


def truth_of(table_or_schema: pa.Table | pa.Schema) -> dict[str, Any] | None:
    """The ground truth stored in a simulated table's (or Parquet file's) schema metadata."""
    schema = table_or_schema.schema if isinstance(table_or_schema, pa.Table) else table_or_schema
    meta = schema.metadata or {}
    raw = meta.get(TRUTH_KEY)
    return json.loads(raw) if raw else None


def truth_path(path: str | Path) -> Path:
    """Where write_logs puts the ground-truth sidecar for a log file."""
    path = Path(path)
    return path.with_name(path.name + ".truth.json")


def write_logs(
    path: str | Path,
    config: SimConfig,
    fmt: str | None = None,
    progress: Callable[[int, int, int], None] | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Simulate and stream to a file day by day (bounded memory); writes FILE.truth.json too.

    `workers` > 1 draws days in that many spawned processes (the output does not depend on
    it; a calling script needs the usual `if __name__ == "__main__":` guard). Returns a summary (rows, campaign rows, accounts, path, truth path)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(path)
    fmt = fmt or _format_of(path)
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose from {list(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    sim = Simulation(config)
    rows = camp = 0
    writer = None
    fh = None
    try:
        for d, tbl in enumerate(sim.days(workers=workers)):
            rows += tbl.num_rows
            camp += tbl.num_rows - tbl["campaign_id"].null_count
            if fmt == "parquet":
                if writer is None:
                    writer = pq.ParquetWriter(path, sim.schema_with_truth(), compression="zstd")
                writer.write_table(
                    tbl.replace_schema_metadata(sim.schema_with_truth().metadata),
                    row_group_size=256_000,
                )
            elif fmt == "csv":
                text_tbl = _stringify_times(tbl)
                if fh is None:
                    fh = pacsv.CSVWriter(str(path), text_tbl.schema)
                fh.write_table(text_tbl)
            else:
                if fh is None:
                    fh = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in finally
                _write_jsonl(fh, tbl)
            if progress:
                progress(d + 1, config.days, rows)
        if fmt == "parquet" and writer is None:
            pq.write_table(
                SCHEMA.empty_table().replace_schema_metadata(sim.schema_with_truth().metadata), path
            )
    finally:
        if writer is not None:
            writer.close()
        if fh is not None:
            fh.close()
    tp = truth_path(path)
    tp.write_text(json.dumps(sim.truth, indent=1) + "\n")
    return {
        "path": str(path),
        "truth": str(tp),
        "format": fmt,
        "rows": rows,
        "campaign_rows": camp,
        "accounts": sim.pop.n,
        "campaigns": [c["campaign_id"] for c in sim.truth["campaigns"]],
    }


def _format_of(path: Path) -> str:
    s = path.name.lower()
    if s.endswith(".parquet") or s.endswith(".pq"):
        return "parquet"
    if s.endswith(".jsonl") or s.endswith(".ndjson") or s.endswith(".json"):
        return "jsonl"
    if s.endswith(".csv"):
        return "csv"
    return "parquet"


def _stringify_times(tbl: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    for name in ("timestamp", "account_created_at"):
        i = tbl.schema.get_field_index(name)
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        tbl = tbl.set_column(i, name, pc.strftime(tbl[name], format=fmt))
    return tbl


def _write_jsonl(fh: Any, tbl: pa.Table) -> None:
    df = _stringify_times(tbl).to_pandas(integer_object_nulls=True)
    text = df.to_json(orient="records", lines=True, force_ascii=False)
    if text and not text.endswith("\n"):
        text += "\n"
    fh.write(text)


__all__ = [
    "ARCHETYPES",
    "FORMATS",
    "LANGUAGES",
    "LOOKALIKES",
    "SCHEMA",
    "WORDINGS",
    "SimConfig",
    "Simulation",
    "families",
    "family_config",
    "simulate",
    "truth_of",
    "truth_path",
    "write_logs",
]
