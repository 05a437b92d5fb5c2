"""CLI for marks: keygen, detect, radioactivity (`distilltrace bench marks`: bench.marks_cli)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from distilltrace.errors import InputError

app = typer.Typer(no_args_is_help=True)


def _tokenizer_for(wm, spec: str | None):
    """The key's tokenizer: from --tokenizer SPEC, else from the spec recorded in the key."""
    from distilltrace.models import load_model

    spec = spec or wm.tokenizer.spec
    if not spec or spec.startswith("memory:"):
        raise InputError(
            f"key {wm.key_id} records no loadable tokenizer; pass --tokenizer MODEL_SPEC"
        )
    model = load_model(spec)
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        raise InputError(f"model {spec!r} has no local tokenizer; pass --tokenizer MODEL_SPEC")
    return tok


def _scoring_tokenizer(wm, model, spec: str | None):
    """The suspect's own tokenizer when it is the key's (no reload), else the key's."""
    tok = getattr(model, "tokenizer", None)
    if spec is None and tok is not None and wm.tokenizer.matches(tok):
        return tok
    return _tokenizer_for(wm, spec)


def _given(**options) -> dict:
    """The options the user gave (None: the library's default applies)."""
    return {k: v for k, v in options.items() if v is not None}


def _scheme_options(gamma: float | None, delta: float | None, param: list[str]) -> dict:
    """The scheme's own parameters from the command line: only those given (the scheme's
    defaults apply to the rest). --param KEY=VALUE takes a JSON value (or a string)."""
    opts = _given(gamma=gamma, delta=delta)
    for item in param:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise InputError(f"--param must be KEY=VALUE, got {item!r}")
        try:
            opts[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            opts[key.strip()] = value
    return opts


@app.command("keygen")
def keygen(
    out: Path = typer.Option(..., "--out", help="Key file to write (JSON, mode 0600)."),
    model: str = typer.Option(..., "--model", help="Model spec whose tokenizer the key binds."),
    scheme: str | None = typer.Option(
        None,
        help="A registered scheme: tournament (default; distortion-free) | greenlist | "
        "gumbel (or a plugin's).",
        show_default="tournament",
    ),
    gamma: float | None = typer.Option(
        None, help="greenlist: green fraction of the vocabulary.", show_default="0.25"
    ),
    delta: float | None = typer.Option(
        None,
        help="greenlist: logit bias of green tokens (2 = lighter mark, weaker evidence).",
        show_default="4.0",
    ),
    param: list[str] = typer.Option(
        [], "--param", help="Another scheme parameter as KEY=VALUE (repeatable)."
    ),
    context_width: int = typer.Option(2, help="Tokens of context that seed each step (h)."),
    seeding: str = typer.Option("lefthash", help="lefthash | minhash"),
    secret_env: str | None = typer.Option(
        None,
        help="Read the secret from this environment variable instead of generating one; "
        "the file then names the variable and holds no secret.",
    ),
) -> None:
    """Generate a watermark key bound to MODEL's tokenizer; prints only the key id."""
    import os

    from distilltrace.marks.keys import make_watermark, new_secret, secret_from_hex, write_key_file
    from distilltrace.marks.schemes import SchemeParams, TokenizerBinding
    from distilltrace.models import load_model

    try:
        params = SchemeParams(
            scheme=scheme,  # None: the default mark (DEFAULT_SCHEME)
            context_width=context_width,
            seeding=seeding,
            **_scheme_options(gamma, delta, param),
        )
    except ValueError as e:
        raise InputError(f"bad watermark parameters: {e}") from None
    if secret_env:
        value = os.environ.get(secret_env)
        if not value:
            raise InputError(f"environment variable {secret_env} is not set")
        secret = secret_from_hex(value, f"${secret_env}")
    else:
        secret = new_secret()
    if Path(out).exists():
        raise InputError(f"{out} already exists; refusing to overwrite a key file")
    binding = TokenizerBinding.of_model(load_model(model))
    wm = make_watermark(params, binding, secret)
    write_key_file(out, wm, None if secret_env else secret, secret_env)
    typer.echo(f"wrote {out} (key id {wm.key_id}, scheme {wm.scheme}); keep this file secret")


@app.command("detect")
def detect(
    file: Path = typer.Argument(..., help="A text file, or a JSONL file (one text per row)."),
    key: Path = typer.Option(..., "--key", help="Watermark key file."),
    column: str | None = typer.Option(None, help="JSONL column with the text."),
    prompt_column: str | None = typer.Option(
        None, help="JSONL column with each row's prompt: its windows are not scored."
    ),
    tokenizer: str | None = typer.Option(None, help="Model spec to take the tokenizer from."),
    normalize: str = typer.Option("", help="Comma list of: nfkc, whitespace, lower."),
    alpha: float | None = typer.Option(
        None, help="Significance level of each verdict.", show_default="0.001"
    ),
    min_scored: int | None = typer.Option(
        None, help="Fewer scored tokens: 'not enough evidence'.", show_default="16"
    ),
    window: int | None = typer.Option(
        None, help="Scored tokens per window in the span scan.", show_default="50"
    ),
    group_column: str | None = typer.Option(
        None,
        help="JSONL column naming each text's account or campaign: one pooled exact test "
        "per group (tuples de-duplicated across its texts), Holm across groups.",
    ),
    out: Path | None = typer.Option(None, "--out", help="Folder for result.json and report.html."),
) -> None:
    """Test texts for the watermark of KEY (exact p-values; per text and pooled)."""
    from distilltrace.marks.detect import DEFAULT_ALPHA, detect_texts
    from distilltrace.marks.keys import load_watermark
    from distilltrace.marks.reporting import write_detect_report
    from distilltrace.marks.textio import read_texts

    alpha = DEFAULT_ALPHA if alpha is None else alpha
    wm = load_watermark(key)
    texts, prompts = read_texts(file, column, prompt_column)
    tok = _tokenizer_for(wm, tokenizer)
    ops = tuple(s.strip() for s in normalize.split(",") if s.strip())
    if group_column is not None:
        _detect_groups(wm, file, column, prompt_column, group_column, tok, ops, alpha, out)
        return
    rep = detect_texts(
        wm,
        texts,
        tok,
        prompts=prompts,
        normalize=ops,
        alpha=alpha,
        **_given(min_scored=min_scored, window=window),
    )
    p = rep.pooled
    typer.echo(
        f"key {wm.key_id}: {len(texts)} text(s); pooled: {p.n_scored} scored tokens, "
        f"statistic {p.statistic:.1f} (expected {p.expected:.1f}), z={p.z if p.z is None else round(p.z, 2)}, "
        f"p={p.pvalue_text}: {p.verdict}; {rep.n_flagged_holm} text(s) flagged (Holm, alpha={alpha})"
    )
    if out is not None:
        write_detect_report(rep, texts, out)
        typer.echo(f"wrote {out}/result.json and {out}/report.html")


def _detect_groups(wm, file, column, prompt_column, group_column, tok, ops, alpha, out) -> None:
    """`marks detect --group-column`: one pooled test per account/campaign."""
    from distilltrace.marks.pooled import detect_pooled
    from distilltrace.marks.textio import read_jsonl
    from distilltrace.report import write_json

    texts, prompts = _texts_of(file, column, prompt_column)
    rows = read_jsonl(file)
    groups = []
    for i, r in enumerate(rows, 1):
        g = r.get(group_column)
        if g is None or isinstance(g, dict | list):
            raise InputError(f"{file}: row {i}: column {group_column!r} is missing or not a label")
        groups.append(str(g))
    rep = detect_pooled(wm, texts, tok, groups, prompts=prompts, normalize=ops, alpha=alpha)
    ranked = sorted(rep.groups, key=lambda g: (g.test.pvalue is None, g.test.pvalue or 1.0))
    for g in ranked[:20]:
        t = g.test
        adj = "n/a" if g.holm_adjusted is None else f"{g.holm_adjusted:.3g}"
        typer.echo(
            f"{group_column}={g.group!r}: {g.n_texts} text(s), {t.n_scored} scored tuples, "
            f"p={t.pvalue_text} (Holm {adj}): {t.verdict}"
        )
    if len(ranked) > 20:
        typer.echo(f"... {len(ranked) - 20} more group(s) in result.json")
    typer.echo(
        f"key {wm.key_id}: {len(rep.groups)} group(s), {rep.n_flagged_holm} flagged "
        f"(Holm, alpha={alpha})"
    )
    if out is not None:
        write_json(rep, Path(out) / "result.json")
        typer.echo(f"wrote {out}/result.json")


def _texts_of(file: Path, column: str | None, prompt_column: str | None):
    from distilltrace.marks.textio import read_texts

    if file.suffix.lower() not in (".jsonl", ".ndjson"):
        raise InputError("--group-column needs a .jsonl file")
    return read_texts(file, column, prompt_column)


@app.command("radioactivity")
def radioactivity(
    key: Path = typer.Option(..., "--key", help="Watermark key file."),
    suspect: str = typer.Option(..., "--suspect", help="Suspect model spec."),
    mode: str = typer.Option(
        "closed",
        help="closed | open | both (closed and open) | prefix (open mode through a suspect that "
        "continues a given text: our marked answers cut every --stride tokens) | logprobs "
        "(closed mode reading the suspect's top-k log-probabilities along its answers).",
    ),
    marked: Path | None = typer.Option(
        None,
        help="JSONL of our marked outputs (prompt, response): open-mode input and the "
        "supervised filter.",
    ),
    marked_column: str | None = typer.Option(None, help="Text column of --marked."),
    prompts: Path | None = typer.Option(
        None, help="Prompts for closed mode (text lines or JSONL 'prompt'); default: --marked's."
    ),
    n_prompts: int = typer.Option(200, help="Use at most this many prompts / marked texts."),
    filter_min_count: int | None = typer.Option(
        None, help="Supervised: score only windows seen >= N times in --marked."
    ),
    reference: str | None = typer.Option(
        None,
        help="Closed mode: our own marking model (local weights, the key's tokenizer); only "
        "tokens it gave <= --max-reference-prob after the suspect's context are scored. "
        "Logprobs mode: weights are the suspect's probabilities less our model's.",
    ),
    max_reference_prob: float = typer.Option(
        0.5, help="Closed mode with --reference: score tokens our model gave at most this."
    ),
    max_new_tokens: int | None = typer.Option(
        None, help="Closed mode: tokens per suspect output.", show_default="128"
    ),
    temperature: float | None = typer.Option(
        None, help="Closed mode: suspect sampling temperature.", show_default="0"
    ),
    top_logprobs: int = typer.Option(
        20, help="Logprobs mode: log-probabilities per step the suspect returns (<= 20 over HTTP)."
    ),
    keep_prompt_windows: bool = typer.Option(
        False,
        help="Logprobs mode: also score windows that occur in the prompts (only for prompts "
        "that carry no marked text, e.g. users' own questions).",
    ),
    stride: int = typer.Option(4, help="Prefix mode: probe every N-th token of each answer."),
    prefix_tokens: int = typer.Option(
        1, help="Prefix mode: tokens the suspect writes per probe (> 1 for another tokenizer)."
    ),
    prefix_format: str | None = typer.Option(
        None,
        help="Prefix mode: the suspect's prompt format with {prompt} (default: its chat "
        "template; needed for an endpoint), e.g. '<|im_start|>user\\n{prompt}<|im_end|>"
        "\\n<|im_start|>assistant\\n'.",
    ),
    seed: int = typer.Option(0),
    tokenizer: str | None = typer.Option(None, help="Model spec to take the tokenizer from."),
    alpha: float | None = typer.Option(None, show_default="0.001"),
    min_scored: int | None = typer.Option(None, show_default="16"),
    out: Path = typer.Option(..., "--out", help="Folder for result.json and report.html."),
) -> None:
    """Test whether SUSPECT learned from text marked with KEY (Sander et al. 2024)."""
    from distilltrace.marks.detect import DEFAULT_ALPHA
    from distilltrace.marks.keys import load_watermark
    from distilltrace.marks.radioactivity import radioactivity_closed, radioactivity_open
    from distilltrace.marks.radioactivity_prefix import radioactivity_prefix
    from distilltrace.marks.reporting import write_radioactivity_report
    from distilltrace.models import load_model
    from distilltrace.progress import progress_display
    from distilltrace.prompts import unescape_pattern
    from distilltrace.stats import holm

    alpha = DEFAULT_ALPHA if alpha is None else alpha
    if mode not in MODES:
        raise InputError(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    wm = load_watermark(key)
    marked_texts, marked_prompts = _read_marked(marked, marked_column, n_prompts)
    if mode == "prefix" and marked_prompts is None:
        raise InputError("prefix mode needs --marked with a prompt column")
    model = load_model(suspect)
    ours = load_model(reference) if reference is not None and mode != "open" else None
    tests = dict(alpha=alpha, filter_min_count=filter_min_count, **_given(min_scored=min_scored))
    results = []
    with progress_display(transient=True) as bar:
        if mode in ("closed", "both"):
            plist = _closed_prompts(prompts, marked_prompts, n_prompts)
            task = bar.add_task("closed: prompting the suspect", total=len(plist))
            reading = None
            if ours is not None:
                reading = bar.add_task("closed: our model reading the answers", total=len(plist))
            results.append(
                radioactivity_closed(
                    wm,
                    model,
                    plist,
                    _scoring_tokenizer(wm, model, tokenizer),
                    marked_texts=marked_texts,
                    reference=ours,
                    max_reference_prob=max_reference_prob,
                    seed=seed,
                    **_given(max_new_tokens=max_new_tokens, temperature=temperature),
                    on_batch=lambda n: bar.update(task, completed=n),
                    on_reference_batch=lambda n: bar.update(reading, completed=n),
                    **tests,
                )
            )
        if mode in ("open", "both"):
            if marked_texts is None:
                raise InputError("open mode needs --marked (our marked outputs)")
            task = bar.add_task("open: reading marked text", total=len(marked_texts))
            results.append(
                radioactivity_open(
                    wm,
                    model,
                    marked_texts,
                    marked_prompts=marked_prompts,
                    on_batch=lambda n: bar.update(task, completed=n),
                    **tests,
                )
            )
        if mode == "logprobs":
            plist = _closed_prompts(prompts, marked_prompts, n_prompts)
            results.append(
                _logprobs(
                    bar,
                    wm,
                    model,
                    plist,
                    _scoring_tokenizer(wm, model, tokenizer),
                    ours,
                    top_k=top_logprobs,
                    exclude_prompt_windows=not keep_prompt_windows,
                    seed=seed,
                    alpha=alpha,
                    **_given(max_new_tokens=max_new_tokens, min_scored=min_scored),
                )  # fmt: skip
            )
        if mode == "prefix":
            task = bar.add_task("prefix: probing the suspect", total=None)
            results.append(
                radioactivity_prefix(
                    wm,
                    model,
                    marked_texts,
                    marked_prompts,
                    _scoring_tokenizer(wm, model, tokenizer),
                    stride=stride,
                    new_tokens=prefix_tokens,
                    prompt_format=unescape_pattern(prefix_format),
                    on_batch=lambda n, total: bar.update(task, completed=n, total=total),
                    **tests,
                )
            )
    pvals = [r.test.pvalue for r in results]
    family = holm([p for p in pvals if p is not None], alpha=alpha) if len(results) > 1 else None
    write_radioactivity_report(results, family, out)
    _echo_radioactivity(results)
    typer.echo(f"wrote {out}/result.json and {out}/report.html")


MODES = ("closed", "open", "both", "prefix", "logprobs")


def _logprobs(bar: Any, wm: Any, model: Any, plist: list, tok: Any, ours: Any, **kw: Any) -> Any:
    """Logprobs mode with its progress bars (the suspect answering, our model reading)."""
    from distilltrace.marks.radioactivity_logprobs import radioactivity_logprobs

    task = bar.add_task("logprobs: prompting the suspect", total=len(plist))
    reading = None
    if ours is not None:
        reading = bar.add_task("logprobs: our model reading the answers", total=len(plist))
    return radioactivity_logprobs(
        wm, model, plist, tok, reference=ours,
        on_batch=lambda n: bar.update(task, completed=n),
        on_reference_batch=lambda n: bar.update(reading, completed=n), **kw,
    )  # fmt: skip


def _read_marked(
    marked: Path | None, column: str | None, limit: int
) -> tuple[list[str] | None, list[str] | None]:
    """Our marked outputs (texts, and their prompts when the file has a prompt column)."""
    if marked is None:
        return None, None
    from distilltrace.marks.textio import column_values, pick_column, read_jsonl

    rows = read_jsonl(marked)[:limit]
    texts = column_values(rows, pick_column(rows, column, marked), marked)
    prompts = column_values(rows, "prompt", marked) if rows and "prompt" in rows[0] else None
    return texts, prompts


def _closed_prompts(prompts: Path | None, marked_prompts: list[str] | None, limit: int) -> list:
    from distilltrace.marks.textio import read_prompts

    if prompts is not None:
        return read_prompts(prompts)[:limit]
    if marked_prompts is not None:
        return marked_prompts
    raise InputError("closed mode needs --prompts (or --marked with a prompt column)")


_UNSELECTED = {
    "closed": "our model sure",
    "prefix": "not probed or dropped",
    "logprobs": "window not in the key's tokens",
}


def _echo_radioactivity(results: list) -> None:
    for r in results:
        t = r.test
        typer.echo(
            f"{r.mode}: {t.n_scored} scored tuples (dup {t.n_duplicate}, excluded {t.n_excluded}, "
            f"filtered {t.n_filtered}, {_UNSELECTED.get(r.mode, 'unselected')} {t.n_unselected}), "
            f"statistic {t.statistic:.1f} vs {t.expected:.1f} expected, "
            f"p={t.pvalue_text}: {t.verdict}"
        )
