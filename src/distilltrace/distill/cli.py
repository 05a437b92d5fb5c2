"""CLI for `distilltrace distill ...` (harvest, seq-kd, logit-kd) and `distilltrace zoo ...`.

Parses, calls the library, prints a short summary; heavy imports happen inside commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from distilltrace.distill.config import TrainConfig
from distilltrace.errors import InputError

app = typer.Typer(no_args_is_help=True, help="Train students from teachers.")
zoo_app = typer.Typer(no_args_is_help=True, help="Build the model zoo (ground truth).")


def _echo_json(obj: dict[str, Any]) -> None:
    obj = {k: v for k, v in obj.items() if k not in ("losses", "config")}
    typer.echo(json.dumps(obj, indent=2, default=str))


def _prompts(
    prompts: Path | None, column: str | None, n_prompts: int | None, prompt_seed: int
) -> list[Any]:
    from distilltrace.distill.prompts import generate_prompts, load_prompts

    if prompts is not None and n_prompts is not None:
        raise InputError("give either --prompts FILE or --n-prompts N, not both")
    if prompts is not None:
        return list(load_prompts(prompts, column=column))
    if n_prompts is not None:
        return list(generate_prompts(n_prompts, seed=prompt_seed))
    raise InputError("give --prompts FILE or --n-prompts N")


def _load(spec: str) -> Any:
    from distilltrace.models import load_model

    return load_model(spec)


def _student(arch: str, tokenizer: str | None, teacher: Any, seed: int) -> Any:
    from distilltrace.distill.student import ARCHS, make_student

    if arch in ARCHS:
        tok: Any = tokenizer
        if tok is None:
            tok = getattr(teacher, "tokenizer", None) or "smollm2"
        return make_student(arch, tok, seed)
    if tokenizer is not None:
        raise InputError("--tokenizer applies to a new architecture, not to an existing model spec")
    return make_student(arch, None, seed)


_TEACHER = typer.Option(
    ..., "--teacher", help="Teacher model spec (folder, GGUF, bundled name, openai:...)."
)
_PROMPTS = typer.Option(None, "--prompts", help="Prompt file: one per line, JSONL or CSV.")
_COLUMN = typer.Option(
    None, "--column", help="JSONL field / CSV column holding the prompt (default: prompt)."
)
_NPROMPTS = typer.Option(
    None, "--n-prompts", help="Generate N instruction prompts instead of a file."
)
_PSEED = typer.Option(0, "--prompt-seed", help="Seed of the prompt generator.")
# Harvest and training options default to None: the library's default applies (shown in
# the help), so each default is written once (harvest(), TrainConfig).
_LIB = TrainConfig()
# The command line trains longer and faster than the library's TrainConfig defaults
# (1 epoch, lr 1e-3): a CLI run is usually a whole distillation, a library call a step.
CLI_TRAIN_DEFAULTS = {"epochs": 3.0, "lr": 2e-3}
_MAXNEW = typer.Option(
    None, "--max-new-tokens", help="Response length limit (tokens).", show_default="128"
)
_TEMP = typer.Option(
    None, "--temperature", help="Teacher sampling temperature (0 = greedy).", show_default="0.7"
)
_TOPP = typer.Option(None, "--top-p", help="Teacher nucleus sampling.", show_default="0.95")
_SEED = typer.Option(0, "--seed", help="Seed (sampling, student initialisation and training).")
_HBATCH = typer.Option(
    None, "--harvest-batch-size", help="Prompts per teacher call.", show_default="8"
)
_STUDENT = typer.Option(
    ...,
    "--student",
    help="Architecture (tiny-2l, tiny-4l, small-4l, base-8l) or a model spec to fine-tune.",
)
_TOK = typer.Option(
    None,
    "--tokenizer",
    help="Tokenizer of a new architecture: byte, smollm2, or a model spec (default: the teacher's, else smollm2).",
)
_EPOCHS = typer.Option(
    None,
    "--epochs",
    help="Passes over the data (ignored with --steps).",
    show_default=f"{CLI_TRAIN_DEFAULTS['epochs']:g}",
)
_STEPS = typer.Option(None, "--steps", help="Training steps (overrides --epochs).")
_LR = typer.Option(
    None,
    "--lr",
    help="Peak learning rate (AdamW, warm-up then cosine).",
    show_default=f"{CLI_TRAIN_DEFAULTS['lr']:g}",
)
_BATCH = typer.Option(
    None, "--batch-size", help="Training batch size.", show_default=str(_LIB.batch_size)
)
_MAXLEN = typer.Option(
    None, "--max-len", help="Maximum tokens per training example.", show_default=str(_LIB.max_len)
)
_RESUME = typer.Option(
    None,
    "--resume/--no-resume",
    help="Resume from the last checkpoint in --out.",
    show_default="resume",
)
_DEVICE = typer.Option(
    None,
    "--device",
    help="auto (cuda if available), cpu, cuda, cuda:1 ...",
    show_default=_LIB.device,
)

_PRECISION = typer.Option(
    None,
    "--precision",
    help="float32, bf16-mixed (bfloat16 autocast forward, float32 weights and "
    "optimiser; about 2x faster on a CPU with native bf16, far slower without), or auto "
    "(bf16-mixed where the device has native bf16, else float32).",
    show_default=_LIB.precision,
)


def _given(**options: Any) -> dict[str, Any]:
    """The options the user gave (None means: use the library default)."""
    return {k: v for k, v in options.items() if v is not None}


def _train_config(seed: int, **options: Any) -> TrainConfig:
    return TrainConfig.resolve(None, {**CLI_TRAIN_DEFAULTS, "seed": seed, **_given(**options)})


@app.command("harvest")
def harvest_cmd(
    teacher: str = _TEACHER,
    out: Path = typer.Option(..., "--out", help="Dataset file to append to (.jsonl or .parquet)."),
    prompts: Path | None = _PROMPTS,
    column: str | None = _COLUMN,
    n_prompts: int | None = _NPROMPTS,
    prompt_seed: int = _PSEED,
    max_new_tokens: int | None = _MAXNEW,
    temperature: float | None = _TEMP,
    top_p: float | None = _TOPP,
    seed: int = _SEED,
    batch_size: int | None = _HBATCH,
) -> None:
    """Query a teacher on prompts and store (prompt, response) pairs; resumable."""
    from distilltrace.distill.harvesting import harvest

    ps = _prompts(prompts, column, n_prompts, prompt_seed)
    sampling = _given(
        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, batch_size=batch_size
    )
    res = harvest(_load(teacher), ps, out, seed=seed, **sampling)
    _echo_json(res.to_dict())


def _harvest_and_train(
    method: str,
    out: Path,
    *,
    student: str,
    tokenizer: str | None,
    teacher: str | None,
    dataset: Path | None,
    prompt_args: tuple[Path | None, str | None, int | None, int],
    sampling: dict[str, Any],
    cfg: Any,
    topk_file: Path | None = None,
) -> None:
    """The distillation commands: harvest the teacher into OUT/harvest.jsonl (unless the
    data is given), make the student, train it with `method`, print the result."""
    from distilltrace.distill.harvesting import harvest
    from distilltrace.distill.training import train_logit_kd, train_seq_kd

    t = _load(teacher) if teacher is not None else None
    data: Any = dataset
    if method == "seq-kd":
        if t is None and dataset is None:
            raise InputError("give --teacher (to harvest) or --dataset (an existing harvest)")
        needs_harvest = t is not None
    else:
        if topk_file is None and t is None:
            raise InputError("give --teacher (a local model) or --topk-file")
        needs_harvest = topk_file is None and dataset is None
    if needs_harvest:
        data = dataset or out / "harvest.jsonl"
        harvest(t, _prompts(*prompt_args), data, seed=cfg.seed, **sampling)
    st = _student(student, tokenizer, t, cfg.seed)
    if method == "seq-kd":
        res = train_seq_kd(st, data, out, cfg)
    else:
        res = train_logit_kd(st, t, data, out, cfg, topk_file=topk_file)
    _echo_json(res.to_dict())


@app.command("seq-kd")
def seq_kd_cmd(
    out: Path = typer.Option(
        ..., "--out", help="Output folder (the trained student, loadable as a model spec)."
    ),
    student: str = _STUDENT,
    teacher: str | None = typer.Option(
        None, "--teacher", help="Teacher spec to harvest (omit with --dataset)."
    ),
    dataset: Path | None = typer.Option(
        None, "--dataset", help="Harvest file (default OUT/harvest.jsonl)."
    ),
    prompts: Path | None = _PROMPTS,
    column: str | None = _COLUMN,
    n_prompts: int | None = _NPROMPTS,
    prompt_seed: int = _PSEED,
    tokenizer: str | None = _TOK,
    max_new_tokens: int | None = _MAXNEW,
    temperature: float | None = _TEMP,
    top_p: float | None = _TOPP,
    seed: int = _SEED,
    harvest_batch_size: int | None = _HBATCH,
    epochs: float | None = _EPOCHS,
    steps: int | None = _STEPS,
    lr: float | None = _LR,
    batch_size: int | None = _BATCH,
    max_len: int | None = _MAXLEN,
    resume: bool | None = _RESUME,
    device: str | None = _DEVICE,
    precision: str | None = _PRECISION,
) -> None:
    """Sequence-level KD: harvest the teacher, then fine-tune the student on its answers."""
    _harvest_and_train(
        "seq-kd",
        out,
        student=student,
        tokenizer=tokenizer,
        teacher=teacher,
        dataset=dataset,
        prompt_args=(prompts, column, n_prompts, prompt_seed),
        sampling=_given(
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            batch_size=harvest_batch_size,
        ),
        cfg=_train_config(
            seed,
            epochs=epochs,
            steps=steps,
            lr=lr,
            batch_size=batch_size,
            max_len=max_len,
            resume=resume,
            device=device,
            precision=precision,
        ),
    )


@app.command("logit-kd")
def logit_kd_cmd(
    out: Path = typer.Option(..., "--out", help="Output folder (the trained student)."),
    student: str = _STUDENT,
    teacher: str | None = typer.Option(
        None, "--teacher", help="Local teacher spec (same tokenizer as the student)."
    ),
    dataset: Path | None = typer.Option(
        None, "--dataset", help="(prompt, response) file to distil on."
    ),
    topk_file: Path | None = typer.Option(
        None, "--topk-file", help="Stored teacher top-k file instead of a live teacher."
    ),
    prompts: Path | None = _PROMPTS,
    column: str | None = _COLUMN,
    n_prompts: int | None = _NPROMPTS,
    prompt_seed: int = _PSEED,
    tokenizer: str | None = _TOK,
    divergence: str | None = typer.Option(
        None, "--divergence", help="fkl, rkl or jsd.", show_default=str(_LIB.divergence)
    ),
    beta: float | None = typer.Option(
        None, "--beta", help="JSD mixing weight (0 < beta < 1).", show_default=str(_LIB.beta)
    ),
    kd_temperature: float | None = typer.Option(
        None,
        "--kd-temperature",
        help="Softmax temperature of both distributions.",
        show_default=f"{_LIB.kd_temperature:g}",
    ),
    max_new_tokens: int | None = _MAXNEW,
    temperature: float | None = _TEMP,
    top_p: float | None = _TOPP,
    seed: int = _SEED,
    epochs: float | None = _EPOCHS,
    steps: int | None = _STEPS,
    lr: float | None = _LR,
    batch_size: int | None = _BATCH,
    max_len: int | None = _MAXLEN,
    resume: bool | None = _RESUME,
    device: str | None = _DEVICE,
    precision: str | None = _PRECISION,
) -> None:
    """Token-level KD against the teacher's next-token distribution (same tokenizer)."""
    _harvest_and_train(
        "logit-kd",
        out,
        student=student,
        tokenizer=tokenizer,
        teacher=teacher,
        dataset=dataset,
        prompt_args=(prompts, column, n_prompts, prompt_seed),
        sampling=_given(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p),
        cfg=_train_config(
            seed,
            divergence=divergence,
            beta=beta,
            kd_temperature=kd_temperature,
            epochs=epochs,
            steps=steps,
            lr=lr,
            batch_size=batch_size,
            max_len=max_len,
            resume=resume,
            device=device,
            precision=precision,
        ),
        topk_file=topk_file,
    )


@zoo_app.command("build")
def zoo_build_cmd(
    out: Path = typer.Option(
        ..., "--out", help="Zoo folder (rerun to resume; built members are skipped)."
    ),
    tier: str = typer.Option(
        "quick",
        "--tier",
        help="quick (tiny teachers, minutes), full (bundled teachers, small students) or "
        "pretrained (the bundled models fine-tuned on each other's answers; hours on CPU).",
    ),
    scale: float = typer.Option(
        1.0, "--scale", help="Multiply prompts, corpus and teacher data (e.g. 0.25 or 4)."
    ),
    only: list[str] | None = typer.Option(
        None, "--only", help="Build only this student now (repeatable); rerun for the rest."
    ),
    device: str | None = _DEVICE,
    precision: str | None = _PRECISION,
) -> None:
    """Build the zoo: teachers, distilled students, independent models, and manifest.json."""
    from distilltrace.distill.zoo import build_zoo

    m = build_zoo(
        out, tier, scale=scale, only=only or None, **_given(device=device, precision=precision)
    )
    _print_manifest(m)


@zoo_app.command("show")
def zoo_show_cmd(zoo_dir: Path = typer.Argument(..., help="A zoo folder.")) -> None:
    """List a zoo's members and how each was made."""
    from distilltrace.distill.zoo import load_manifest

    _print_manifest(load_manifest(zoo_dir))


def _print_manifest(m: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"zoo ({m.tier}, created {m.created})")
    for col in (
        "name",
        "role",
        "method",
        "teachers",
        "arch",
        "seed",
        "prompts",
        "tokens",
        "final loss",
    ):
        table.add_column(col)
    for x in m.models:
        table.add_row(
            x.name,
            x.role,
            x.method,
            ",".join(x.teachers) or "-",
            x.arch,
            str(x.seed),
            str(x.data.get("prompts", "")),
            str(x.data.get("tokens", "")),
            str(x.train.get("final_loss", "-")),
        )
    Console().print(table)
