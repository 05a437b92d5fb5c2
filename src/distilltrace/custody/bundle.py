"""The evidence bundle: a folder an auditor can check without trusting its author.

Layout (every path relative to the bundle folder)::

    SEAL.json                 SHA-256 of manifest.json (+ an HMAC under the watermark secret)
    manifest.json             format, software version, seeds, config, key commitment, and
                              one entry per file below: path, kind, SHA-256, size
    key_commitment.json       the public part of the key file (key id = hash of the secret)
    tokenizer/...             the key's tokenizer (its fingerprint is bound in the key)
    log/segment-NNN.jsonl     the campaign's log rows, one segment per source log file
    harvested.jsonl           the exchanges the campaign harvested (derived from the segments)
    campaign.json             the campaign's member tails, customer units, clusters tested
    probes.jsonl              probe prompts of the closed-mode radioactivity test
    transcripts/*.json[l]     every suspect answer (closed mode), prediction (open mode) and
                              continuation (prefix mode), and every provenance query and answer
    models.json               model identities (weight hashes, or endpoint + transcript hash)
    report.json, report.html  the claims and their Holm family, in numbers and in words

Every statistic in report.json is a pure function of these files (and, for the mark
statistics, of the secret): `custody verify` recomputes them all and compares.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from distilltrace import jsonl
from distilltrace.errors import DistilltraceError

BUNDLE_FORMAT = "distilltrace-custody-bundle/1"
MANIFEST = "manifest.json"
SEAL = "SEAL.json"
KINDS = (
    "key_commitment",
    "tokenizer",
    "log_segment",
    "harvested",
    "campaign",
    "probe_prompts",
    "transcript",
    "model_identity",
    "report",
)


class CustodyError(DistilltraceError):
    """A custody input or bundle that cannot be used (one readable line)."""


class VerifyError(CustodyError):
    """A bundle that fails verification: a hash, the seal, the secret or a statistic."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(obj: Any) -> str:
    """One JSON text per value (sorted keys, no spaces): hashes do not depend on dict order."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def write_jsonl(path: Path, rows: Iterable[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(canonical(r) + "\n")
    return path


def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return path


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VerifyError(f"{path.name}: not readable JSON ({type(e).__name__})") from None


def read_jsonl(path: Path) -> list[Any]:
    rows = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise VerifyError(f"{path.name}: not readable UTF-8 text ({type(e).__name__})") from None
    for i, line in enumerate(jsonl.lines(text), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise VerifyError(f"{path.name} line {i}: not valid JSON") from None
    return rows


@dataclass(frozen=True)
class FileEntry:
    """One file of the bundle: where, what kind, and its SHA-256."""

    path: str
    kind: str
    sha256: str
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Manifest:
    """What the bundle holds and how it was made (see the module docstring)."""

    software: dict[str, str]
    created: str
    key_commitment: dict[str, Any]
    seeds: dict[str, int]
    config: dict[str, Any]
    campaign: dict[str, Any]
    models: dict[str, Any]
    sources: list[dict[str, Any]]  # the source logs and scan files (hashes; not included)
    files: list[FileEntry] = field(default_factory=list)
    format: str = BUNDLE_FORMAT

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["files"] = [f.to_dict() for f in self.files]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Manifest:
        if not isinstance(d, dict) or d.get("format") != BUNDLE_FORMAT:
            raise VerifyError(f"{MANIFEST}: not a custody bundle manifest ({BUNDLE_FORMAT})")
        try:
            files = [FileEntry(**f) for f in d["files"]]
            return cls(**{**d, "files": files})
        except (KeyError, TypeError) as e:
            raise VerifyError(f"{MANIFEST}: malformed ({e})") from None

    def kind_of(self, kind: str) -> list[FileEntry]:
        return [f for f in self.files if f.kind == kind]


def add_files(root: Path, manifest: Manifest, paths: Iterable[tuple[Path, str]]) -> None:
    """Hash files (or every file under a folder) into the manifest with their kind."""
    for p, kind in paths:
        if kind not in KINDS:
            raise CustodyError(f"unknown bundle file kind {kind!r}")
        found = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
        for x in found:
            rel = x.relative_to(root).as_posix()
            manifest.files.append(FileEntry(rel, kind, sha256_file(x), x.stat().st_size))


def _seal_key(secret: Any) -> bytes:
    return hashlib.blake2b(secret.reveal(), digest_size=32, person=b"dt-custody-seal").digest()


def seal(root: Path, manifest: Manifest, secret: Any | None) -> str:
    """Write manifest.json and SEAL.json; returns the manifest's SHA-256 (publish it: an
    auditor who got it from you out of band needs no other trust in the folder)."""
    data = (json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n").encode()
    (root / MANIFEST).write_bytes(data)
    digest = sha256_bytes(data)
    s: dict[str, Any] = {"format": BUNDLE_FORMAT, "manifest_sha256": digest}
    if secret is not None:
        s["manifest_hmac_sha256"] = hmac.new(_seal_key(secret), data, hashlib.sha256).hexdigest()
        s["hmac_key"] = "blake2b(secret, person='dt-custody-seal'); check with --secret-file"
    write_json(root / SEAL, s)
    return digest


def check_seal(root: Path, secret: Any | None, expect_digest: str | None) -> tuple[Manifest, str]:
    """The manifest, after checking its SHA-256 against SEAL.json (and the published digest,
    and the HMAC when the secret is given). Fails naming the file."""
    for name in (SEAL, MANIFEST):
        if not (root / name).is_file():
            raise VerifyError(f"{name} is missing from {root}")
    s = read_json(root / SEAL)
    data = (root / MANIFEST).read_bytes()
    digest = sha256_bytes(data)
    if not isinstance(s, dict) or s.get("manifest_sha256") != digest:
        raise VerifyError(f"{MANIFEST}: SHA-256 {digest[:16]}... does not match {SEAL}")
    if expect_digest is not None and expect_digest.strip().lower() != digest:
        raise VerifyError(f"{MANIFEST}: SHA-256 {digest} is not the published digest")
    try:
        d = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise VerifyError(f"{MANIFEST}: not valid JSON") from None
    man = Manifest.from_dict(d)
    if secret is not None:
        from distilltrace.marks.secret import key_id_of

        committed = man.key_commitment.get("key_id")
        if key_id_of(secret) != committed:
            raise VerifyError(
                f"the revealed secret does not match the committed key id {committed!r} "
                f"({MANIFEST})"
            )
        want = hmac.new(_seal_key(secret), data, hashlib.sha256).hexdigest()
        got = s.get("manifest_hmac_sha256")
        if not isinstance(got, str) or not hmac.compare_digest(got, want):
            raise VerifyError(f"{SEAL}: the manifest's HMAC under the revealed secret is wrong")
    return man, digest


def check_files(root: Path, manifest: Manifest) -> None:
    """Every listed file is there with its SHA-256; no unlisted file is in the bundle."""
    listed = {f.path for f in manifest.files}
    for f in manifest.files:
        p = root / f.path
        if ".." in Path(f.path).parts or Path(f.path).is_absolute():
            raise VerifyError(f"{MANIFEST}: file path {f.path!r} leaves the bundle")
        if not p.is_file():
            raise VerifyError(f"{f.path} ({f.kind}) is missing")
        if sha256_file(p) != f.sha256:
            raise VerifyError(f"{f.path} ({f.kind}): SHA-256 does not match the manifest")
    for x in sorted(root.rglob("*")):
        rel = x.relative_to(root).as_posix()
        if x.is_file() and rel not in listed and rel not in (MANIFEST, SEAL):
            raise VerifyError(f"{rel}: a file that the manifest does not list")


def software() -> dict[str, str]:
    from distilltrace import __version__

    return {"name": "distilltrace", "version": __version__, "python": os.sys.version.split()[0]}
