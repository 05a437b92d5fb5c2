"""Watermark keys: generate, save and load key files; the secret never leaves this module.

A key file is JSON::

    {"format": "distilltrace-watermark-key/2", "key_id": "wm-...", "scheme": "greenlist",
     "params": {...}, "tokenizer": {"spec": ..., "fingerprint": ..., "id": ...},
     "mac": "<64 hex digits>", "secret": "<64 hex digits>"}

Instead of ``secret`` a file may name an environment variable holding it
(``"secret_env": "VAR"``); a file with neither reads ``DISTILLTRACE_WATERMARK_SECRET``.
The ``key_id`` is a one-way hash of the secret: safe to publish, log and put in reports.
The ``mac`` is an HMAC-SHA256, under a key derived from the secret, of the format, key id,
scheme parameters and tokenizer fingerprint: editing any of them (say gamma, which would
turn strong evidence into none) makes loading fail. Format /1 files (no mac) still load,
with a LegacyKeyWarning; ``upgrade_key_file`` rewrites one in the current format.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import hmac
import json
import os
import secrets as _secrets
import warnings
import weakref
from pathlib import Path
from typing import Any

from distilltrace.errors import InputError
from distilltrace.marks.schemes import SchemeParams, TokenizerBinding, Watermark
from distilltrace.marks.secret import Secret, key_id_of

KEY_FORMAT = "distilltrace-watermark-key/2"
LEGACY_KEY_FORMAT = "distilltrace-watermark-key/1"  # no mac: parameters not covered
DEFAULT_SECRET_ENV = "DISTILLTRACE_WATERMARK_SECRET"
SECRET_BYTES = 32
__all__ = [
    "LegacyKeyWarning",
    "Secret",
    "key_id_of",
    "load_watermark",
    "make_watermark",
    "new_secret",
    "upgrade_key_file",
    "write_key_file",
]

# The MAC key (derived from the secret, not the secret) of each Watermark made or loaded
# here, so a key file can be written with a mac even when the secret lives in an env var.
_MAC_KEYS: weakref.WeakKeyDictionary[Watermark, bytes] = weakref.WeakKeyDictionary()


class LegacyKeyWarning(UserWarning):
    """A format /1 key file: its parameters and tokenizer binding are not integrity-checked."""


def _mac_key(secret: Secret) -> bytes:
    return hashlib.blake2b(secret.reveal(), digest_size=32, person=b"dt-wm-key-mac").digest()


def key_mac(mac_key: bytes, key_id: str, params: SchemeParams, fingerprint: str) -> str:
    """HMAC-SHA256 over the format, key id, scheme parameters and tokenizer fingerprint."""
    covered = {
        "format": KEY_FORMAT,
        "key_id": key_id,
        "params": params.to_dict(),
        "tokenizer_fingerprint": fingerprint,
    }
    msg = json.dumps(covered, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(mac_key, msg, hashlib.sha256).hexdigest()


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
    wm = Watermark(key_id=key_id_of(secret), params=params, tokenizer=tokenizer, secret=secret)
    _MAC_KEYS[wm] = _mac_key(secret)
    return wm


def key_file_dict(wm: Watermark, secret: Secret | None, secret_env: str | None) -> dict[str, Any]:
    """The JSON content of a key file (with the secret inline, or the env var name)."""
    mk = _mac_key(secret) if secret is not None else _MAC_KEYS.get(wm)
    if mk is None:
        raise InputError(
            "cannot write a key file without the secret: pass the secret, or a Watermark "
            "from make_watermark / load_watermark"
        )
    if secret is not None and key_id_of(secret) != wm.key_id:
        raise InputError("the secret does not match the watermark's key id")
    d: dict[str, Any] = {
        "format": KEY_FORMAT,
        "key_id": wm.key_id,
        "scheme": wm.params.scheme,
        "params": wm.params.to_dict(),
        "tokenizer": wm.tokenizer.to_dict(),
        "mac": key_mac(mk, wm.key_id, wm.params, wm.tokenizer.fingerprint),
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


def watermark_from_dict(
    d: dict[str, Any], where: str = "key", *, allow_legacy: bool = True
) -> Watermark:
    """Build a Watermark from a parsed key file; checks the format, the key id and (format
    /2) the mac over the parameters and tokenizer fingerprint."""
    fmt = d.get("format") if isinstance(d, dict) else None
    if fmt not in (KEY_FORMAT, LEGACY_KEY_FORMAT):
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
    if fmt == LEGACY_KEY_FORMAT:
        _legacy(where, allow_legacy)
    else:
        expected = key_mac(_mac_key(secret), kid, params, tok.fingerprint)
        mac = d.get("mac")
        if not isinstance(mac, str) or not hmac.compare_digest(mac.lower(), expected):
            raise InputError(
                f"{where}: integrity check failed: the key's parameters or tokenizer binding "
                "were edited (or the mac is missing or corrupt); detection with edited "
                "parameters would report wrong p-values"
            )
    wm = Watermark(key_id=kid, params=params, tokenizer=tok, secret=secret)
    _MAC_KEYS[wm] = _mac_key(secret)
    return wm


def _legacy(where: str, allow: bool) -> None:
    msg = (
        f"{where}: an old ({LEGACY_KEY_FORMAT}) key file with no integrity check: its "
        "parameters and tokenizer binding are not verified; rewrite it with "
        "distilltrace.marks.keys.upgrade_key_file"
    )
    if not allow:
        raise InputError(msg)
    warnings.warn(msg, LegacyKeyWarning, stacklevel=4)


def load_watermark(path: str | Path, *, allow_legacy: bool = True) -> Watermark:
    """Load a key file into a Watermark (``.key_id``, ``.logits_processors(model)``).

    A format /1 file (no mac) loads with a LegacyKeyWarning, or fails with
    ``allow_legacy=False``.
    """
    p = Path(path)
    return watermark_from_dict(_read_json(p), where=str(p), allow_legacy=allow_legacy)


def _read_json(p: Path) -> Any:
    if not p.is_file():
        raise InputError(f"watermark key file {p} not found")
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{p}: not valid JSON (a watermark key file is JSON)") from None


def upgrade_key_file(src: str | Path, dst: str | Path) -> Path:
    """Rewrite a key file (e.g. format /1) in the current format, with a mac, at ``dst``.

    Check the old file's parameters first: the mac certifies what the file says now.
    The secret stays where it was (inline, or the same environment variable).
    """
    src = Path(src)
    d = _read_json(src)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LegacyKeyWarning)
        wm = watermark_from_dict(d, where=str(src))
    if "secret" in d:
        return write_key_file(dst, wm, _read_secret(d, str(src)))
    return write_key_file(dst, wm, None, d.get("secret_env") or DEFAULT_SECRET_ENV)
