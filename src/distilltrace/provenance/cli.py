"""CLI for provenance: `distilltrace provenance test` (`distilltrace bench provenance` is in
distilltrace.bench.provenance_cli). Options left out take the library's defaults
(ProvenanceConfig), which the help shows."""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import typer

from distilltrace.errors import InputError
from distilltrace.prompts import unescape_pattern
from distilltrace.provenance.config import DEFAULTS, MIN_CONTROLS, WHY_CONTROLS

app = typer.Typer(no_args_is_help=True)


def _cache_file(cache: Path | None) -> Path | None:
    """The query-cache file inside a cache folder (a path with a suffix is used as is)."""
    if cache is None:
        return None
    if cache.suffix or cache.is_file():
        return cache
    cache.mkdir(parents=True, exist_ok=True)
    return cache / "queries.sqlite"


def default_cache() -> Path:
    """The query cache used when --cache is not given: reference and control answers and
    scores are kept across runs, so a second suspect against the same references and
    controls costs only its own queries."""
    from distilltrace.paths import home

    return home() / "provenance-cache" / "queries.sqlite"


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
    from distilltrace.provenance.inputs import RepeatedModelWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RepeatedModelWarning)
        yield
    for w in caught:
        if issubclass(w.category, RepeatedModelWarning):
            typer.echo(f"warning: {w.message}", err=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def dtype_option() -> Any:
    """The --dtype option (provenance test, bench provenance)."""
    return typer.Option(
        None,
        "--dtype",
        help="Compute precision of local models: auto (bfloat16 where the CPU or GPU runs "
        "it natively, else float32), float32, bfloat16.",
        show_default=DEFAULTS.dtype,
    )


def membership_fresh_option() -> Any:
    """The --membership-fresh option (provenance test, bench provenance)."""
    return typer.Option(
        None,
        "--membership-fresh",
        min=1,
        help="Fresh answers from the reference per served exchange (k).",
        show_default=str(DEFAULTS.membership_fresh),
    )


def _load_models(
    suspect: str,
    reference: list[str],
    per_ref: list[list[str]],
    cache: Path | None,
    dtype: str | None = None,
) -> tuple[Any, list[Any], list[list[Any]]]:
    """The suspect, references and control lists, one load per model however its spec is
    spelled (see _model_key)."""
    from distilltrace.models import load_model

    s = load_model(suspect, cache=cache, dtype=dtype)
    loaded: dict[str, Any] = {}

    def get(spec: str) -> Any:
        k = _model_key(spec)
        if k not in loaded:
            loaded[k] = load_model(spec, cache=cache, dtype=dtype)
        return loaded[k]

    refs = [get(r) for r in reference]
    return s, refs, [[get(c) for c in cl] for cl in per_ref]


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
    budget: int | None = typer.Option(
        None, "--budget", help="Suspect queries in all.", show_default=str(DEFAULTS.budget)
    ),
    alpha: float | None = typer.Option(
        None,
        "--alpha",
        help="Family-wise error rate over references.",
        show_default=str(DEFAULTS.alpha),
    ),
    out: Path = typer.Option(Path("provenance-out"), "--out", help="Output folder."),
    cache: Path | None = typer.Option(
        None,
        "--cache",
        help="Query cache folder (or .sqlite file); default: $DISTILLTRACE_HOME/"
        "provenance-cache (reference and control work is reused across suspects).",
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="Keep no query cache on disk."),
    seed: int | None = typer.Option(None, "--seed", show_default=str(DEFAULTS.seed)),
    suspect_format: str | None = typer.Option(
        None,
        "--suspect-format",
        help="How the suspect is prompted: chat (its template), raw, auto (a pilot on "
        "prompts no test uses picks the format with the fewest degenerate answers), or a "
        "pattern such as 'Question: {prompt}\\nAnswer: ' (\\n is a newline).",
        show_default=DEFAULTS.suspect_format,
    ),
    try_format: list[str] = typer.Option(
        [], "--try-format", help="A pattern with {prompt} that --suspect-format auto also tries."
    ),
    control_rule: str | None = typer.Option(
        None,
        "--control-rule",
        help="all: the suspect must beat every control; matched: every capability-matched "
        "control (fit to neutral text, size, answer quality; chosen before any test).",
        show_default=DEFAULTS.control_rule,
    ),
    test_names: list[str] = typer.Option(
        [],
        "--test",
        help="Run these registered tests instead of the defaults (repeat; e.g. first_words).",
    ),
    prompts: list[Path] = typer.Option([], "--prompts", help="Extra probe prompt files (repeat)."),
    pool_size: int | None = typer.Option(
        None,
        "--pool-size",
        help="Generated probe prompts in the pool.",
        show_default=str(DEFAULTS.pool_size),
    ),
    prompt_source: str | None = typer.Option(
        None,
        "--prompt-source",
        help="auto | distill | builtin | none",
        show_default=DEFAULTS.prompt_source,
    ),
    max_new_tokens: int | None = typer.Option(
        None, "--max-new-tokens", show_default=str(DEFAULTS.max_new_tokens)
    ),
    no_adaptive: bool = typer.Option(False, "--no-adaptive", help="Use pool prompts uniformly."),
    always_stream: bool = typer.Option(
        False,
        "--always-stream",
        help="Run the greedy stream even for a reference the fixed-sample tests already "
        "decided (for its examples and per-family table; costs queries and time).",
    ),
    dtype: str | None = dtype_option(),
    reverse_margin: float | None = typer.Option(
        None,
        "--reverse-margin",
        help="Nats per character the suspect must beat each control by on the reference's "
        "outputs (reverse likelihood test).",
        show_default=str(DEFAULTS.reverse_margin),
    ),
    served: Path | None = typer.Option(
        None,
        "--served",
        help="JSON Lines of exchanges the reference served (prompt, response): adds the "
        "harvest_membership test (did the suspect learn these answers?) to the tests run.",
    ),
    served_key: Path | None = typer.Option(
        None, "--served-key", help="The watermark key file the served answers were marked with."
    ),
    served_by: str | None = typer.Option(
        None, "--served-by", help="The reference (spec or name) that served them (with several)."
    ),
    served_temperature: float | None = typer.Option(
        None, "--served-temperature", help="Serving temperature, for served rows without one."
    ),
    served_max_tokens: int | None = typer.Option(
        None, "--served-max-tokens", help="Serving length cap, for served rows without one."
    ),
    membership_fresh: int | None = membership_fresh_option(),
) -> None:
    """Test whether SUSPECT derives from each REFERENCE, against CONTROLS."""
    from distilltrace.provenance.inputs import check_out_dir
    from distilltrace.provenance.report import write_report
    from distilltrace.provenance.tester import test_provenance

    reference, per_ref = _checked_specs(suspect, reference, control, ref_control)
    check_out_dir(out)
    cf = None if no_cache else _cache_file(cache if cache is not None else default_cache())
    cfg = DEFAULTS.with_options(
        budget=budget,
        alpha=alpha,
        seed=seed,
        prompt_files=tuple(str(p) for p in prompts),
        pool_size=pool_size,
        prompt_source=prompt_source,
        max_new_tokens=max_new_tokens,
        adaptive=False if no_adaptive else None,
        stop_when_decided=False if always_stream else None,
        reverse_margin=reverse_margin,
        suspect_format=unescape_pattern(suspect_format),
        format_candidates=tuple(unescape_pattern(f) for f in try_format) or None,
        control_rule=control_rule,
        tests=_with_membership(tuple(test_names), served),
        dtype=dtype,
        served=None if served is None else str(served),
        served_key=None if served_key is None else str(served_key),
        served_by=served_by,
        served_temperature=served_temperature,
        served_max_tokens=served_max_tokens,
        membership_fresh=membership_fresh,
    )
    from distilltrace.provenance.inputs import check_config, check_request
    from distilltrace.provenance.registry import selected
    from distilltrace.provenance.suspect_format import check_format

    check_config(cfg)
    check_format(cfg.suspect_format, cfg.format_candidates)
    selected(cfg.tests)
    check_request(reference, cfg)  # the served file, before any model loads
    s, refs, ctrls = _load_models(suspect, reference, per_ref, cf, cfg.dtype)
    from distilltrace.progress import progress_display

    with progress_display() as prog:
        task = prog.add_task("provenance", total=None)

        def note(msg: str, done: int, total: int) -> None:
            prog.update(task, description=msg, completed=done, total=total)

        with _warnings_as_lines():
            res = test_provenance(s, refs, ctrls, config=cfg, progress=note)
    paths = write_report(res, out)
    for w in res.warnings:
        typer.echo(f"warning: {w}", err=True)
    typer.echo(res.verdict)
    for r in res.references:
        typer.echo(
            f"  {r.reference}: combined p = {r.combined_pvalue}, Holm p = {r.holm_pvalue}"
            + (f" [identical: {r.identical}]" if r.identical else "")
        )
    typer.echo(f"plausible parents: {', '.join(res.plausible_parents) or 'none'}")
    typer.echo(f"wrote {paths['json']} and {paths['html']}")


def _with_membership(names: tuple[str, ...], served: Path | None) -> tuple[str, ...] | None:
    """The tests to run: as named (or the defaults), plus harvest_membership with --served."""
    from distilltrace.provenance.membership import NAME

    if served is None:
        return names or None
    names = names or DEFAULTS.tests
    return names if NAME in names else (*names, NAME)


def _register_membership() -> None:
    from distilltrace.provenance.membership_cli import membership

    app.command("membership")(membership)


_register_membership()
