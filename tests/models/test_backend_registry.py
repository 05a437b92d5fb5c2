"""The model backend registry: a backend registered the way a plugin would (a loader and
one `register_backend` call) is reachable through `load_model` and listed in the forms."""

from __future__ import annotations

import pytest

from distilltrace.errors import ModelSpecError
from distilltrace.models import ModelInfo, load_model, parse_spec
from distilltrace.models.base import Generation
from distilltrace.models.spec import (
    BACKENDS,
    Backend,
    ParsedSpec,
    SpecError,
    accepted_forms,
    backends,
    register_backend,
    unregister_backend,
)


class EchoModel:
    """A toy backend's model: generation echoes the prompt, as often as `times` says."""

    def __init__(self, word: str, times: int):
        self.times = times
        self.info = ModelInfo(
            name=word,
            spec=f"echo:{word}",
            backend="echo",
            tokenizer_id="none",
            vocab_size=0,
            identity=f"echo-{word}",
            supports=frozenset({"generate"}),
        )

    def generate(self, prompts, max_new_tokens=64, **kw):
        return [Generation(p, " ".join([p] * self.times)) for p in prompts]


def _parse_echo(spec: str, body: str) -> ParsedSpec:
    word, _, times = body.partition(";")
    if not word:
        raise SpecError("no word after echo:")
    return ParsedSpec("echo", word, {"times": times or "1"}, spec)


def _load_echo(parsed: ParsedSpec, status) -> EchoModel:
    return EchoModel(parsed.target, int(parsed.options["times"]))


@pytest.fixture
def echo_backend():
    register_backend(
        Backend("echo", prefix="echo:", form="echo:WORD[;N]", load=_load_echo, parse=_parse_echo)
    )
    yield
    unregister_backend("echo")


def test_builtin_backends_are_registered():
    assert {"hf", "gguf", "bundled", "openai"} <= set(backends())
    assert parse_spec("bundled:gemma3-270m").kind == "bundled"
    assert accepted_forms().startswith("a transformers folder (PATH or hf:PATH)")


def test_a_registered_backend_loads_and_is_listed(echo_backend):
    m = load_model("echo:hi;2")
    assert m.generate(["ab"])[0].text == "ab ab" and m.info.backend == "echo"
    assert "echo:WORD[;N]" in accepted_forms()
    with pytest.raises(ModelSpecError, match="no word after echo:") as e:
        load_model("echo:")
    assert "accepted forms" in str(e.value) and "echo:WORD" in str(e.value)


def test_clashing_backends_are_refused(echo_backend):
    with pytest.raises(ValueError, match="already registered"):
        register_backend(Backend("echo", prefix="echo2:", form="x", load=_load_echo))
    with pytest.raises(ValueError, match="already taken"):
        register_backend(Backend("echo3", prefix="hf:", form="x", load=_load_echo))
    assert "echo3" not in BACKENDS


def test_unregistered_prefix_is_an_unknown_scheme():
    assert "echo" not in BACKENDS
    with pytest.raises(ModelSpecError, match="unknown scheme 'echo'"):
        load_model("echo:hi")
