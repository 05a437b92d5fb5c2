"""The model-spec grammar: one string that names any model distilltrace can query.

Accepted forms:

- ``PATH`` or ``hf:PATH``: a local transformers folder (config.json + safetensors + tokenizer);
- ``PATH.gguf`` or ``gguf:PATH``: a local GGUF file (de-quantised by transformers + gguf);
- ``NAME`` or ``bundled:NAME``: a bundled model (``smollm2-135m-instruct``, ``gemma3-270m``);
- ``openai:BASE_URL;model=NAME[;key_env=ENVVAR][;timeout=S][;concurrency=N][;retries=N]``:
  an OpenAI-compatible HTTP endpoint (the API key is read from the environment variable
  named by ``key_env``, never from the spec itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from distilltrace.errors import ModelSpecError

BUNDLED_NAMES = ("smollm2-135m-instruct", "gemma3-270m")

ACCEPTED_FORMS = (
    "a transformers folder (PATH or hf:PATH), a GGUF file (PATH.gguf or gguf:PATH), "
    f"a bundled model ({', '.join(BUNDLED_NAMES)}, or bundled:NAME), or "
    "openai:BASE_URL;model=NAME[;key_env=ENVVAR][;timeout=S][;concurrency=N][;retries=N]"
)

_OPENAI_KEYS = {"model", "key_env", "timeout", "concurrency", "retries"}


@dataclass(frozen=True)
class ParsedSpec:
    """A parsed model spec: its kind, its target (path, name or URL) and options."""

    kind: str  # "hf" | "gguf" | "bundled" | "openai"
    target: str
    options: dict[str, str] = field(default_factory=dict)
    raw: str = ""


def _bad(spec: str, why: str) -> ModelSpecError:
    return ModelSpecError(f"bad model spec {spec!r}: {why}; accepted forms: {ACCEPTED_FORMS}")


def parse_spec(spec: str) -> ParsedSpec:
    """Parse a model-spec string; raise ModelSpecError (one line, listing the forms) if bad."""
    if not isinstance(spec, str) or not spec.strip():
        raise _bad(str(spec), "empty")
    s = spec.strip()
    if s.startswith("openai:"):
        return _parse_openai(s)
    if s.startswith("bundled:"):
        name = s[len("bundled:") :].strip()
        if name not in BUNDLED_NAMES:
            raise _bad(s, f"unknown bundled model {name!r}")
        return ParsedSpec("bundled", name, {}, s)
    if s in BUNDLED_NAMES:
        return ParsedSpec("bundled", s, {}, s)
    if s.startswith("gguf:"):
        path = s[len("gguf:") :].strip()
        if not path:
            raise _bad(s, "no path after gguf:")
        return ParsedSpec("gguf", path, {}, s)
    if s.startswith("hf:"):
        path = s[len("hf:") :].strip()
        if not path:
            raise _bad(s, "no path after hf:")
        return ParsedSpec("hf", path, {}, s)
    if ":" in s.split("/")[0] and not Path(s).exists() and len(s.split(":")[0]) > 1:
        raise _bad(s, f"unknown scheme {s.split(':')[0]!r}")
    if s.lower().endswith(".gguf"):
        return ParsedSpec("gguf", s, {}, s)
    p = Path(s).expanduser()
    if p.is_dir():
        return ParsedSpec("hf", s, {}, s)
    if p.exists():
        raise _bad(s, "a file that is not .gguf (a transformers model is a folder)")
    raise _bad(s, "no such file or folder, and not a bundled model name")


def _parse_openai(s: str) -> ParsedSpec:
    body = s[len("openai:") :]
    parts = [p.strip() for p in body.split(";")]
    base = parts[0]
    if not (base.startswith("http://") or base.startswith("https://")):
        raise _bad(s, "the base URL must start with http:// or https://")
    opts: dict[str, str] = {}
    for p in parts[1:]:
        if not p:
            continue
        if "=" not in p:
            raise _bad(s, f"option {p!r} is not KEY=VALUE")
        k, v = (x.strip() for x in p.split("=", 1))
        if k not in _OPENAI_KEYS:
            raise _bad(s, f"unknown option {k!r} (known: {', '.join(sorted(_OPENAI_KEYS))})")
        opts[k] = v
    if not opts.get("model"):
        raise _bad(s, "missing ;model=NAME")
    for k in ("timeout",):
        if k in opts:
            try:
                if float(opts[k]) <= 0:
                    raise ValueError
            except ValueError:
                raise _bad(s, f"{k} must be a positive number") from None
    for k in ("concurrency", "retries"):
        if k in opts:
            try:
                if int(opts[k]) < (1 if k == "concurrency" else 0):
                    raise ValueError
            except ValueError:
                raise _bad(s, f"{k} must be a non-negative integer (concurrency >= 1)") from None
    return ParsedSpec("openai", base.rstrip("/"), opts, s)
