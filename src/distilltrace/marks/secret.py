"""The secret of a watermark key: bytes that never print, and the public key id."""

from __future__ import annotations

import hashlib
import hmac

from distilltrace.errors import InputError


class Secret:
    """Secret key bytes that never print: repr/str show only that a secret is there."""

    __slots__ = ("_b",)

    def __init__(self, value: bytes):
        if not isinstance(value, bytes | bytearray) or len(value) < 16:
            raise InputError("a watermark secret must be at least 16 bytes")
        self._b = bytes(value)

    def reveal(self) -> bytes:
        """The raw bytes (for keyed hashing only)."""
        return self._b

    def hex(self) -> str:
        """Hex form, for writing a key file."""
        return self._b.hex()

    def __repr__(self) -> str:
        return "Secret(<hidden>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._b, other._b)

    def __hash__(self) -> int:
        return hash(key_id_of(self))

    def __reduce__(self):  # never pickle a secret by accident
        raise TypeError("watermark secrets cannot be pickled")


def key_id_of(secret: Secret) -> str:
    """The public key id: a one-way hash of the secret."""
    d = hashlib.blake2b(secret.reveal(), digest_size=8, person=b"dt-wm-key-id")
    return "wm-" + d.hexdigest()
