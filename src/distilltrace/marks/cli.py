"""CLI for marks: keygen, detect, radioactivity; and `distilltrace bench marks`."""

from __future__ import annotations

from pathlib import Path

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
    from distilltrace.marks.schemes import tokenizer_fingerprint

    tok = getattr(model, "tokenizer", None)
    if spec is None and tok is not None and tokenizer_fingerprint(tok) == wm.tokenizer.fingerprint:
        return tok
    return _tokenizer_for(wm, spec)


@app.command("keygen")
def keygen(
    out: Path = typer.Option(..., "--out", help="Key file to write (JSON, mode 0600)."),
    model: str = typer.Option(..., "--model", help="Model spec whose tokenizer the key binds."),
    scheme: str = typer.Option("greenlist", help="greenlist | gumbel"),
    gamma: float = typer.Option(0.25, help="greenlist: green fraction of the vocabulary."),
    delta: float = typer.Option(
        4.0, help="greenlist: logit bias of green tokens (2 = lighter mark, weaker evidence)."
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
            scheme=scheme, gamma=gamma, delta=delta, context_width=context_width, seeding=seeding
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
    typer.echo(f"wrote {out} (key id {wm.key_id}, scheme {scheme}); keep this file secret")


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
    alpha: float = typer.Option(1e-3, help="Significance level of each verdict."),
    min_scored: int = typer.Option(16, help="Fewer scored tokens: 'not enough evidence'."),
    window: int = typer.Option(50, help="Scored tokens per window in the span scan."),
    out: Path | None = typer.Option(None, "--out", help="Folder for result.json and report.html."),
) -> None:
    """Test texts for the watermark of KEY (exact p-values; per text and pooled)."""
    from distilltrace.marks.detect import detect_texts
    from distilltrace.marks.keys import load_watermark
    from distilltrace.marks.reporting import write_detect_report
    from distilltrace.marks.textio import read_texts

    wm = load_watermark(key)
    texts, prompts = read_texts(file, column, prompt_column)
    tok = _tokenizer_for(wm, tokenizer)
    ops = tuple(s.strip() for s in normalize.split(",") if s.strip())
    rep = detect_texts(
        wm,
        texts,
        tok,
        prompts=prompts,
        normalize=ops,
        alpha=alpha,
        min_scored=min_scored,
        window=window,
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


@app.command("radioactivity")
def radioactivity(
    key: Path = typer.Option(..., "--key", help="Watermark key file."),
    suspect: str = typer.Option(..., "--suspect", help="Suspect model spec."),
    mode: str = typer.Option("closed", help="closed | open | both"),
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
    max_new_tokens: int = typer.Option(128, help="Closed mode: tokens per suspect output."),
    temperature: float = typer.Option(0.0, help="Closed mode: suspect sampling temperature."),
    seed: int = typer.Option(0),
    tokenizer: str | None = typer.Option(None, help="Model spec to take the tokenizer from."),
    alpha: float = typer.Option(1e-3),
    min_scored: int = typer.Option(16),
    out: Path = typer.Option(..., "--out", help="Folder for result.json and report.html."),
) -> None:
    """Test whether SUSPECT learned from text marked with KEY (Sander et al. 2024)."""
    from rich.progress import Progress

    from distilltrace.marks.keys import load_watermark
    from distilltrace.marks.radioactivity import radioactivity_closed, radioactivity_open
    from distilltrace.marks.reporting import write_radioactivity_report
    from distilltrace.marks.textio import read_jsonl, read_prompts
    from distilltrace.models import load_model
    from distilltrace.stats import holm

    if mode not in ("closed", "open", "both"):
        raise InputError(f"--mode must be closed, open or both, got {mode!r}")
    wm = load_watermark(key)
    marked_texts = marked_prompts = None
    if marked is not None:
        from distilltrace.marks.textio import column_values, pick_column

        rows = read_jsonl(marked)[:n_prompts]
        marked_texts = column_values(rows, pick_column(rows, marked_column, marked), marked)
        if rows and "prompt" in rows[0]:
            marked_prompts = column_values(rows, "prompt", marked)
    model = load_model(suspect)
    results = []
    with Progress(transient=True) as bar:
        if mode in ("closed", "both"):
            if prompts is not None:
                plist = read_prompts(prompts)[:n_prompts]
            elif marked_prompts is not None:
                plist = marked_prompts
            else:
                raise InputError("closed mode needs --prompts (or --marked with a prompt column)")
            tok = _scoring_tokenizer(wm, model, tokenizer)
            task = bar.add_task("closed: prompting the suspect", total=len(plist))
            results.append(
                radioactivity_closed(
                    wm,
                    model,
                    plist,
                    tok,
                    marked_texts=marked_texts,
                    filter_min_count=filter_min_count,
                    max_new_tokens=max_new_tokens,
                    temperature=temperature,
                    seed=seed,
                    alpha=alpha,
                    min_scored=min_scored,
                    on_batch=lambda n: bar.update(task, completed=n),
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
                    filter_min_count=filter_min_count,
                    alpha=alpha,
                    min_scored=min_scored,
                    on_batch=lambda n: bar.update(task, completed=n),
                )
            )
    pvals = [r.test.pvalue for r in results]
    family = holm([p for p in pvals if p is not None], alpha=alpha) if len(results) > 1 else None
    write_radioactivity_report(results, family, out)
    for r in results:
        t = r.test
        typer.echo(
            f"{r.mode}: {t.n_scored} scored tuples (dup {t.n_duplicate}, excluded {t.n_excluded}, "
            f"filtered {t.n_filtered}), statistic {t.statistic:.1f} vs {t.expected:.1f} expected, "
            f"p={t.pvalue_text}: {t.verdict}"
        )
    typer.echo(f"wrote {out}/result.json and {out}/report.html")


def bench(
    tier: str = typer.Option("quick", help="quick (tiny teacher, CPU minutes) | full (SmolLM2)."),
    out: Path = typer.Option(Path("bench-marks"), "--out", help="Output folder."),
    seed: int = typer.Option(0),
    set_: str | None = typer.Option(
        None, "--set", help="JSON object overriding benchmark sizes, e.g. '{\"n_power\": 200}'."
    ),
) -> None:
    """Benchmark marks: detector calibration and power, radioactivity of distilled students."""
    from distilltrace.marks.bench import load_overrides, run_bench

    res = run_bench(tier=tier, out=out, seed=seed, overrides=load_overrides(set_))
    typer.echo(res.summary())
    typer.echo(f"wrote {out}/result.json and {out}/report.html")
