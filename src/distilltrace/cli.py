"""Command-line entry point: parses, calls the library, renders. One readable line per error."""

from __future__ import annotations

import os
import sys

import typer

from distilltrace import __version__
from distilltrace.bench import marks_cli as marks_bench_cli
from distilltrace.bench import provenance_cli as provenance_bench_cli
from distilltrace.custody import cli as custody_cli
from distilltrace.distill import cli as distill_cli
from distilltrace.gateway import cli as gateway_cli
from distilltrace.marks import cli as marks_cli
from distilltrace.models import cli as models_cli
from distilltrace.provenance import cli as provenance_cli
from distilltrace.serve import cli as serve_cli
from distilltrace.traffic import cli as traffic_cli

app = typer.Typer(
    name="distilltrace",
    help="Distillation forensics: campaigns in API logs, model provenance, watermarks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_state = {"debug": bool(os.environ.get("DISTILLTRACE_DEBUG"))}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"distilltrace {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """distilltrace: evidence about distillation, with stated false-accusation rates."""
    _state["debug"] = _state["debug"] or debug


app.add_typer(models_cli.app, name="models", help="Bundled, cached and local models.")
app.command("generate", help="Generate from any model spec.")(models_cli.generate)
app.command("serve", help="Serve a local model over an OpenAI-compatible HTTP API.")(
    serve_cli.serve
)
app.add_typer(traffic_cli.app, name="traffic", help="Find distillation campaigns in API logs.")
app.add_typer(distill_cli.app, name="distill", help="Train students from teachers.")
app.add_typer(distill_cli.zoo_app, name="zoo", help="Build the model zoo (ground truth).")
app.add_typer(
    provenance_cli.app, name="provenance", help="Test whether a suspect derives from a reference."
)
app.add_typer(marks_cli.app, name="marks", help="Watermarks and radioactivity tests.")
app.add_typer(custody_cli.app, name="custody", help="Chain-of-custody evidence bundles.")
app.add_typer(
    gateway_cli.app, name="gateway", help="A logging, marking gateway in front of a model."
)

bench_app = typer.Typer(help="Benchmarks scored against ground truth.", no_args_is_help=True)
bench_app.command("provenance")(provenance_bench_cli.bench)
bench_app.command("marks")(marks_bench_cli.bench)
app.add_typer(bench_app, name="bench")
app.command("demo", help="Simulate traffic with hidden campaigns, scan, evaluate, report.")(
    traffic_cli.demo
)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; DistilltraceError and common OS errors become one line on stderr."""
    from distilltrace.errors import DistilltraceError

    try:
        app(args=argv, prog_name="distilltrace")
    except (DistilltraceError, FileNotFoundError, PermissionError, IsADirectoryError) as e:
        if _state["debug"]:
            raise
        msg = str(e) if isinstance(e, DistilltraceError) else f"{type(e).__name__}: {e}"
        typer.echo(f"error: {msg}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - last resort: one line, traceback on --debug
        if _state["debug"]:
            raise
        typer.echo(f"error: {type(e).__name__}: {e} (run with --debug for the traceback)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
