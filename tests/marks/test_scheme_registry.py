"""The scheme registry: a third scheme, defined and registered here the way a plugin would,
marks generation, is detected with an exact p-value, and is calibrated on unmarked text
(FPR <= alpha) end to end on a tiny model; its key files round-trip with the MAC."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
import torch

from distilltrace.errors import InputError
from distilltrace.marks.detect import MARKED, TupleScorer, detect_texts
from distilltrace.marks.hashing import RowHasher, bits_to_uniform
from distilltrace.marks.keys import load_watermark, make_watermark, write_key_file
from distilltrace.marks.schemes import (
    SCHEMES,
    KeyedProcessor,
    NullTest,
    SchemeParams,
    TokenizerBinding,
    WatermarkScheme,
    register_scheme,
    unregister_scheme,
)
from distilltrace.marks.secret import Secret
from distilltrace.marks.stats import gamma_log_sf
from distilltrace.stats import binomial_slack, calibration


# ----------------------------------------------------------------------- the toy scheme
@dataclass(frozen=True)
class SoftBias(WatermarkScheme):
    """Toy scheme: generation adds delta * u(window, v) to every token's logit (a soft,
    keyed preference instead of a green list); detection sums -log(1 - u), Exp(1) per
    distinct tuple under H0, so the sum of n is Gamma(n, 1)."""

    name: ClassVar[str] = "toy-softbias"
    delta: float = 5.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "delta", float(self.delta))
        if not 0.0 < self.delta < 50.0:
            raise ValueError("delta must be in (0, 50)")

    def score(self, bits: np.ndarray) -> np.ndarray:
        return -np.log1p(-bits_to_uniform(bits))

    def null(self, n: int, statistic: float) -> NullTest:
        return NullTest(float(n), (statistic - n) / math.sqrt(n), gamma_log_sf(statistic, n))

    def null_text(self) -> str:
        return "the sum of -log(1-u) is Gamma(n, 1)"

    def processor(self, wm) -> SoftBiasProcessor:
        return SoftBiasProcessor(wm)


class SoftBiasProcessor(KeyedProcessor):
    def __init__(self, wm):
        super().__init__(wm)
        self._rows = RowHasher()
        self._delta = wm.impl.delta

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        seeds = self._seeds(input_ids)
        if seeds is None:
            return scores
        u = bits_to_uniform(self._rows(seeds, scores.shape[-1]))
        return scores + self._delta * torch.from_numpy(u).to(scores)


@pytest.fixture
def toy_scheme():
    register_scheme(SoftBias)  # the one registration line
    yield SoftBias
    unregister_scheme(SoftBias.name)


# ----------------------------------------------------------------------- helpers
class PrintableAscii:
    """Keep the byte model on printable ASCII, so text re-encodes to the same tokens."""

    def __call__(self, input_ids, scores):
        mask = torch.full_like(scores, float("-inf"))
        mask[:, 5 + 32 : 5 + 127] = 0.0
        return scores + mask


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from distilltrace.models import load_model
    from distilltrace.models.tiny import make_tiny_model

    return load_model(str(make_tiny_model(tmp_path_factory.mktemp("m") / "tiny", seed=4)))


def _key(model, tag: str, **params):
    secret = Secret(hashlib.sha256(f"toy-scheme-test:{tag}".encode()).digest())
    return make_watermark(
        SchemeParams(scheme=SoftBias.name, **params), TokenizerBinding.of_model(model), secret
    )


# ----------------------------------------------------------------------- tests
def test_registry_holds_the_builtins_and_refuses_clashes(toy_scheme):
    assert {"greenlist", "gumbel", "toy-softbias"} <= set(SCHEMES)
    with pytest.raises(ValueError, match="already registered"):

        @dataclass(frozen=True)
        class Clash(WatermarkScheme):
            name: ClassVar[str] = "greenlist"

        register_scheme(Clash)
    with pytest.raises(ValueError, match="unknown parameter"):
        SchemeParams(scheme="toy-softbias", gamma=0.5)
    with pytest.raises(ValueError, match="delta"):
        SchemeParams(scheme="toy-softbias", delta=-1)
    p = SchemeParams(scheme="toy-softbias", context_width=3, delta=2)
    assert p.delta == 2.0 and SchemeParams.from_dict(p.to_dict()) == p


def test_unregistered_scheme_is_unknown():
    assert "toy-softbias" not in SCHEMES
    with pytest.raises(ValueError, match="unknown scheme"):
        SchemeParams(scheme="toy-softbias")


def test_toy_key_file_round_trips_with_its_mac(toy_scheme, tiny, tmp_path):
    wm = _key(tiny, "file", delta=3.0)
    secret = Secret(hashlib.sha256(b"toy-scheme-test:file").digest())
    path = write_key_file(tmp_path / "k.json", wm, secret)
    loaded = load_watermark(path)
    assert loaded.params == wm.params and loaded.scheme == "toy-softbias"
    d = json.loads(path.read_text())
    assert d["params"] == {
        "scheme": "toy-softbias",
        "context_width": 2,
        "seeding": "lefthash",
        "delta": 3.0,
    }
    d["params"]["delta"] = 0.5  # an edited parameter breaks the integrity check
    (tmp_path / "edited.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match="integrity check failed"):
        load_watermark(tmp_path / "edited.json")


def test_toy_scheme_generates_and_is_detected(toy_scheme, tiny):
    wm = _key(tiny, "power")
    prompts = [f"Tell me about item {i}." for i in range(6)]
    procs = [PrintableAscii(), *wm.logits_processors(tiny)]
    marked = tiny.generate(prompts, max_new_tokens=120, temperature=1.0, logits_processors=procs)
    rep = detect_texts(wm, [g.text for g in marked], tiny.tokenizer)
    assert all(t.test.verdict == MARKED and t.test.pvalue < 1e-6 for t in rep.texts)
    assert rep.pooled.scheme == "toy-softbias" and "Gamma(n, 1)" in rep.pooled.null
    sc = TupleScorer(wm)  # detection on the generated token ids agrees with the text's
    sc.add_sequence(list(marked[0].token_ids))
    assert sc.test().statistic == pytest.approx(rep.texts[0].test.statistic)


def test_toy_scheme_is_calibrated_on_unmarked_text(toy_scheme, tiny):
    """H0 true: unmarked generations of the tiny model, each tested under its own fresh
    keys. The p-values must be uniform and FPR <= alpha (+ binomial slack)."""
    prompts = [f"Write about subject {i}." for i in range(10)]
    plain = tiny.generate(
        prompts, max_new_tokens=120, temperature=1.0, logits_processors=[PrintableAscii()]
    )
    ps = []
    for i, g in enumerate(plain):
        for j in range(30):
            sc = TupleScorer(_key(tiny, f"null-{i}-{j}"))
            sc.add_sequence(tiny.tokenizer(g.text, add_special_tokens=False)["input_ids"])
            t = sc.test()
            assert t.pvalue is not None
            ps.append(t.pvalue)
    alphas = (0.01, 0.05, 0.1)
    slack = max(binomial_slack(len(ps), a) for a in alphas)
    cal = calibration(ps, alphas)
    assert all(np.mean(np.array(ps) <= a) <= a + slack for a in alphas), cal
    assert cal.ok(ks_level=0.001, slack=slack), cal
