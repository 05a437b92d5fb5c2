"""Harvest a teacher: query it on prompts and store (prompt, response, metadata) records.

Resumable: prompts already in the output file are skipped, and each prompt's sampler is
seeded by (seed, prompt) in the model layer, so an interrupted and resumed harvest writes
the same records as an uninterrupted one. A teacher that fails midway keeps what it has.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from distilltrace.distill.dataset import Record, append_records, read_records, repair_partial_tail
from distilltrace.distill.progress import progress_bar
from distilltrace.distill.prompts import Prompt
from distilltrace.errors import EndpointError, InputError


@dataclass(frozen=True)
class HarvestResult:
    """What a harvest did: prompts asked, found already present, newly answered, tokens."""

    path: str
    teacher: str
    n_prompts: int
    n_existing: int
    n_new: int
    n_duplicates_dropped: int
    new_tokens: int | None
    wall_s: float
    tokens_per_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_prompts(prompts: Sequence[str | Prompt]) -> list[Prompt]:
    out: list[Prompt] = []
    for i, p in enumerate(prompts):
        if isinstance(p, Prompt):
            out.append(p)
        elif isinstance(p, str):
            if not p.strip():
                raise InputError(f"prompt {i + 1} is empty")
            out.append(Prompt(text=p, family="", topic=""))
        else:
            raise InputError(f"prompt {i + 1} must be a string, got {type(p).__name__}")
    return out


def harvest_params(
    teacher: Any, max_new_tokens: int, temperature: float, top_p: float, seed: int
) -> dict[str, Any]:
    """The metadata that identifies how records were made (checked on resume)."""
    info = teacher.info
    return {
        "teacher": info.name,
        "teacher_identity": info.identity,
        "max_new_tokens": int(max_new_tokens),
        "temperature": float(temperature),
        "top_p": float(top_p),
        "seed": int(seed),
    }


def harvest(
    teacher: Any,
    prompts: Sequence[str | Prompt],
    out_path: str | Path,
    *,
    max_new_tokens: int = 128,
    temperature: float = 0.7,
    top_p: float = 0.95,
    seed: int = 0,
    batch_size: int = 8,
    logits_processors: Sequence[Any] | None = None,
    progress: bool = True,
) -> HarvestResult:
    """Query `teacher` (a Model or a model spec) on `prompts`, appending records to
    `out_path` (.jsonl or .parquet); prompts already present are skipped."""
    if isinstance(teacher, str):
        from distilltrace.models import load_model

        teacher = load_model(teacher)
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    out = Path(out_path)
    items = _as_prompts(prompts)
    uniq: dict[str, Prompt] = {}
    for p in items:
        uniq.setdefault(p.text, p)
    n_dup = len(items) - len(uniq)
    params = harvest_params(teacher, max_new_tokens, temperature, top_p, seed)
    if logits_processors:
        params["logits_processors"] = [type(lp).__name__ for lp in logits_processors]

    existing = _existing_prompts(out, params)
    todo = [p for p in uniq.values() if p.text not in existing]
    n_existing = len(uniq) - len(todo)

    t0 = time.perf_counter()
    sampling = {
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "seed": seed,
        "logits_processors": logits_processors,
    }
    run = _HarvestRun(teacher, out, params, len(uniq), n_existing, t0)
    saved_bs = getattr(teacher, "batch_size", None)
    try:
        if saved_bs is not None:
            teacher.batch_size = batch_size
        with progress_bar(f"harvest {teacher.info.name}", len(todo), progress) as bar:
            for start in range(0, len(todo), batch_size):
                run.batch(todo[start : start + batch_size], sampling)
                el = time.perf_counter() - t0
                info = f"{run.new_tokens / el:.0f} tok/s" if run.new_tokens and el > 0 else ""
                bar.update(run.done, info)
    finally:
        if saved_bs is not None:
            teacher.batch_size = saved_bs
    new_tokens, done = run.new_tokens, run.done
    wall = time.perf_counter() - t0
    if not out.exists() and not todo:
        raise InputError("no prompts to harvest")
    return HarvestResult(
        path=str(out),
        teacher=teacher.info.name,
        n_prompts=len(uniq),
        n_existing=n_existing,
        n_new=done,
        n_duplicates_dropped=n_dup,
        new_tokens=new_tokens,
        wall_s=round(wall, 3),
        tokens_per_s=(new_tokens / wall) if (new_tokens and wall > 0) else None,
    )


def _existing_prompts(out: Path, params: dict[str, Any]) -> set[str]:
    """Prompts already in `out`; records made with another teacher or other sampling
    parameters are refused (mixing them would corrupt the dataset)."""
    existing: set[str] = set()
    if not (out.exists() and out.stat().st_size > 0):
        return existing
    repair_partial_tail(out)  # a line cut off by an earlier crash is re-harvested
    for i, r in enumerate(read_records(out), start=1):
        mismatch = {
            k: (r.meta.get(k), v)
            for k, v in params.items()
            if k != "teacher_identity" and r.meta.get(k) != v
        }
        if r.meta.get("teacher_identity") not in (None, params["teacher_identity"]):
            mismatch["teacher_identity"] = ("another model", "this teacher")
        if mismatch:
            k, (old, new) = next(iter(mismatch.items()))
            raise InputError(
                f"{out}: record {i} was harvested with {k}={old!r}, this run uses {new!r}; "
                "write to a new file to change the teacher or sampling parameters"
            )
        existing.add(r.prompt)
    return existing


@dataclass
class _HarvestRun:
    """One harvest's progress: each batch is generated and appended to the file at once."""

    teacher: Any
    out: Path
    params: dict[str, Any]
    n_prompts: int
    n_existing: int
    t0: float
    done: int = 0
    new_tokens: int | None = 0

    def batch(self, chunk: list[Prompt], sampling: dict[str, Any]) -> None:
        name, kept = self.teacher.info.name, self.n_existing + self.done
        try:
            gens = self.teacher.generate([p.text for p in chunk], **sampling)
        except EndpointError as e:
            raise EndpointError(
                f"teacher {name} failed after {kept} of {self.n_prompts} prompts ({e}); the "
                f"{kept} records so far are kept in {self.out}; rerun the same command to continue"
            ) from e
        except (OSError, RuntimeError) as e:
            raise EndpointError(
                f"teacher {name} failed after {kept} of {self.n_prompts} prompts "
                f"({type(e).__name__}: {e}); the records so far are kept in {self.out}; rerun "
                "the same command to continue"
            ) from e
        recs = []
        for p, g in zip(chunk, gens, strict=True):
            n_tok = len(g.token_ids) if g.token_ids else None
            if n_tok is None or self.new_tokens is None:
                self.new_tokens = None
            else:
                self.new_tokens += n_tok
            meta = dict(self.params)
            meta.update(
                family=p.family, topic=p.topic, finish_reason=g.finish_reason, n_tokens=n_tok
            )
            recs.append(Record(prompt=p.text, response=g.text, meta=meta))
        append_records(self.out, recs)
        self.done += len(chunk)
