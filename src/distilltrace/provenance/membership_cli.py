"""`distilltrace provenance membership`: did the suspect learn the answers we served?

The provider's own question, when it logged what it served: the exact rank test of
`provenance.membership` on a file of served exchanges (JSON Lines with `prompt` and
`response`, and the serving settings `temperature`, `max_tokens`, `top_p` per row or as
options; traffic-log rows qualify). Our model draws `--fresh` answers per exchange under
the same settings (and the watermark key the answers were served under, `--key`), the
suspect and our model score every answer, and the test ranks each served answer among
its fresh ones. Our model's answers and scores are kept in the query cache (`--cache`),
so a second suspect costs only its own scores. The same test is the custody claim
`harvest_membership`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import typer

from distilltrace.errors import InputError

CHUNK = 64  # exchanges per progress step (draw and score)


def read_served(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The served exchanges of a JSON Lines file (one id per row, in file order), and the
    number of rows quarantined (not JSON objects, or without a non-empty string prompt
    and response)."""
    if not path.is_file():
        raise InputError(f"--served {path}: no such file")
    rows, bad = [], 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            ok = isinstance(r, dict) and all(
                isinstance(r.get(k), str) and r.get(k) for k in ("prompt", "response")
            )
            if not ok:
                bad += 1
                continue
            rows.append({**r, "request_id": f"row-{len(rows) + bad}"})
    return rows, bad


def _chunks(n: int) -> list[range]:
    return [range(i, min(n, i + CHUNK)) for i in range(0, n, CHUNK)]


class Selection(NamedTuple):
    """What `selection` chose: per row its serving settings and logged context (system
    prompt, "" for none), the exchanges tested and the counts left out, by reason."""

    settings: list
    idx: list[int]
    left: dict[str, int]
    contexts: list[dict]  # each row's logged context (custody.logs.exchange_contexts)

    @property
    def systems(self) -> list[str]:
        return [c["system"] for c in self.contexts]


def selection(
    rows: list[dict], cfg: dict[str, Any], ours: dict[str, int] | None = None
) -> Selection:
    """Each row's serving settings and system prompt, the exchanges tested (custody's
    rules) and the counts left out; InputError when none can be tested. Checked before any
    model is loaded (`ours` None: billed input_tokens are not yet set against our model's
    encoding), then again with `ours` (`counted_selection`)."""
    from distilltrace.custody.logs import exchange_contexts, serving_settings

    settings = serving_settings(rows, rows, cfg)
    return _choose(rows, cfg, settings, exchange_contexts(rows, rows), ours)


def _choose(
    rows: list[dict], cfg: dict[str, Any], settings: list, logged: list[dict],
    ours: dict[str, int] | None,
) -> Selection:  # fmt: skip
    from distilltrace.custody.claims import membership_exchanges, with_our_counts

    if ours is None:
        contexts = [{**c, "ours": c["input_tokens"]} for c in logged]
    else:
        contexts = with_our_counts(logged, rows, ours)
    idx, left = membership_exchanges(rows, settings, cfg, contexts)
    if not idx:
        raise InputError(
            f"no served exchange can be tested (left out: {left}); rows without temperature "
            "and max_tokens need --temperature and --max-tokens"
        )
    return Selection(settings, idx, left, logged)


def counted_selection(
    rows: list[dict], cfg: dict[str, Any], chosen: Selection, reference: Any
) -> Selection:
    """`chosen` with the rows whose billed input_tokens are not our model's encoding of
    their system prompt and user turn left out (membership rules 3, "hidden_context"),
    once our model is loaded; `chosen` itself when no row has a count. Without our
    tokenizer (an endpoint) every counted row is left out: its context cannot be checked.
    The rows' settings and contexts are `chosen`'s, not read again."""
    from distilltrace.provenance.membership import our_counts

    ctx = chosen.contexts
    if int(cfg.get("membership_rules", 1)) < 3 or all(c["input_tokens"] is None for c in ctx):
        return chosen
    local = getattr(reference, "tokenizer", None) is not None
    ours = our_counts(reference, rows, ctx) if local else {}
    return _choose(rows, cfg, chosen.settings, ctx, ours)


def run_membership(
    suspect: Any,
    reference: Any,
    rows: list[dict],
    cfg: dict[str, Any],
    processors: list,
    chosen: Selection,
) -> tuple[Any, list[dict]]:
    """Draw fresh answers for the `chosen` exchanges (`selection`), score, test. Returns the
    result and the transcript (one row per tested exchange)."""
    from distilltrace.progress import progress_display
    from distilltrace.provenance.membership import draw_fresh, score_exchanges, test_logprobs

    settings, idx, systems = chosen.settings, chosen.idx, chosen.systems
    k = int(cfg["membership_fresh"])
    transcript: list[dict] = []
    chunks = _chunks(len(idx))
    with progress_display() as bar:
        # one step per fresh draw of a chunk and one for its scoring: a line at least
        # every chunk's draw (tens of seconds on 2 cores), never minutes of silence
        task = bar.add_task("membership: fresh answers, then scores", total=len(chunks) * (k + 1))
        step = 0
        for part in chunks:
            ex = [rows[idx[i]] for i in part]
            st = [settings[idx[i]] for i in part]
            prompts = [str(r["prompt"]) for r in ex]
            sys_p = [systems[idx[i]] for i in part]
            answers = [[str(r["response"])] for r in ex]
            for j in range(k):
                seed = int(cfg["membership_seed"]) + j
                drawn = draw_fresh(reference, prompts, st, 1, seed, processors, sys_p)
                for a, f in zip(answers, drawn, strict=True):
                    a.append(f[0])
                step += 1
                bar.update(task, completed=step)
            s_lp, r_lp = score_exchanges(suspect, reference, prompts, answers)
            transcript += [{"row": r["request_id"], "settings": s, "answers": a,
                            "suspect_logprob": sl, "reference_logprob": rl}
                           for r, s, a, sl, rl in zip(ex, st, answers, s_lp, r_lp, strict=True)]  # fmt: skip
            step += 1
            bar.update(task, completed=step)
    res = test_logprobs([x["suspect_logprob"] for x in transcript],
                        [x["reference_logprob"] for x in transcript],
                        [x["answers"] for x in transcript], seed=int(cfg["seed"]))  # fmt: skip
    return res, transcript


def membership(
    suspect: str = typer.Option(
        ..., "--suspect", help="Model spec of the suspect (it must score text)."
    ),
    reference: str = typer.Option(
        ..., "--reference", help="Our model: the one that served the answers."
    ),
    served: Path = typer.Option(
        ..., "--served", help="JSON Lines of served exchanges (prompt, response)."
    ),
    key: Path | None = typer.Option(
        None, "--key", help="Watermark key file the answers were served under."
    ),
    fresh: int = typer.Option(1, "--fresh", min=1, help="Fresh answers per exchange (k)."),
    temperature: float | None = typer.Option(
        None, help="Serving temperature, for rows without one."
    ),
    max_tokens: int | None = typer.Option(None, help="Serving length cap, for rows without one."),
    top_p: float = typer.Option(1.0, help="Serving top-p, for rows without one."),
    most: int = typer.Option(128, "--max", min=1, help="Exchanges tested at most (seeded sample)."),
    seed: int = typer.Option(0, help="Seed of the sample and the tie-breaking."),
    out: Path | None = typer.Option(None, "--out", help="Write the result and transcript (JSON)."),
    cache: Path | None = typer.Option(
        None,
        "--cache",
        help="Query cache for our model's fresh answers and scores, reused "
        "across suspects (default: the provenance cache).",
    ),  # fmt: skip
    no_cache: bool = typer.Option(False, "--no-cache", help="Keep no query cache on disk."),
) -> None:
    """Did the suspect learn the exact answers we served? An exact rank test."""
    from distilltrace.models import load_model
    from distilltrace.provenance.config import ProvenanceConfig
    from distilltrace.provenance.served import check_served, membership_settings

    if out is not None and not out.parent.is_dir():
        raise InputError(f"--out {out}: folder {out.parent} does not exist")
    pcfg = ProvenanceConfig(served=str(served), served_temperature=temperature,
                            served_max_tokens=max_tokens, served_top_p=top_p,
                            membership_fresh=fresh, membership_max=most, seed=seed)  # fmt: skip
    cfg = membership_settings(pcfg)  # the same settings as `provenance test --served`
    rows, bad, chosen = check_served(pcfg)  # fails before the models load
    s, ref = load_model(suspect), load_model(reference)
    chosen = counted_selection(rows, cfg, chosen, ref)
    if not no_cache:  # our model's fresh answers and scores do not depend on the suspect
        from distilltrace.models.cache import CachedModel
        from distilltrace.provenance.cli import _cache_file, default_cache

        ref = CachedModel(ref, _cache_file(cache if cache is not None else default_cache()))
    procs = []
    if key is not None:
        from distilltrace.marks.keys import load_watermark

        procs = load_watermark(key).logits_processors(ref)
    res, transcript = run_membership(s, ref, rows, cfg, procs, chosen)
    left = chosen.left
    typer.echo(f"{len(rows) + bad} rows read: {len(rows)} exchanges, {bad} quarantined "
               f"(no prompt or response); tested {res.n}, left out {left}")  # fmt: skip
    typer.echo(f"served answer ranked above all {fresh} fresh answer(s) in "
               f"{res.n_above_all} of {res.n} (expected about "
               f"{res.n / (fresh + 1):.1f} under the null)")  # fmt: skip
    typer.echo(f"membership p = {res.pvalue:.3g} (mean rank {res.statistic:.3f}; null: {res.null})")
    if out is not None:
        doc = {**res.to_dict(), "left_out": left, "quarantined": bad, "config": cfg,
               "suspect": suspect, "reference": reference, "transcript": transcript}  # fmt: skip
        out.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        typer.echo(f"written {out}")
