"""GGUF files: de-quantised by transformers + gguf once, then cached as a safetensors folder.

The first load of a GGUF de-quantises it (slow) and saves the float32 result under
``<models folder>/gguf-<sha256[:16]>/``; later loads of the same file (same SHA-256) read
that folder (fast). The model identity is the GGUF file's SHA-256 either way.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from distilltrace.errors import ModelSpecError
from distilltrace.models.identity import sha256_file
from distilltrace.models.local import TransformersModel, _one_line, _quiet_transformers
from distilltrace.paths import models_dir

GGUF_MAGIC = b"GGUF"
MARKER = "distilltrace_gguf.json"


def check_gguf_file(path: Path) -> None:
    """Raise ModelSpecError (one line) unless the path is a readable file with GGUF magic."""
    if not path.exists():
        raise ModelSpecError(f"GGUF file not found: {path}")
    if not path.is_file():
        raise ModelSpecError(f"not a file: {path}")
    with path.open("rb") as f:
        head = f.read(4)
    if head != GGUF_MAGIC:
        raise ModelSpecError(f"corrupt or not a GGUF file (bad magic bytes): {path}")


def converted_dir(sha: str) -> Path:
    """The cache folder of a de-quantised GGUF with this SHA-256."""
    return models_dir() / f"gguf-{sha[:16]}"


def load_gguf(
    path: str | Path,
    *,
    spec: str | None = None,
    name: str | None = None,
    use_cache: bool = True,
    status: Callable[[str], None] | None = None,
) -> TransformersModel:
    """Load a GGUF file as a TransformersModel (float32), via the de-quantised cache folder."""
    p = Path(path).expanduser()
    check_gguf_file(p)
    say = status or (lambda _msg: None)
    say(f"hashing {p.name}")
    sha = sha256_file(p)
    identity = f"gguf-sha256:{sha}"
    name = name or p.stem
    extra = {"gguf": str(p), "gguf_sha256": sha}
    cdir = converted_dir(sha)
    if use_cache and (cdir / MARKER).is_file():
        say(f"loading de-quantised {p.name} from cache")
        return TransformersModel.from_folder(
            cdir, spec=spec or str(p), name=name, identity=identity, backend="gguf", extra=extra
        )
    say(f"de-quantising {p.name} (first load; cached afterwards)")
    _quiet_transformers()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(p.parent), gguf_file=p.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(p.parent), gguf_file=p.name, dtype=torch.float32
        )
    except Exception as e:  # noqa: BLE001 - gguf/transformers raise many types on bad files
        raise ModelSpecError(f"cannot load GGUF {p}: {_one_line(e)}") from None
    _drop_quantizer(model)
    if use_cache:
        say(f"saving de-quantised weights to {cdir}")
        _save_converted(model, tok, cdir, {"source": str(p), "sha256": sha})
    m = TransformersModel(
        model, tok, name=name, spec=spec or str(p), identity=identity, backend="gguf", extra=extra
    )
    return m


def load_gguf_spec(parsed, status: Callable[[str], None] | None = None) -> TransformersModel:
    """The ``gguf`` backend's loader: a GGUF file named by a parsed spec."""
    return load_gguf(parsed.target, spec=parsed.raw, status=status)


def _drop_quantizer(model) -> None:
    """Forget the GGUF quantizer of a fully de-quantised model, so it saves as plain
    safetensors and behaves as a float32 model: transformers also marks the instance
    `is_quantized` (and names its `quantization_method`), which refuses `.float()` and
    `.to(dtype)`, so fine-tuning a model on its first, de-quantising load failed."""
    model.hf_quantizer = None
    for attr in ("is_quantized", "quantization_method"):
        if attr in vars(model):
            delattr(model, attr)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def _save_converted(model, tok, cdir: Path, meta: dict) -> None:
    """Write the folder atomically (temp folder, then rename), marker file last."""
    cdir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".gguf-", dir=cdir.parent))
    try:
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))
        (tmp / MARKER).write_text(json.dumps(meta, indent=2))
        os.chmod(tmp, 0o755)
        if cdir.exists():
            shutil.rmtree(cdir)
        os.replace(tmp, cdir)
    except OSError:
        pass  # a cache we could not write only costs speed next time
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
