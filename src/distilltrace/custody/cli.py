"""`distilltrace custody build | verify | demo`: parse, call the library, print."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Chain-of-custody evidence bundles.")


def _say(msg: str) -> None:
    typer.echo(f"[custody] {msg}", err=True)


def _campaign(text: str) -> int | list[str]:
    """A cluster id, a comma-separated account list, or @FILE with one account per line."""
    from distilltrace.custody.bundle import CustodyError

    t = text.strip()
    if t.lstrip("-").isdigit():
        return int(t)
    if t.startswith("@"):
        p = Path(t[1:])
        if not p.is_file():
            raise CustodyError(f"--campaign {t}: file not found")
        return [x.strip() for x in p.read_text(encoding="utf-8").splitlines() if x.strip()]
    accts = [x.strip() for x in t.split(",") if x.strip()]
    if not accts:
        raise CustodyError("--campaign: give a cluster id or account ids")
    return accts


def _options(items: list[str]) -> dict:
    from distilltrace.custody.bundle import CustodyError

    out = {}
    for it in items:
        k, eq, v = it.partition("=")
        if not eq or not k.strip():
            raise CustodyError(f"--provenance-option {it!r}: expected KEY=VALUE")
        try:
            out[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            out[k.strip()] = v
    return out


@app.command("build")
def build(
    log: list[Path] = typer.Option(..., "--log", help="Traffic log file(s) the scan read."),
    scan: Path = typer.Option(..., "--scan", help="The traffic scan folder of those logs."),
    campaign: str = typer.Option(..., help="Cluster id, accounts a,b,c, or @FILE."),
    key: list[Path] = typer.Option(..., "--key", help="Watermark key file served under."),
    suspect: str = typer.Option(..., help="Suspect model spec (weights or openai:...)."),
    reference: str | None = typer.Option(None, help="Reference (served) model spec."),
    control: list[str] = typer.Option([], "--control", help="Control model spec (>= 2)."),
    out: Path = typer.Option(..., "--out", help="Bundle folder to write (new or empty)."),
    alpha: float | None = typer.Option(None, help="Family-wise level (default 0.01)."),
    n_probes: int | None = typer.Option(None, help="Closed-mode probe prompts (default 64)."),
    seed: int | None = typer.Option(None, help="Seed of the suspect's sampling."),
    no_open: bool = typer.Option(False, "--no-open", help="Skip open mode."),
    prefix_mode: str = typer.Option(
        "auto", help="Prefix mode: auto (when open mode cannot run), on or off."
    ),
    prefix_stride: int | None = typer.Option(None, help="Prefix mode: probe every N tokens."),
    prefix_format: str | None = typer.Option(
        None,
        help="The suspect's prompt pattern with {prompt} (\\n escapes); default its "
        "chat template (local weights). An endpoint needs it.",
    ),
    prefix_tokens: int | None = typer.Option(
        None, help="Prefix mode: tokens per probe (default 1 on the key's tokenizer, else 3)."
    ),
    logprobs_mode: str = typer.Option(
        "off",
        help="Logprobs mode (closed mode read through the top-k log-probabilities the "
        "suspect returns): auto (when it can), on or off.",
    ),
    logprobs_top_k: int | None = typer.Option(
        None, help="Logprobs mode: log-probabilities per step (default 20; <= 20 over HTTP)."
    ),
    provenance_option: list[str] = typer.Option(
        [], "--provenance-option", help="ProvenanceConfig field KEY=VALUE (JSON value)."
    ),
    no_membership: bool = typer.Option(False, "--no-membership", help="Skip membership."),
    membership_fresh: int | None = typer.Option(
        None, help="Membership: fresh answers per exchange (default 1)."
    ),
    served_temperature: float | None = typer.Option(
        None, help="Membership: the serving temperature, for log rows without one."
    ),
    served_max_tokens: int | None = typer.Option(
        None, help="Membership: the serving length cap, for log rows without one."
    ),
) -> None:
    """Build the evidence bundle of one campaign and one suspect."""
    from dataclasses import replace

    from distilltrace.custody import CustodyConfig, CustodyInputs, build_bundle
    from distilltrace.custody.build import check_out
    from distilltrace.models import load_model
    from distilltrace.prompts import unescape_pattern

    given = {"alpha": alpha, "n_probes": n_probes, "seed": seed, "prefix_mode": prefix_mode,
             "prefix_stride": prefix_stride, "prefix_tokens": prefix_tokens,
             "prefix_format": unescape_pattern(prefix_format),
             "logprobs_mode": logprobs_mode, "logprobs_top_k": logprobs_top_k,
             "membership_fresh": membership_fresh, "served_temperature": served_temperature,
             "served_max_tokens": served_max_tokens}  # fmt: skip
    cfg = replace(CustodyConfig(), **{k: v for k, v in given.items() if v is not None})
    cfg = replace(cfg, open_mode=not no_open, membership=not no_membership,
                  provenance=_options(provenance_option))  # fmt: skip
    camp = _campaign(campaign)
    check_out(out)  # before any model is loaded
    inputs = CustodyInputs(
        logs=log, scan_dir=scan, campaign=camp, key_files=key, suspect=load_model(suspect),
        reference=load_model(reference) if reference else None,
        controls=[load_model(c) for c in control],
    )  # fmt: skip
    res = build_bundle(inputs, out, cfg, note=_say)
    for c in res.report["family"]["details"]["claims"]:
        typer.echo(f"{c['name']:22s} p = {c['pvalue']:.3g}  Holm-adjusted {c['adjusted']:.3g}")
    for name, why in res.report["skipped"].items():
        typer.echo(f"{name:22s} did not run: {why}")
    typer.echo(res.report["attribution"]["statement"])
    typer.echo(f"bundle {res.out}; manifest SHA-256 {res.manifest_sha256} (publish it)")


@app.command("verify")
def verify(
    bundle: Path = typer.Argument(..., help="The bundle folder."),
    secret_file: Path | None = typer.Option(
        None, "--secret-file", help="Revealed secret: the key file, or a file of hex."
    ),
    digest: str | None = typer.Option(None, "--digest", help="Published manifest SHA-256."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Recompute every statistic from the bundle alone; exit 2 naming the file on failure."""
    from distilltrace.custody import verify_bundle

    res = verify_bundle(bundle, secret_file, digest)
    if as_json:
        typer.echo(json.dumps(res.to_dict(), indent=2))
        return
    typer.echo(f"OK: {res.files_checked} files match manifest {res.manifest_sha256}")
    for name, p in res.recomputed.items():
        typer.echo(f"recomputed {name:22s} p = {p:.3g}" if p is not None else f"{name}: n/a")
    for name, why in res.not_recomputed.items():
        typer.echo(f"not recomputed {name:18s} {why}")
    typer.echo(res.statement)


@app.command("demo")
def demo(
    tier: str = typer.Option("quick", help="quick (minutes on 2 CPU cores) or full."),
    out: Path = typer.Option(Path("custody-demo"), "--out", help="Working folder."),
    teacher: str | None = typer.Option(
        None, help="Served model spec instead of SmolLM2 (e.g. a tiny test model)."
    ),
    student: str | None = typer.Option(
        None, help="The base fine-tuned into every student instead of the tier's (a spec)."
    ),
    seed: int = typer.Option(
        0,
        min=0,
        help="Seed of the traffic, the training and the benign and control students' "
        "ShareGPT samples: another seed repeats the demo on other models.",
    ),
) -> None:
    """Serve a watermarked SmolLM2, harvest it, distil, build and verify custody bundles."""
    from distilltrace.custody.demo import run_demo

    res = run_demo(out, tier, note=_say, teacher=teacher, student=student, seed=seed)
    for name, b in res.bundles.items():
        ps = ", ".join(f"{k} {v:.3g}" for k, v in b["pvalues"].items() if v is not None)
        typer.echo(f"{name} student: {ps}")
        typer.echo(f"  {b['statement']}")
    typer.echo(f"tampered copy: {res.tampered_error}")
    typer.echo(f"targets: {res.targets}")
    typer.echo(f"seconds: {res.seconds}; details in {out / 'demo.json'}")
