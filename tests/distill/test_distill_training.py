"""Students learn from their teacher: KL to the teacher falls under seq-KD and logit-KD;
checkpoints load as model specs; training is seeded and resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch

from distilltrace.distill.evaluate import perplexity, response_kl
from distilltrace.distill.student import ARCHS, StudentConfig, make_student
from distilltrace.distill.training import (
    train_lm,
    train_logit_kd,
    train_seq_kd,
    write_topk_file,
)
from distilltrace.errors import InputError
from distilltrace.models import TransformersModel, load_model

SMALL = StudentConfig("test-1l", n_layers=1, hidden_size=64, n_heads=4, intermediate_size=128)


def _student(teacher, seed=0):
    return make_student(SMALL, teacher.tokenizer, seed)


def test_seq_kd_reduces_kl_and_checkpoint_loads(teacher, train_set, heldout, tmp_path):
    st = _student(teacher)
    before = response_kl(st, teacher, heldout)
    res = train_seq_kd(
        st, train_set, tmp_path / "s", epochs=4, lr=5e-3, batch_size=8, progress=False
    )
    after = response_kl(st, teacher, heldout)
    assert res.complete and res.final_loss < res.first_loss
    assert after < 0.7 * before, (before, after)
    # the saved student is a model spec: loads through the folder backend and generates
    m = load_model(str(tmp_path / "s"))
    assert m.generate(["Say hello."], max_new_tokens=5)[0].finish_reason in ("stop", "length")
    assert abs(response_kl(m, teacher, heldout) - after) < 1e-4
    # perplexity of the teacher's held-out answers fell as well (text level, any backend)
    fresh = TransformersModel.from_objects(*_student(teacher))
    assert perplexity(m, heldout).bits_per_byte < perplexity(fresh, heldout).bits_per_byte


@pytest.mark.parametrize("div", ["fkl", "rkl", "jsd"])
def test_logit_kd_online_reduces_kl(div, teacher, train_set, heldout, tmp_path):
    st = _student(teacher, seed=1)
    before = response_kl(st, teacher, heldout)
    res = train_logit_kd(
        st, teacher, train_set, tmp_path / div, divergence=div, epochs=3, lr=5e-3, progress=False
    )
    after = response_kl(st, teacher, heldout)
    assert res.final_loss < res.first_loss
    assert after < 0.7 * before, (div, before, after)
    assert (
        json.loads((tmp_path / div / "train.json").read_text())["result"]["config"]["divergence"]
        == div
    )


def test_logit_kd_from_topk_file(teacher, train_set, heldout, tmp_path):
    topk = write_topk_file(teacher, train_set, tmp_path / "t.safetensors", k=16)
    st = _student(teacher, seed=2)
    before = response_kl(st, teacher, heldout)
    train_logit_kd(
        st, None, None, tmp_path / "s", topk_file=topk, epochs=3, lr=5e-3, progress=False
    )
    assert response_kl(st, teacher, heldout) < 0.7 * before


def test_logit_kd_needs_the_same_tokenizer(teacher, train_set, tmp_path):
    other = make_student(SMALL, _ShiftedVocab(teacher.tokenizer), 0)
    with pytest.raises(InputError, match="same tokenizer|share the teacher's tokenizer"):
        train_logit_kd(other, teacher, train_set, tmp_path / "x", progress=False)
    topk = write_topk_file(teacher, train_set, tmp_path / "t.safetensors", k=4)
    with pytest.raises(InputError, match="tokenizer"):
        train_logit_kd(other, None, None, tmp_path / "y", topk_file=topk, progress=False)


class _ShiftedVocab:
    """A real tokenizer with one extra token: a different vocabulary."""

    def __new__(cls, tok):
        import copy

        t = copy.deepcopy(tok)
        t.add_tokens(["<extra-token>"])
        return t


def test_training_is_seeded_and_resumes_exactly(teacher, train_set, tmp_path):
    kw = dict(steps=10, lr=5e-3, batch_size=4, seed=3, progress=False, checkpoint_every=3)
    ref = train_seq_kd(_student(teacher, 5), train_set, tmp_path / "ref", **kw)
    part = train_seq_kd(_student(teacher, 5), train_set, tmp_path / "run", stop_after=4, **kw)
    assert not part.complete and part.steps == 4
    ck = sorted((tmp_path / "run" / "checkpoints").iterdir())
    assert ck[-1].name == "step-00000004"
    assert load_model(str(ck[-1])).generate(["Hi"], max_new_tokens=2)  # checkpoints are models too
    # a fresh process would rebuild the student from scratch: the checkpoint restores it
    res = train_seq_kd(_student(teacher, 77), train_set, tmp_path / "run", **kw)
    assert res.resumed_from == 4 and res.complete
    assert res.losses == ref.losses
    a = load_model(str(tmp_path / "ref")).hf_model.state_dict()
    b = load_model(str(tmp_path / "run")).hf_model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a finished run is not redone
    again = train_seq_kd(_student(teacher, 5), train_set, tmp_path / "run", **kw)
    assert again.cached and again.losses == ref.losses
    # another run's checkpoint is not silently continued
    train_seq_kd(_student(teacher, 5), train_set, tmp_path / "o", stop_after=2, **kw)
    with pytest.raises(InputError, match="different training run"):
        train_seq_kd(_student(teacher, 5), train_set, tmp_path / "o", **{**kw, "lr": 1e-3})


def test_train_lm_and_arch_names(teacher, tmp_path):
    assert {"tiny-2l", "small-4l", "base-8l"} <= set(ARCHS)
    st = make_student("tiny-2l", teacher.tokenizer, 0)
    st2 = make_student("tiny-2l", teacher.tokenizer, 0)
    assert all(
        torch.equal(a, b) for a, b in zip(st[0].parameters(), st2[0].parameters(), strict=True)
    )
    texts = ["The quick brown fox jumps over the lazy dog. " * 3] * 8
    res = train_lm(st, texts, tmp_path / "lm", steps=15, lr=5e-3, progress=False)
    assert res.final_loss < res.first_loss and res.method == "lm"


def test_memory_check_refuses_with_numbers(teacher, train_set, tmp_path):
    with pytest.raises(InputError, match=r"GiB.*lower --batch-size"):
        train_seq_kd(
            _student(teacher),
            train_set,
            tmp_path / "m",
            batch_size=10**6,
            micro_batch_size=10**6,  # as asked: no smaller passes
            max_len=4096,
            steps=1,
            progress=False,
        )
    with pytest.raises(InputError, match=r"micro_batch_size must be in 1..batch_size \(4\)"):
        train_seq_kd(_student(teacher), train_set, tmp_path / "m2", batch_size=4,
                     micro_batch_size=5, steps=1, progress=False)  # fmt: skip


def test_micro_batches_when_the_batch_does_not_fit(teacher, train_set, tmp_path, monkeypatch):
    """Without enough memory for the batch, passes of half (a quarter...) of it are
    accumulated: the same update as the whole batch, up to rounding."""
    from distilltrace.distill import training

    kw = dict(steps=4, lr=5e-3, batch_size=8, seed=1, progress=False, max_len=64)
    whole = train_seq_kd(_student(teacher, 2), train_set, tmp_path / "whole", **kw)
    need = {}
    real = training.estimate_train_bytes

    def est(model, batch_size, max_len, extra=0):
        need[batch_size] = real(model, batch_size, max_len, extra)
        return need[batch_size]

    monkeypatch.setattr(training, "estimate_train_bytes", est)
    monkeypatch.setattr(training, "available_bytes", lambda dev: int(need[8] * 0.6 / 0.9) + 1)
    parts = train_seq_kd(_student(teacher, 2), train_set, tmp_path / "parts", **kw)
    assert set(need) == {8, 4}  # 8 refused, 4 fits
    assert parts.losses == pytest.approx(whole.losses, rel=1e-4)
    a = load_model(str(tmp_path / "whole")).hf_model.state_dict()
    b = load_model(str(tmp_path / "parts")).hf_model.state_dict()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
    assert json.loads((tmp_path / "parts" / "train.json").read_text())["result"]["steps"] == 4


def test_fine_tune_existing_model_spec(teacher_dir, train_set, tmp_path):
    hf, tok = make_student(str(teacher_dir), None, 0)
    res = train_seq_kd((hf, tok), train_set, tmp_path / "ft", steps=3, progress=False)
    assert res.complete and load_model(str(tmp_path / "ft"))


def test_bf16_mixed_training_learns_keeps_float32_weights_and_its_own_identity(
    teacher, train_set, heldout, tmp_path
):
    """precision "bf16-mixed": forward and loss under bfloat16 autocast, weights float32;
    the run learns as the float32 one does, and is a different run (identity) from it,
    while a float32 run's identity is what it was before the setting existed."""
    from distilltrace.distill.config import TrainConfig

    kw = dict(epochs=4, lr=5e-3, batch_size=8, progress=False)
    st = _student(teacher)
    before = response_kl(st, teacher, heldout)
    res = train_seq_kd(st, train_set, tmp_path / "mixed", precision="bf16-mixed", **kw)
    assert res.complete and res.final_loss < res.first_loss
    assert res.config["precision"] == "bf16-mixed"
    assert response_kl(st, teacher, heldout) < 0.7 * before
    saved = load_model(str(tmp_path / "mixed"))
    assert {p.dtype for p in saved.hf_model.parameters()} == {torch.float32}
    f32 = train_seq_kd(_student(teacher), train_set, tmp_path / "f32", **kw)
    assert abs(f32.final_loss - res.final_loss) < 0.15 * f32.final_loss
    assert "precision" not in TrainConfig().run_identity("seq-kd")  # old runs keep theirs
    again = train_seq_kd(
        _student(teacher), train_set, tmp_path / "mixed", precision="bf16-mixed", **kw
    )
    assert again.cached  # the finished run is reused at its own precision ...
    other = train_seq_kd(_student(teacher), train_set, tmp_path / "mixed", stop_after=1, **kw)
    assert not other.cached and other.steps == 1  # ... never for a float32 request
    with pytest.raises(InputError, match="precision must be one of float32, bf16-mixed, auto"):
        train_seq_kd(_student(teacher), train_set, tmp_path / "bad", precision="fp8", **kw)


def test_auto_precision_is_bf16_mixed_only_where_bfloat16_is_native(
    teacher, train_set, tmp_path, monkeypatch
):
    """precision "auto": bf16-mixed where the device multiplies bfloat16 natively, float32
    where it would be emulated (12x slower to train on an AVX2 CPU); the run records and is
    identified by the concrete precision, so an auto run reuses the matching finished run.
    bf16-mixed asked for on a device without native bfloat16 runs, with a warning."""
    from distilltrace.distill.config import TrainConfig
    from distilltrace.models import precision

    kw = dict(steps=2, lr=5e-3, batch_size=8, progress=False)
    for native, want in ((False, "float32"), (True, "bf16-mixed")):
        monkeypatch.setattr(precision, "native_bf16", lambda device="cpu", n=native: n)
        assert TrainConfig(precision="auto").for_device("cpu").precision == want
        assert TrainConfig(precision="float32").for_device("cpu").precision == "float32"
    monkeypatch.setattr(precision, "native_bf16", lambda device="cpu": False)
    f32 = train_seq_kd(_student(teacher), train_set, tmp_path / "run", **kw)
    auto = train_seq_kd(_student(teacher), train_set, tmp_path / "run", precision="auto", **kw)
    assert auto.cached and auto.config == f32.config  # float32, the default: not in it
    assert "precision" not in auto.config
    with pytest.warns(UserWarning, match="no native bfloat16"):
        mixed = train_seq_kd(
            _student(teacher), train_set, tmp_path / "mixed", precision="bf16-mixed", **kw
        )
    assert mixed.complete and mixed.config["precision"] == "bf16-mixed"


def _pair_batch(teacher, train_set):
    from distilltrace.distill.training import _collate, _pairs_to_examples, load_dataset

    ex, _ = _pairs_to_examples(teacher.tokenizer, load_dataset(train_set)[:6], 256)
    return _collate(ex, list(range(len(ex))), 0, torch.device("cpu"))


def test_target_head_loss_equals_the_full_logits_loss_and_its_gradient(teacher, train_set):
    """The loss computes the output head on target positions only; it must be the same
    number, with the same gradient, as the loss from the full logits."""
    from distilltrace.distill.training import _HEADS, ce_loss, ce_loss_full

    hf, _ = _student(teacher)
    b = _pair_batch(teacher, train_set)
    assert int(b.targets[:, 1:].sum()) < b.targets[:, 1:].numel()  # prompts and padding
    got, n = ce_loss(hf, b)
    assert _HEADS[hf] is not None  # checked against the full logits, and kept
    got.backward()
    g_got = [p.grad.clone() for p in hf.parameters()]
    hf.zero_grad()
    ref, n_ref = ce_loss_full(hf, b)
    ref.backward()
    assert n == n_ref and abs(got.item() - ref.item()) < 1e-5
    for a, r in zip(g_got, (p.grad for p in hf.parameters()), strict=True):
        assert torch.allclose(a, r, atol=1e-6, rtol=1e-4)


def test_target_head_falls_back_where_the_logits_are_not_the_head_of_the_decoder(
    teacher, train_set
):
    """A model whose logits are not head(decoder output) (here a soft cap that the model's
    own forward does not apply) fails the one-time check and keeps the full logits."""
    from distilltrace.distill.training import _HEADS, ce_loss, ce_loss_full

    hf, _ = _student(teacher)
    hf.config.final_logit_softcapping = 0.5
    b = _pair_batch(teacher, train_set)
    got, _ = ce_loss(hf, b)
    assert _HEADS[hf] is None
    assert got.item() == pytest.approx(ce_loss_full(hf, b)[0].item(), abs=1e-6)
