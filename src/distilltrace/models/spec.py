"""The model-spec grammar: one string that names any model distilltrace can query.

Accepted forms (one per registered backend, see `distilltrace.models.backends`):

- ``PATH`` or ``hf:PATH``: a local transformers folder (config.json + safetensors + tokenizer);
- ``PATH.gguf`` or ``gguf:PATH``: a local GGUF file (de-quantised by transformers + gguf);
- ``NAME`` or ``bundled:NAME``: a bundled model (``smollm2-135m-instruct``, ``gemma3-270m``);
- ``openai:BASE_URL;model=NAME[;key_env=ENVVAR][;timeout=S][;concurrency=N][;retries=N]``:
  an OpenAI-compatible HTTP endpoint (the API key is read from the environment variable
  named by ``key_env``, never from the spec itself).

Backends live in a plain dict registry. A backend is a `Backend`: its kind, its spec
prefix (``"hf:"``), the line it adds to the accepted forms, a loader, and optionally a
parser for what follows the prefix and a test that claims bare (unprefixed) specs.
`register_backend` is how the built-ins are added and how a plugin adds one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distilltrace.errors import ModelSpecError


@dataclass(frozen=True)
class ParsedSpec:
    """A parsed model spec: its kind (the backend), its target (path, name or URL) and options."""

    kind: str  # a registered backend's kind: "hf" | "gguf" | "bundled" | "openai" | ...
    target: str
    options: dict[str, str] = field(default_factory=dict)
    raw: str = ""


# A loader turns a parsed spec into a Model; `status` receives short messages about slow
# steps (may be None). Given as a callable or as "module:attribute" (imported on first use,
# so registering a backend imports nothing heavy).
Loader = Callable[[ParsedSpec, Callable[[str], None] | None], Any]
# A parser gets the whole spec string and what follows the prefix, returns a ParsedSpec or
# raises SpecError(why).
Parser = Callable[[str, str], ParsedSpec]


class SpecError(ValueError):
    """Raised by a backend's parser: why the spec is bad (the registry adds the forms)."""


@dataclass(frozen=True)
class Backend:
    """One way of reaching a model, as the spec grammar and `load_model` see it."""

    kind: str
    prefix: str  # e.g. "hf:"; every backend has one
    form: str  # its entry in the accepted forms, e.g. "a transformers folder (PATH or hf:PATH)"
    load: Loader | str
    parse: Parser | None = None  # default: the target is the non-empty text after the prefix
    claims: Callable[[str], bool] | None = None  # does a bare spec (no prefix) name this kind?
    claim_order: int = 100  # bare specs are offered to backends in increasing order

    def parse_spec(self, spec: str) -> ParsedSpec:
        body = spec[len(self.prefix) :]
        if self.parse is not None:
            return self.parse(spec, body)
        target = body.strip()
        if not target:
            raise SpecError(f"no path after {self.prefix}")
        return ParsedSpec(self.kind, target, {}, spec)

    def loader(self) -> Loader:
        if isinstance(self.load, str):
            module, _, attr = self.load.partition(":")
            obj: Any = importlib.import_module(module)
            for part in attr.split("."):
                obj = getattr(obj, part)
            return obj
        return self.load


BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend, *, replace: bool = False) -> Backend:
    """Add a backend to the registry (the built-ins use this too; see models/backends.py)."""
    if not backend.prefix.endswith(":"):
        raise ValueError(f"a backend prefix ends with ':', got {backend.prefix!r}")
    old = BACKENDS.get(backend.kind)
    if old is not None and old != backend and not replace:
        raise ValueError(f"a model backend {backend.kind!r} is already registered")
    if any(b.prefix == backend.prefix and b.kind != backend.kind for b in BACKENDS.values()):
        raise ValueError(f"the spec prefix {backend.prefix!r} is already taken")
    BACKENDS[backend.kind] = backend
    return backend


def unregister_backend(kind: str) -> None:
    """Remove a backend (for plugins and tests)."""
    BACKENDS.pop(kind, None)


def backends() -> dict[str, Backend]:
    """The registry, with the built-in backends registered."""
    import distilltrace.models.backends  # noqa: F401 - registers the built-ins on first use

    return BACKENDS


def accepted_forms() -> str:
    """Every registered backend's form, for error messages."""
    forms = [b.form for b in backends().values()]
    if len(forms) < 2:
        return "".join(forms)
    return ", ".join(forms[:-1]) + ", or " + forms[-1]


def _bad(spec: str, why: str) -> ModelSpecError:
    return ModelSpecError(f"bad model spec {spec!r}: {why}; accepted forms: {accepted_forms()}")


def parse_spec(spec: str) -> ParsedSpec:
    """Parse a model-spec string; raise ModelSpecError (one line, listing the forms) if bad."""
    if not isinstance(spec, str) or not spec.strip():
        raise _bad(str(spec), "empty")
    s = spec.strip()
    registry = backends()
    try:
        for b in registry.values():
            if s.startswith(b.prefix):
                return b.parse_spec(s)
        if ":" in s.split("/")[0] and not Path(s).exists() and len(s.split(":")[0]) > 1:
            raise SpecError(f"unknown scheme {s.split(':')[0]!r}")
        for b in sorted(registry.values(), key=lambda b: b.claim_order):
            if b.claims is not None and b.claims(s):
                return ParsedSpec(b.kind, s, {}, s)
    except SpecError as e:
        raise _bad(s, str(e)) from None
    if Path(s).expanduser().exists():
        raise _bad(s, "a file that is not .gguf (a transformers model is a folder)")
    raise _bad(s, "no such file or folder, and not a bundled model name")


def __getattr__(name: str) -> Any:
    # Kept for compatibility: the bundled names live in models/bundled.py, the forms in
    # the registry.
    if name == "BUNDLED_NAMES":
        from distilltrace.models.bundled import BUNDLED

        return tuple(BUNDLED)
    if name == "ACCEPTED_FORMS":
        return accepted_forms()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
