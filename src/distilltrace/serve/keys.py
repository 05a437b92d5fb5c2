"""API keys for ``distilltrace serve``: a file of SHA-256 hashes, one per line.

Hash a key without putting it on the command line::

    python -m distilltrace.serve.keys >> keys.txt      # reads the key from stdin

or ``printf '%s' "$KEY" | sha256sum | cut -d' ' -f1 >> keys.txt``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from distilltrace.errors import InputError
from distilltrace.serve.guard import hash_api_key

_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")


def load_key_hashes(path: str | Path) -> list[str]:
    """Read SHA-256 hex digests (blank lines and # comments ignored); one-line error if bad."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"API key file not found: {p}")
    hashes = []
    for n, line in enumerate(p.read_text().splitlines(), 1):
        s = line.split("#", 1)[0].strip()
        if not s:
            continue
        if not _HEX64.match(s):
            raise InputError(
                f"{p}:{n}: not a SHA-256 hex digest (the file holds hashes of keys, not keys; "
                "hash one with: python -m distilltrace.serve.keys)"
            )
        hashes.append(s.lower())
    if not hashes:
        raise InputError(f"API key file {p} holds no key hashes")
    return hashes


def main() -> None:
    """Read one key from stdin, print its SHA-256 hex digest."""
    key = sys.stdin.readline().rstrip("\r\n")
    if not key:
        print("error: no key on stdin", file=sys.stderr)
        sys.exit(2)
    print(hash_api_key(key))


if __name__ == "__main__":
    main()
