"""Watermark keys: generate, save and load key files; the secret never leaves this module.

A key file is JSON::

    {"format": "distilltrace-watermark-key/1", "key_id": "wm-...", "scheme": "greenlist",
     "params": {...}, "tokenizer": {"spec": ..., "fingerprint": ..., "id": ...},
     "secret": "<64 hex digits>"}

Instead of ``secret`` a file may name an environment variable holding it
(``"secret_env": "VAR"``); a file with neither reads ``DISTILLTRACE_WATERMARK_SECRET``.
The ``key_id`` is a one-way hash of the secret: safe to publish, log and put in reports.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import secrets as _secrets
from pathlib import Path
from typing import Any

from distilltrace.errors import InputError
from distilltrace.marks.schemes import SchemeParams, TokenizerBinding, Watermark
from distilltrace.marks.secret import Secret, key_id_of

KEY_FORMAT = "distilltrace-watermark-key/1"
DEFAULT_SECRET_ENV = "DISTILLTRACE_WATERMARK_SECRET"
SECRET_BYTES = 32
__all__ = [
    "Secret",
    "key_id_of",
    "load_watermark",
    "make_watermark",
    "new_secret",
    "write_key_file",
]


def new_secret() -> Secret:
    """A fresh random secret (32 bytes from the OS CSPRNG)."""
    return Secret(_secrets.token_bytes(SECRET_BYTES))


def secret_from_hex(text: str, where: str) -> Secret:
    """Parse a hex secret; the error never echoes the value."""
    try:
        raw = bytes.fromhex(str(text).strip())
    except ValueError:
        raise InputError(f"{where}: the watermark secret is not valid hex") from None
    if len(raw) < 16:
        raise InputError(f"{where}: the watermark secret is shorter than 16 bytes")
    return Secret(raw)


def make_watermark(
    params: SchemeParams, tokenizer: TokenizerBinding, secret: Secret | None = None
) -> Watermark:
    """A watermark from parameters, a tokenizer binding and a secret (fresh if None)."""
    secret = secret or new_secret()
    return Watermark(key_id=key_id_of(secret), params=params, tokenizer=tokenizer, secret=secret)


def key_file_dict(wm: Watermark, secret: Secret | None, secret_env: str | None) -> dict[str, Any]:
    """The JSON content of a key file (with the secret inline, or the env var name)."""
    d: dict[str, Any] = {
        "format": KEY_FORMAT,
        "key_id": wm.key_id,
        "scheme": wm.params.scheme,
        "params": wm.params.to_dict(),
        "tokenizer": wm.tokenizer.to_dict(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    if secret_env:
        d["secret_env"] = secret_env
    elif secret is not None:
        d["secret"] = secret.hex()
    return d


def write_key_file(
    path: str | Path, wm: Watermark, secret: Secret | None, secret_env: str | None = None
) -> Path:
    """Write a key file readable only by its owner (0600)."""
    path = Path(path)
    if path.exists():
        raise InputError(f"{path} already exists; refusing to overwrite a key file")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(key_file_dict(wm, secret, secret_env), f, indent=2)
        f.write("\n")
    return path


def _read_secret(d: dict[str, Any], where: str) -> Secret:
    if "secret" in d:
        return secret_from_hex(d["secret"], where)
    env = d.get("secret_env") or DEFAULT_SECRET_ENV
    if not isinstance(env, str):
        raise InputError(f"{where}: secret_env must be an environment variable name")
    value = os.environ.get(env)
    if not value:
        raise InputError(
            f"{where}: no secret in the file and environment variable {env} is not set"
        )
    return secret_from_hex(value, f"{where} (from ${env})")


def watermark_from_dict(d: dict[str, Any], where: str = "key") -> Watermark:
    """Build a Watermark from a parsed key file; checks the format and the key id."""
    if not isinstance(d, dict) or d.get("format") != KEY_FORMAT:
        raise InputError(f"{where}: not a distilltrace watermark key file (format {KEY_FORMAT})")
    secret = _read_secret(d, where)
    try:
        params = SchemeParams.from_dict({"scheme": d.get("scheme"), **(d.get("params") or {})})
        tok = TokenizerBinding.from_dict(d.get("tokenizer") or {})
    except (TypeError, ValueError) as e:
        raise InputError(f"{where}: bad key parameters: {e}") from None
    kid = key_id_of(secret)
    if d.get("key_id") != kid:
        raise InputError(
            f"{where}: key_id {d.get('key_id')!r} does not match the secret "
            "(wrong secret, or an edited or corrupt key file)"
        )
    return Watermark(key_id=kid, params=params, tokenizer=tok, secret=secret)


def load_watermark(path: str | Path) -> Watermark:
    """Load a key file into a Watermark (``.key_id``, ``.logits_processors(model)``)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"watermark key file {p} not found")
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{p}: not valid JSON (a watermark key file is JSON)") from None
    return watermark_from_dict(d, where=str(p))
