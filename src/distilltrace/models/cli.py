"""CLI for models: ``distilltrace models list`` and ``distilltrace generate MODEL PROMPT``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from distilltrace.errors import InputError

app = typer.Typer(no_args_is_help=True)


def _dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


@app.command("list")
def list_models(
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List the bundled models and the converted models cached on this machine."""
    from rich.console import Console
    from rich.table import Table

    from distilltrace.models.bundled import bundled_models
    from distilltrace.models.gguf_loader import MARKER
    from distilltrace.paths import models_dir

    bundled = [b.to_dict() for b in bundled_models()]
    cached = []
    for d in sorted(models_dir().glob("gguf-*")):
        meta_f = d / MARKER
        if not meta_f.is_file():
            continue
        meta = json.loads(meta_f.read_text())
        cached.append(
            {
                "folder": str(d),
                "source": meta.get("source"),
                "sha256": meta.get("sha256"),
                "size_mb": round(_dir_size(d) / 2**20, 1),
            }
        )
    if as_json:
        typer.echo(json.dumps({"bundled": bundled, "cached": cached}, indent=2))
        return
    console = Console()
    t = Table(title="bundled models")
    for col in ("name", "status", "description", "package", "path"):
        t.add_column(col)
    for b in bundled:
        t.add_row(b["name"], b["status"], b["description"], b["package"], b["path"] or "")
    console.print(t)
    c = Table(title=f"de-quantised GGUF cache ({models_dir()})")
    for col in ("folder", "source GGUF", "sha256", "MB"):
        c.add_column(col)
    for x in cached:
        c.add_row(
            Path(x["folder"]).name, x["source"] or "", (x["sha256"] or "")[:16], str(x["size_mb"])
        )
    console.print(c if cached else "no de-quantised GGUF cached yet (first load creates one)")


def generate(
    model: str = typer.Argument(..., help="Model spec (folder, .gguf, bundled name, openai:...)."),
    prompt: str | None = typer.Argument(None, help="The prompt (or use --prompts-file)."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", help="Tokens to generate."),
    temperature: float = typer.Option(0.0, "--temperature", help="0 = greedy."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed (per prompt)."),
    no_chat: bool = typer.Option(False, "--no-chat", help="Raw completion, no chat template."),
    prompts_file: Path | None = typer.Option(
        None, "--prompts-file", help="One prompt per line; prints JSON lines."
    ),
    cache: Path | None = typer.Option(None, "--cache", help="SQLite query cache file."),
) -> None:
    """Generate from MODEL on PROMPT (or on every line of --prompts-file, batched)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from distilltrace.models import load_model

    if (prompt is None) == (prompts_file is None):
        raise InputError("give exactly one of PROMPT or --prompts-file")
    if prompts_file is not None:
        prompts = [x for x in prompts_file.read_text().splitlines() if x.strip()]
        if not prompts:
            raise InputError(f"{prompts_file} holds no prompts")
    else:
        prompts = [prompt or ""]
    err = Console(stderr=True)
    with err.status(f"loading {model}") as st:
        m = load_model(model, cache=cache, status=lambda msg: st.update(msg))
    kwargs = dict(
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        chat=not no_chat,
    )
    if len(prompts) == 1:
        with err.status("generating"):
            gens = m.generate(prompts, **kwargs)
        if prompts_file is None:
            typer.echo(gens[0].text)
            return
    else:
        batch = int(getattr(m, "batch_size", 16) or 16)
        gens = []
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
        ) as prog:
            task = prog.add_task("generating", total=len(prompts))
            for i in range(0, len(prompts), batch):
                part = prompts[i : i + batch]
                gens.extend(m.generate(part, **kwargs))
                prog.update(task, advance=len(part))
    for g in gens:
        typer.echo(json.dumps(g.to_dict(), ensure_ascii=False))
