"""CLI for provenance: `distilltrace provenance test` and `distilltrace bench provenance`."""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import typer

from distilltrace.errors import InputError

app = typer.Typer(no_args_is_help=True)


def _cache_file(cache: Path | None) -> Path | None:
    """The query-cache file inside a cache folder (a path with a suffix is used as is)."""
    if cache is None:
        return None
    if cache.suffix or cache.is_file():
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    return cache / "queries.sqlite"


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())


def _model_key(spec: str) -> str:
    """A model spec's identity before loading: the real path of a local folder or file (so
    c1, ./c1/ and a symlink to it are one model), the normalised spec otherwise."""
    from distilltrace.models.spec import parse_spec

    p = parse_spec(spec)
    if p.kind in ("hf", "gguf"):
        return "path:" + os.path.realpath(Path(p.target).expanduser())
    if p.kind == "openai":
        u = urlsplit(p.target)
        base = urlunsplit((u.scheme.lower(), u.netloc.lower(), u.path.rstrip("/"), u.query, ""))
        return f"openai:{base};model={p.options['model']}"
    return f"{p.kind}:{p.target}"


def _once(specs: list[str], what: str, seen: dict[str, str] | None = None) -> list[str]:
    """specs with repeats of one model (see _model_key) left out, each with a warning."""
    seen = {} if seen is None else dict(seen)
    out = []
    for s in specs:
        k = _model_key(s)
        if k in seen:
            same = "" if seen[k] == s else f" (the same model as {seen[k]!r})"
            typer.echo(f"warning: {what} {s!r} given more than once{same}: counted once", err=True)
            continue
        seen[k] = s
        out.append(s)
    return out


def _ref_controls(ref_control: list[str], n_refs: int) -> list[tuple[int, str]]:
    out = []
    for item in ref_control:
        n, _, spec = item.partition(":")
        if not n.strip().isdigit() or not spec or not 1 <= int(n) <= n_refs:
            raise InputError(
                f"--ref-control {item!r}: give N:SPEC with N from 1 to {n_refs} "
                "(the position of its --reference)"
            )
        out.append((int(n) - 1, spec))
    return out


def _checked_specs(
    suspect: str, reference: list[str], control: list[str], ref_control: list[str]
) -> tuple[list[str], list[list[str]]]:
    """Distinct references and, for each, its distinct controls; checked before any model
    is loaded: no control is the suspect or its reference, at least MIN_CONTROLS each."""
    extra = _ref_controls(ref_control, len(reference))
    refs = _once(reference, "--reference")
    pos = {_model_key(r): j for j, r in enumerate(refs)}
    shared = _once(control, "--control")
    seen = {_model_key(c): c for c in shared}
    per_ref = [list(shared) for _ in refs]
    for i, spec in extra:
        per_ref[pos[_model_key(reference[i])]].append(spec)
    per_ref = [shared + _once(cl[len(shared) :], "--ref-control", seen) for cl in per_ref]
    for r, cl in zip(refs, per_ref, strict=True):
        _check_controls(suspect, r, cl)
    return refs, per_ref


def _check_controls(suspect: str, ref: str, specs: list[str]) -> None:
    from distilltrace.provenance.tester import MIN_CONTROLS, WHY_CONTROLS

    for c in specs:
        for what, m in (("--suspect", suspect), ("--reference", ref)):
            if _model_key(c) == _model_key(m):
                raise InputError(
                    f"control {c!r} is the {what} {m!r} itself: a control must be another "
                    "model, known not to derive from the reference"
                )
    if len(specs) < MIN_CONTROLS:
        raise InputError(
            f"{len(specs)} control(s) for --reference {ref} (repeats counted once), at least "
            f"{MIN_CONTROLS} are needed: {WHY_CONTROLS}"
        )


@contextlib.contextmanager
def _warnings_as_lines():
    """Show the library's repeated-model warnings as one 'warning:' line each."""
    from distilltrace.provenance.tester import RepeatedModelWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RepeatedModelWarning)
        yield
    for w in caught:
        if issubclass(w.category, RepeatedModelWarning):
            typer.echo(f"warning: {w.message}", err=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


@app.command("test")
def test(
    suspect: str = typer.Option(..., "--suspect", help="Model spec of the suspect."),
    reference: list[str] = typer.Option(..., "--reference", help="Reference model spec (repeat)."),
    control: list[str] = typer.Option(
        [],
        "--control",
        help="Control model spec, known not to derive from any reference (repeat; >= 2).",
    ),
    ref_control: list[str] = typer.Option(
        [],
        "--ref-control",
        help="N:SPEC, a control for the N-th --reference only (1-based; repeat): a model "
        "known not to derive from that reference, though perhaps from another.",
    ),
    budget: int = typer.Option(1000, "--budget", help="Suspect queries in all."),
    alpha: float = typer.Option(0.01, "--alpha", help="Family-wise error rate over references."),
    out: Path = typer.Option(Path("provenance-out"), "--out", help="Output folder."),
    cache: Path | None = typer.Option(
        None, "--cache", help="Query cache folder (or .sqlite file)."
    ),
    seed: int = typer.Option(0, "--seed"),
    prompts: list[Path] = typer.Option([], "--prompts", help="Extra probe prompt files (repeat)."),
    pool_size: int = typer.Option(3000, "--pool-size", help="Generated probe prompts in the pool."),
    prompt_source: str = typer.Option(
        "auto", "--prompt-source", help="auto | distill | builtin | none"
    ),
    max_new_tokens: int = typer.Option(48, "--max-new-tokens"),
    no_adaptive: bool = typer.Option(False, "--no-adaptive", help="Use pool prompts uniformly."),
    reverse_margin: float = typer.Option(
        0.05,
        "--reverse-margin",
        help="Nats per character the suspect must beat each control by on the reference's "
        "outputs (reverse likelihood test).",
    ),
) -> None:
    """Test whether SUSPECT derives from each REFERENCE, against CONTROLS."""
    from distilltrace.models import load_model
    from distilltrace.provenance.report import write_report
    from distilltrace.provenance.tester import ProvenanceConfig, check_out_dir, test_provenance

    reference, per_ref = _checked_specs(suspect, reference, control, ref_control)
    check_out_dir(out)
    cf = _cache_file(cache)
    cfg = ProvenanceConfig(
        seed=seed,
        prompt_files=tuple(str(p) for p in prompts),
        pool_size=pool_size,
        prompt_source=prompt_source,
        max_new_tokens=max_new_tokens,
        adaptive=not no_adaptive,
        reverse_margin=reverse_margin,
    )
    s = load_model(suspect, cache=cf)
    loaded: dict[str, Any] = {}  # one load per model, however its spec is spelled

    def get(spec: str) -> Any:
        k = _model_key(spec)
        if k not in loaded:
            loaded[k] = load_model(spec, cache=cf)
        return loaded[k]

    refs = [get(r) for r in reference]
    ctrls = [[get(c) for c in cl] for cl in per_ref]
    with _progress() as prog:
        task = prog.add_task("provenance", total=None)

        def note(msg: str, done: int, total: int) -> None:
            prog.update(task, description=msg, completed=done, total=total)

        with _warnings_as_lines():
            res = test_provenance(
                s, refs, ctrls, budget=budget, alpha=alpha, config=cfg, progress=note
            )
    paths = write_report(res, out)
    typer.echo(res.verdict)
    for r in res.references:
        typer.echo(
            f"  {r.reference}: combined p = {r.combined_pvalue}, Holm p = {r.holm_pvalue}"
            + (f" [identical: {r.identical}]" if r.identical else "")
        )
    typer.echo(f"plausible parents: {', '.join(res.plausible_parents) or 'none'}")
    typer.echo(f"wrote {paths['json']} and {paths['html']}")


def bench(
    zoo: Path = typer.Option(..., "--zoo", help="Zoo folder (with its manifest)."),
    budget: int = typer.Option(1000, "--budget", help="Suspect queries per test."),
    out: Path = typer.Option(Path("bench-provenance"), "--out", help="Output folder."),
    cache: Path | None = typer.Option(
        None, "--cache", help="Query cache folder (default: OUT/cache)."
    ),
    seed: int = typer.Option(0, "--seed"),
    pool_size: int = typer.Option(1500, "--pool-size"),
    limit: int | None = typer.Option(
        None, "--limit", help="At most this many suspects (smoke runs)."
    ),
    max_controls: int | None = typer.Option(
        None, "--max-controls", help="At most this many controls per test (seeded subset)."
    ),
    n_sampled: int = typer.Option(100, "--n-sampled", help="Prompts with sampled outputs."),
    any_controls: bool = typer.Option(
        False,
        "--any-controls",
        help="Use every non-derived model as a control, not only those of the suspect's recipe.",
    ),
) -> None:
    """Every suspect in the zoo against every teacher, scored against the manifest."""
    from distilltrace.provenance.bench import run_bench
    from distilltrace.provenance.tester import ProvenanceConfig, check_out_dir

    check_out_dir(out)
    cf = _cache_file(cache if cache is not None else out / "cache")
    with _progress() as prog:
        task = prog.add_task("bench", total=None)

        def note(msg: str, done: int, total: int) -> None:
            prog.update(task, description=msg, completed=done, total=total)

        res = run_bench(
            zoo,
            budget=budget,
            out=out,
            cache=cf,
            seed=seed,
            pool_size=pool_size,
            limit=limit,
            max_controls=max_controls,
            match_recipe=not any_controls,
            config=ProvenanceConfig(n_sampled=n_sampled),
            progress=note,
        )
    typer.echo(res.summary())
    typer.echo(f"wrote {out / 'bench.json'} and {out / 'bench.html'}")
