"""The built-in model backends, registered through the same `register_backend` a plugin uses.

Adding a backend: write its loader (``load(parsed: ParsedSpec, status) -> Model``) in a
new module, and add one `register_backend(Backend(...))` line here (or call it from the
plugin). Loaders are named as ``"module:attribute"`` so that registering imports nothing.
"""

from __future__ import annotations

from pathlib import Path

from distilltrace.models.bundled import BUNDLED
from distilltrace.models.spec import Backend, ParsedSpec, SpecError, register_backend

_OPENAI_KEYS = {"model", "key_env", "timeout", "concurrency", "retries"}


def _parse_bundled(spec: str, body: str) -> ParsedSpec:
    name = body.strip()
    if name not in BUNDLED:
        raise SpecError(f"unknown bundled model {name!r}")
    return ParsedSpec("bundled", name, {}, spec)


def _parse_openai(spec: str, body: str) -> ParsedSpec:
    parts = [p.strip() for p in body.split(";")]
    base = parts[0]
    if not (base.startswith("http://") or base.startswith("https://")):
        raise SpecError("the base URL must start with http:// or https://")
    opts: dict[str, str] = {}
    for p in parts[1:]:
        if not p:
            continue
        if "=" not in p:
            raise SpecError(f"option {p!r} is not KEY=VALUE")
        k, v = (x.strip() for x in p.split("=", 1))
        if k not in _OPENAI_KEYS:
            raise SpecError(f"unknown option {k!r} (known: {', '.join(sorted(_OPENAI_KEYS))})")
        opts[k] = v
    if not opts.get("model"):
        raise SpecError("missing ;model=NAME")
    _check_number(opts, "timeout", float, 0, "a positive number", strict=True)
    for k in ("concurrency", "retries"):
        _check_number(
            opts,
            k,
            int,
            1 if k == "concurrency" else 0,
            "a non-negative integer (concurrency >= 1)",
        )
    return ParsedSpec("openai", base.rstrip("/"), opts, spec)


def _check_number(
    opts: dict[str, str], key: str, kind: type, low: float, what: str, strict: bool = False
) -> None:
    if key not in opts:
        return
    try:
        v = kind(opts[key])
        if v < low or (strict and v <= low):
            raise ValueError
    except ValueError:
        raise SpecError(f"{key} must be {what}") from None


register_backend(
    Backend(
        kind="hf",
        prefix="hf:",
        form="a transformers folder (PATH or hf:PATH)",
        load="distilltrace.models.local:load_folder_spec",
        claims=lambda s: Path(s).expanduser().is_dir(),
        claim_order=30,
    )
)
register_backend(
    Backend(
        kind="gguf",
        prefix="gguf:",
        form="a GGUF file (PATH.gguf or gguf:PATH)",
        load="distilltrace.models.gguf_loader:load_gguf_spec",
        claims=lambda s: s.lower().endswith(".gguf"),
        claim_order=20,
    )
)
register_backend(
    Backend(
        kind="bundled",
        prefix="bundled:",
        form=f"a bundled model ({', '.join(BUNDLED)}, or bundled:NAME)",
        load="distilltrace.models.bundled:load_bundled_spec",
        parse=_parse_bundled,
        claims=lambda s: s in BUNDLED,
        claim_order=10,
    )
)
register_backend(
    Backend(
        kind="openai",
        prefix="openai:",
        form="openai:BASE_URL;model=NAME[;key_env=ENVVAR][;timeout=S][;concurrency=N][;retries=N]",
        load="distilltrace.models.openai_http:load_openai_spec",
        parse=_parse_openai,
    )
)
