"""Training students: sequence-level KD, token-level (logit) KD, and plain language modelling.

One seeded loop serves all three: AdamW, linear warm-up then cosine decay, gradient
clipping, a data order fixed by (seed, epoch), periodic checkpoints in transformers format
(safetensors + config + tokenizer, plus the optimiser state) and exact resumption from the
last one. The final model is written to `out_dir` itself, loadable by `load_model(out_dir)`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from distilltrace.distill.config import TrainConfig
from distilltrace.distill.dataset import Record, read_records
from distilltrace.distill.divergence import divergence
from distilltrace.distill.encoding import Example, encode_pair, encode_text, examples_hash
from distilltrace.distill.progress import progress_bar
from distilltrace.distill.prompts import Prompt
from distilltrace.errors import CapabilityError, InputError
from distilltrace.models.identity import tokenizer_fingerprint

TRAIN_FILE = "train.json"
CHECKPOINTS = "checkpoints"
STATE_FILE = "trainer_state.pt"


@dataclass
class TrainResult:
    """What a training run did: steps, examples, tokens, losses, time, where it is saved."""

    out_dir: str
    method: str
    steps: int
    examples: int
    epochs: float
    tokens: int
    target_tokens: int
    first_loss: float
    final_loss: float
    wall_s: float
    tokens_per_s: float
    device: str
    seed: int
    resumed_from: int = 0
    complete: bool = True
    cached: bool = False
    skipped_examples: int = 0
    data_tokens: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """ "auto" is CUDA when available, else CPU; anything else is passed to torch."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as e:
        raise InputError(f"bad device {device!r}: {e}") from None


@contextmanager
def placed_on(model: Any, device: torch.device) -> Iterator[Any]:
    """Move a (teacher) model to `device` for a while, and back to where it was after."""
    home = next(model.parameters()).device
    model.to(device)
    try:
        yield model
    finally:
        model.to(home)


def unpack_student(student: Any) -> tuple[Any, Any]:
    """(hf_model, tokenizer) from a tuple or a local model object (.hf_model, .tokenizer)."""
    if isinstance(student, tuple) and len(student) == 2:
        return student
    hf = getattr(student, "hf_model", None)
    tok = getattr(student, "tokenizer", None)
    if hf is None or tok is None:
        raise CapabilityError(
            "a student must be (hf_model, tokenizer) or a local model with weights "
            f"(.hf_model and .tokenizer); got {type(student).__name__}"
        )
    return hf, tok


# ----------------------------------------------------------------------- memory check


def estimate_train_bytes(
    model: Any, batch_size: int, max_len: int, extra_vocab_copies: int = 0
) -> int:
    """A conservative estimate of training memory: fp32 weights, gradients and AdamW
    moments, plus activations and logits for one batch (and `extra_vocab_copies` more
    batch x length x vocabulary tensors, e.g. a teacher's distribution)."""
    cfg = model.config
    n_params = sum(p.numel() for p in model.parameters())
    h = int(getattr(cfg, "hidden_size", 256))
    inter = int(getattr(cfg, "intermediate_size", 4 * h))
    layers = int(getattr(cfg, "num_hidden_layers", 4))
    heads = int(getattr(cfg, "num_attention_heads", 4))
    vocab = int(getattr(cfg, "vocab_size", 32000))
    tokens = batch_size * max_len
    states = n_params * 4 * 4  # weights, grads, two AdamW moments
    acts = tokens * layers * (16 * h + 4 * inter) * 4 + batch_size * heads * max_len**2 * layers * 4
    logits = tokens * vocab * 4 * (4 + extra_vocab_copies)
    return int((states + acts + logits) * 1.2)


def available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def check_memory(
    model: Any, batch_size: int, max_len: int, device: torch.device, extra_vocab_copies: int = 0
) -> int:
    """Raise InputError (with the numbers) if training would not fit in available memory."""
    need = estimate_train_bytes(model, batch_size, max_len, extra_vocab_copies)
    have = available_bytes(device)
    if need > 0.9 * have:
        n_params = sum(p.numel() for p in model.parameters())
        raise InputError(
            f"training would need about {need / 2**30:.1f} GiB on {device.type} "
            f"({n_params / 1e6:.1f}M parameters, batch {batch_size} x {max_len} tokens) but "
            f"only {have / 2**30:.1f} GiB is available; lower --batch-size or --max-len, "
            "or pick a smaller student"
        )
    return need


def fit_micro_batch(
    model: Any, cfg: TrainConfig, max_len: int, device: torch.device, extra_vocab_copies: int = 0
) -> int:
    """Rows per pass: `cfg.micro_batch_size` when set (checked), else the whole batch when
    it fits in memory, else the largest halving of it that does (gradients are then
    accumulated over the batch); InputError when not even one row fits."""
    if cfg.micro_batch_size is not None:
        if not 1 <= cfg.micro_batch_size <= cfg.batch_size:
            raise InputError(
                f"micro_batch_size must be in 1..batch_size ({cfg.batch_size}), "
                f"got {cfg.micro_batch_size}"
            )
        check_memory(model, cfg.micro_batch_size, max_len, device, extra_vocab_copies)
        return cfg.micro_batch_size
    micro = cfg.batch_size
    while True:
        try:
            check_memory(model, micro, max_len, device, extra_vocab_copies)
            return micro
        except InputError:
            if micro == 1:
                raise
            micro = max(1, micro // 2)


# ----------------------------------------------------------------------- the loop


@dataclass
class _Batch:
    ids: torch.Tensor
    attn: torch.Tensor
    targets: torch.Tensor  # 1 where the token is a loss target
    index: list[int]


LossFn = Callable[[Any, _Batch], tuple[torch.Tensor, int]]


def _collate(
    examples: Sequence[Example], index: list[int], pad: int, device: torch.device
) -> _Batch:
    width = max(len(examples[i].ids) for i in index)
    ids = torch.full((len(index), width), pad, dtype=torch.long)
    attn = torch.zeros((len(index), width), dtype=torch.long)
    tg = torch.zeros((len(index), width), dtype=torch.long)
    for row, i in enumerate(index):
        e = examples[i]
        n = len(e.ids)
        ids[row, :n] = torch.tensor(e.ids)
        attn[row, :n] = 1
        tg[row, :n] = torch.tensor(e.targets)
    return _Batch(ids.to(device), attn.to(device), tg.to(device), index)


def ce_loss_full(model: Any, b: _Batch) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over the target tokens, from the model's full logits
    (every position): the reference that `ce_loss` is checked against."""
    logits = model(input_ids=b.ids, attention_mask=b.attn).logits[:, :-1].float()
    tgt = b.ids[:, 1:]
    mask = b.targets[:, 1:].bool()
    n = int(mask.sum())
    lp = torch.log_softmax(logits, dim=-1)
    nll = -lp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
    return nll[mask].sum() / max(n, 1), n


# model -> (decoder, head, soft cap) where the target-position head was checked against the
# full logits, or None where it did not match (that model keeps the full logits)
_HEADS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _target_logits(parts: tuple, b: _Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The logits at the target positions only (the output head never sees the prompt or
    padding positions), and the target tokens."""
    dec, head, cap = parts
    mask = b.targets[:, 1:].bool()
    h = dec(input_ids=b.ids, attention_mask=b.attn).last_hidden_state[:, :-1][mask]
    z = head(h)
    if cap:
        z = torch.tanh(z / cap) * cap
    return z, b.ids[:, 1:][mask]


def _head_parts(model: Any, b: _Batch) -> tuple | None:
    """The model's decoder and output head, if its logits are head(decoder output) up to a
    final soft cap, checked once per model in float32 on the first rows of a batch against
    its full logits (max |difference| of the per-token loss <= 1e-4 nats)."""
    if model in _HEADS:
        return _HEADS[model]
    dec = model.get_decoder() if hasattr(model, "get_decoder") else None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    parts = None
    if dec is not None and isinstance(head, torch.nn.Linear):
        parts = (
            dec,
            head,
            getattr(getattr(model, "config", None), "final_logit_softcapping", None),
        )
        rows = [i for i in range(len(b.index)) if bool(b.targets[i, 1:].any())][:2]
        if not rows:  # nothing to compare on: decide on a later batch
            return None
        few = _Batch(b.ids[rows], b.attn[rows], b.targets[rows], [b.index[i] for i in rows])
        with torch.no_grad(), torch.autocast(b.ids.device.type, enabled=False):
            full = model(input_ids=few.ids, attention_mask=few.attn).logits[:, :-1].float()
            mask = few.targets[:, 1:].bool()
            ref = torch.nn.functional.cross_entropy(
                full[mask], few.ids[:, 1:][mask], reduction="none"
            )
            z, tgt = _target_logits(parts, few)
            got = torch.nn.functional.cross_entropy(z.float(), tgt, reduction="none")
        if ref.shape != got.shape or float((ref - got).abs().max()) > 1e-4:
            parts = None
    _HEADS[model] = parts
    return parts


def ce_loss(model: Any, b: _Batch) -> tuple[torch.Tensor, int]:
    """Mean next-token cross-entropy over the target tokens. The output head runs on the
    target positions only (a chat pair's prompt and padding carry no loss; with a 262k-token
    vocabulary the head is a large share of a step's work); a model whose logits are not
    head(decoder output) gets the full logits (`ce_loss_full`)."""
    parts = _head_parts(model, b)
    if parts is None:
        return ce_loss_full(model, b)
    z, tgt = _target_logits(parts, b)
    n = int(tgt.numel())
    nll = torch.nn.functional.cross_entropy(z.float(), tgt, reduction="sum")
    return nll / max(n, 1), n


def _batch_indices(
    step: int, batch_size: int, n: int, seed: int, cache: dict[int, list[int]]
) -> list[int]:
    out = []
    for pos in range(step * batch_size, (step + 1) * batch_size):
        epoch, k = divmod(pos, n)
        if epoch not in cache:
            g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            cache[epoch] = torch.randperm(n, generator=g).tolist()
        out.append(cache[epoch][k])
    return out


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    prog = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, prog)))


def _fingerprint(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def _latest_checkpoint(out: Path) -> Path | None:
    ck = out / CHECKPOINTS
    if not ck.is_dir():
        return None
    cands = sorted(p for p in ck.iterdir() if p.is_dir() and (p / STATE_FILE).is_file())
    return cands[-1] if cands else None


def _load_weights(model: Any, folder: Path) -> None:
    from safetensors.torch import load_file

    state: dict[str, torch.Tensor] = {}
    for f in sorted(folder.glob("*.safetensors")):
        state.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise InputError(
            f"checkpoint {folder} does not match the student (missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(unexpected)[:3]})"
        )
    if tied:
        model.tie_weights()


def _save_model(model: Any, tok: Any, folder: Path) -> None:
    from transformers.utils import logging as hf_logging

    folder.mkdir(parents=True, exist_ok=True)
    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(str(folder))
        tok.save_pretrained(str(folder))
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


def _save_checkpoint(
    model: Any, tok: Any, out: Path, step: int, state: dict[str, Any], keep: int = 2
) -> None:
    ck = out / CHECKPOINTS
    final = ck / f"step-{step:08d}"
    tmp = ck / f".tmp-step-{step:08d}"
    if tmp.exists():
        shutil.rmtree(tmp)
    _save_model(model, tok, tmp)
    torch.save(state, tmp / STATE_FILE)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    old = sorted(p for p in ck.iterdir() if p.is_dir() and p.name.startswith("step-"))
    for p in old[:-keep]:
        shutil.rmtree(p, ignore_errors=True)


@dataclass
class _Progress:
    """What the loop has done so far (restored from a checkpoint when resuming)."""

    start: int = 0
    losses: list[float] = field(default_factory=list)
    tokens: int = 0
    target_tokens: int = 0
    wall_before: float = 0.0


def _run_config(
    model: Any, tok: Any, examples: list[Example], cfg: TrainConfig, method: str, extra: dict
) -> tuple[int, dict[str, Any]]:
    """(total steps, the run's identity): what a checkpoint or finished run must match."""
    if not examples:
        raise InputError("no training examples (every example was empty or too long)")
    if cfg.batch_size < 1 or cfg.max_len < 2 or cfg.lr <= 0:
        raise InputError("batch_size must be >= 1, max_len >= 2 and lr > 0")
    n = len(examples)
    total = (
        int(cfg.steps)
        if cfg.steps is not None
        else max(1, math.ceil(cfg.epochs * n / cfg.batch_size))
    )
    if total < 1:
        raise InputError(f"steps must be >= 1, got {total}")
    config = {
        "method": method,
        "steps": total,
        **cfg.run_identity(method),
        "examples": n,
        "data_hash": examples_hash(examples),
        "tokenizer": tokenizer_fingerprint(tok),
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        **extra,
    }
    return total, config


def _finished_run(out: Path, fp: str, model: Any, resume: bool) -> TrainResult | None:
    """The result of a finished run with this identity (its weights loaded), if any; without
    `resume`, clear what a previous run left."""
    done_file = out / TRAIN_FILE
    if resume and done_file.is_file():
        prev = json.loads(done_file.read_text())
        if prev.get("fingerprint") == fp:
            _load_weights(model, out)
            res = TrainResult(**prev["result"])
            res.cached = True
            return res
    if not resume:
        for p in (out / CHECKPOINTS, done_file):
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    return None


def _optimizer(model: Any, cfg: TrainConfig, total: int) -> tuple[Any, Any]:
    """AdamW (no weight decay on norms and biases), warm-up then cosine decay to 10%."""
    decay = [p for nm, p in model.named_parameters() if p.ndim >= 2 and "norm" not in nm]
    no_decay = [p for nm, p in model.named_parameters() if not (p.ndim >= 2 and "norm" not in nm)]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        betas=tuple(cfg.adam_betas),
    )
    warm = max(1, int(cfg.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, total, warm))
    return opt, sched


def _restore(
    out: Path, fp: str, model: Any, opt: Any, sched: Any, dev: torch.device, resume: bool
) -> _Progress:
    """Continue from the last checkpoint of this run (a different run's is refused)."""
    ck = _latest_checkpoint(out) if resume else None
    if ck is None:
        return _Progress()
    state = torch.load(ck / STATE_FILE, map_location=dev, weights_only=False)
    if state.get("fingerprint") != fp:
        raise InputError(
            f"{out} holds a checkpoint of a different training run (other data or settings); "
            "use another output folder, or resume=False / --no-resume to start over"
        )
    _load_weights(model, ck)
    model.to(dev)
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    return _Progress(
        int(state["step"]),
        list(state["losses"]),
        int(state["tokens"]),
        int(state["target_tokens"]),
        float(state["wall_s"]),
    )


@dataclass
class _Loop:
    """The step loop of one run: batches in a (seed, epoch) order, checkpoints."""

    model: Any
    tok: Any
    examples: list[Example]
    out: Path
    cfg: TrainConfig
    loss_fn: LossFn
    total: int
    fp: str
    dev: torch.device
    opt: Any
    sched: Any
    state: _Progress
    run_tokens: int = 0

    def run(self, label: str) -> float:
        """Train from state.start to the end (or `stop_after` steps); the wall time."""
        st, cfg = self.state, self.cfg
        tok = self.tok
        pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
        perm_cache: dict[int, list[int]] = {}
        self.model.train()
        t0 = time.perf_counter()
        last_ck = t0
        with progress_bar(label, self.total, cfg.progress) as bar:
            bar.update(st.start)
            for step in range(st.start, self.total):
                idx = _batch_indices(step, cfg.batch_size, len(self.examples), cfg.seed, perm_cache)
                self._step(_collate(self.examples, idx, pad, self.dev))
                el = time.perf_counter() - t0
                recent = st.losses[-20:]
                bar.update(
                    step + 1,
                    f"loss {sum(recent) / len(recent):.3f} | "
                    f"{self.run_tokens / max(el, 1e-9):.0f} tok/s",
                )
                due = (
                    (step + 1) % cfg.checkpoint_every == 0
                    if cfg.checkpoint_every
                    else time.perf_counter() - last_ck >= float(cfg.checkpoint_every_s)
                )
                stop = (
                    cfg.stop_after is not None
                    and step + 1 - st.start >= cfg.stop_after
                    and step + 1 < self.total
                )
                if (due or stop) and step + 1 < self.total:
                    last_ck = time.perf_counter()
                    self._checkpoint(step + 1, st.wall_before + (time.perf_counter() - t0))
                if stop:
                    break
        self.model.eval()
        return time.perf_counter() - t0

    def _step(self, batch: _Batch) -> None:
        self.opt.zero_grad(set_to_none=True)
        micro = self.cfg.micro_batch_size or len(batch.index)
        if micro >= len(batch.index):
            loss, n_tgt = self._loss(batch)
            loss.backward()
        else:
            loss, n_tgt = self._accumulate(batch, micro)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.sched.step()
        self.state.losses.append(float(loss.detach()))
        n_tok = int(batch.attn.sum())
        self.state.tokens += n_tok
        self.run_tokens += n_tok
        self.state.target_tokens += n_tgt

    def _loss(self, batch: _Batch) -> tuple[torch.Tensor, int]:
        """The loss of one pass, under bfloat16 autocast with precision "bf16-mixed" (the
        loss functions take log-softmax in float32 either way)."""
        mixed = self.cfg.precision == "bf16-mixed"
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=mixed):
            return self.loss_fn(self.model, batch)

    def _accumulate(self, batch: _Batch, micro: int) -> tuple[torch.Tensor, int]:
        """The batch's gradient from passes of `micro` rows: each pass's mean loss weighted
        by its target count, the sum divided by the batch's count (the whole batch's mean)."""
        total, n_all = torch.zeros(()), 0
        for a in range(0, len(batch.index), micro):
            part = _Batch(
                batch.ids[a : a + micro],
                batch.attn[a : a + micro],
                batch.targets[a : a + micro],
                batch.index[a : a + micro],
            )
            loss, n = self._loss(part)
            (loss * n).backward()
            total += float(loss.detach()) * n
            n_all += n
        for p in self.model.parameters():
            if p.grad is not None:
                p.grad.div_(max(n_all, 1))
        return total / max(n_all, 1), n_all

    def _checkpoint(self, step: int, wall_s: float) -> None:
        st = self.state
        _save_checkpoint(
            self.model,
            self.tok,
            self.out,
            step,
            {
                "fingerprint": self.fp,
                "step": step,
                "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(),
                "losses": st.losses,
                "tokens": st.tokens,
                "target_tokens": st.target_tokens,
                "wall_s": wall_s,
            },
        )


def _warn_emulated_bf16(cfg: TrainConfig, dev: torch.device) -> None:
    """bf16-mixed asked for on a device that emulates bfloat16: say so (it runs, slowly)."""
    from distilltrace.models.precision import native_bf16

    if cfg.precision == "bf16-mixed" and not native_bf16(str(dev)):
        warnings.warn(
            f"precision bf16-mixed on {dev}, which has no native bfloat16: it is emulated and "
            "an order of magnitude slower than float32 (12x on an AVX2 CPU); precision auto "
            "picks float32 here",
            stacklevel=3,
        )


def run_training(
    model: Any,
    tok: Any,
    examples: list[Example],
    out_dir: str | Path,
    cfg: TrainConfig | None = None,
    *,
    method: str,
    loss_fn: LossFn,
    extra_config: dict[str, Any] | None = None,
    extra_vocab_copies: int = 0,
    skipped_examples: int = 0,
    on_device: Callable[[torch.device], None] | None = None,
) -> TrainResult:
    """The shared seeded training loop (see the module docstring). `cfg.stop_after` ends
    this call after that many steps with a checkpoint (complete=False); a rerun continues."""
    cfg = cfg or TrainConfig()
    cfg.check()
    dev = resolve_device(cfg.device)
    cfg = cfg.for_device(dev)  # "auto" precision: the concrete one is the run's identity
    _warn_emulated_bf16(cfg, dev)
    out = Path(out_dir)
    total, config = _run_config(model, tok, examples, cfg, method, extra_config or {})
    fp = _fingerprint(config)
    cached = _finished_run(out, fp, model, cfg.resume)
    if cached is not None:
        return cached
    micro = fit_micro_batch(
        model, cfg, min(cfg.max_len, max(len(e.ids) for e in examples)), dev, extra_vocab_copies
    )
    cfg = replace(cfg, micro_batch_size=micro)
    model.to(dev)
    model.float()
    if on_device is not None:
        on_device(dev)
    opt, sched = _optimizer(model, cfg, total)
    state = _restore(out, fp, model, opt, sched, dev, cfg.resume)
    loop = _Loop(model, tok, examples, out, cfg, loss_fn, total, fp, dev, opt, sched, state)
    run_wall = loop.run(f"{method} -> {out.name}")
    result = _result(loop, method, config, run_wall, skipped_examples)
    if result.complete:  # (stopped early on request: the checkpoint holds the state)
        _save_finished(model, tok, out, fp, result)
    return result


def _result(
    loop: _Loop, method: str, config: dict[str, Any], run_wall: float, skipped: int
) -> TrainResult:
    st, cfg, n = loop.state, loop.cfg, len(loop.examples)
    losses = st.losses
    tail = losses[-max(1, len(losses) // 10) :]
    return TrainResult(
        out_dir=str(loop.out),
        method=method,
        steps=len(losses),
        examples=n,
        epochs=round(loop.total * cfg.batch_size / n, 4),
        tokens=st.tokens,
        target_tokens=st.target_tokens,
        first_loss=losses[0],
        final_loss=sum(tail) / len(tail),
        wall_s=round(st.wall_before + run_wall, 3),
        tokens_per_s=round(loop.run_tokens / run_wall, 1) if run_wall > 0 else 0.0,
        device=str(loop.dev),
        seed=cfg.seed,
        resumed_from=st.start,
        skipped_examples=skipped,
        data_tokens=sum(e.n_targets for e in loop.examples),
        config=config,
        losses=[round(x, 5) for x in losses],
        complete=len(losses) >= loop.total,
    )


def _save_finished(model: Any, tok: Any, out: Path, fp: str, result: TrainResult) -> None:
    """The final weights in `out` itself, train.json, and no checkpoints left."""
    _save_model(model, tok, out)
    done_file = out / TRAIN_FILE
    tmp = done_file.with_suffix(".tmp")
    tmp.write_text(json.dumps({"fingerprint": fp, "result": result.to_dict()}, indent=1))
    os.replace(tmp, done_file)
    shutil.rmtree(out / CHECKPOINTS, ignore_errors=True)


# ----------------------------------------------------------------------- public trainers


def _pairs_to_examples(
    tok: Any, records: Sequence[Record], max_len: int
) -> tuple[list[Example], int]:
    ex, skipped = [], 0
    for r in records:
        stopped = r.meta.get("finish_reason", "stop") == "stop"
        e = encode_pair(tok, r.prompt, r.response, stopped=stopped, max_len=max_len)
        if e is None:
            skipped += 1
        else:
            ex.append(e)
    return ex, skipped


def load_dataset(dataset: str | Path | Sequence[Any]) -> list[Record]:
    """Records from a dataset path (JSONL/Parquet), or a list of records or dicts."""
    if isinstance(dataset, str | Path):
        return read_records(dataset)
    recs = []
    for i, r in enumerate(dataset, start=1):
        if isinstance(r, Record):
            recs.append(r)
        elif (
            isinstance(r, dict)
            and isinstance(r.get("prompt"), str)
            and isinstance(r.get("response"), str)
        ):
            recs.append(Record(r["prompt"], r["response"], dict(r.get("meta") or {})))
        else:
            raise InputError(f"dataset item {i}: expected a record with 'prompt' and 'response'")
    if not recs:
        raise InputError("the dataset is empty")
    return recs


def train_seq_kd(
    student: Any,
    dataset_path: str | Path | Sequence[Any],
    out_dir: str | Path,
    cfg: TrainConfig | None = None,
    **settings: Any,
) -> TrainResult:
    """Sequence-level KD: fine-tune `student` ((hf_model, tokenizer) or a local model) on a
    harvested dataset, loss on response tokens only with the chat-templated prompt as context.

    Settings come from `cfg` (a TrainConfig; default: the defaults), with any TrainConfig
    field given as a keyword on top (``epochs=3, lr=2e-3``)."""
    cfg = TrainConfig.resolve(cfg, settings)
    model, tok = unpack_student(student)
    records = load_dataset(dataset_path)
    if cfg.max_examples is not None:
        records = records[: cfg.max_examples]
    ex, skipped = _pairs_to_examples(tok, records, cfg.max_len)
    return run_training(
        model, tok, ex, out_dir, cfg, method="seq-kd", loss_fn=ce_loss, skipped_examples=skipped
    )


def train_lm(
    student: Any,
    texts: Sequence[str],
    out_dir: str | Path,
    cfg: TrainConfig | None = None,
    **settings: Any,
) -> TrainResult:
    """Plain language modelling on `texts` (e.g. human text): loss on every token.
    Settings as for `train_seq_kd`."""
    cfg = TrainConfig.resolve(cfg, settings)
    model, tok = unpack_student(student)
    texts = [t for t in texts if isinstance(t, str) and t.strip()]
    if not texts:
        raise InputError("train_lm needs at least one non-empty text")
    if cfg.max_examples is not None:
        texts = texts[: cfg.max_examples]
    ex = [e for t in texts for e in encode_text(tok, t, max_len=cfg.max_len)]
    return run_training(model, tok, ex, out_dir, cfg, method="lm", loss_fn=ce_loss)


# ----------------------------------------------------------------------- logit KD


def _kd_inputs(
    teacher: Any,
    tok: Any,
    texts_or_prompts: Any,
    max_len: int,
    gen: dict[str, Any],
) -> tuple[list[Example], int]:
    """Examples for logit KD: raw texts, (prompt, response) records, or prompts that the
    teacher answers first (sampled with `gen`)."""
    if isinstance(texts_or_prompts, str | Path):
        return _pairs_to_examples(tok, read_records(texts_or_prompts), max_len)
    items = list(texts_or_prompts)
    if not items:
        raise InputError("logit-KD needs at least one text, record or prompt")
    if all(isinstance(x, Record) for x in items):
        return _pairs_to_examples(tok, items, max_len)
    if all(isinstance(x, dict) and "response" in x for x in items):
        recs = [Record(x["prompt"], x["response"], x.get("meta") or {}) for x in items]
        return _pairs_to_examples(tok, recs, max_len)
    if all(isinstance(x, Prompt | dict) for x in items):
        prompts = [x.text if isinstance(x, Prompt) else x["prompt"] for x in items]
        gens = teacher.generate(prompts, **gen)
        recs = [
            Record(p, g.text, {"finish_reason": g.finish_reason})
            for p, g in zip(prompts, gens, strict=True)
        ]
        return _pairs_to_examples(tok, recs, max_len)
    if all(isinstance(x, str) for x in items):
        return [e for t in items if t.strip() for e in encode_text(tok, t, max_len=max_len)], 0
    raise InputError(
        "texts_or_prompts must be texts, records, prompts, or a dataset path (not a mix)"
    )


def check_same_tokenizer(teacher_tok: Any, student_tok: Any, teacher_name: str = "teacher") -> None:
    """Logit KD compares distributions token by token: the vocabularies must be identical."""
    a, b = tokenizer_fingerprint(teacher_tok), tokenizer_fingerprint(student_tok)
    if a != b:
        raise InputError(
            f"logit-KD needs the student to share the teacher's tokenizer ({teacher_name}: {a}, "
            f"student: {b}); build the student with the teacher's tokenizer, or use seq-KD, "
            "which works across tokenizers"
        )


def write_topk_file(
    teacher: Any,
    texts_or_prompts: Any,
    path: str | Path,
    *,
    k: int = 32,
    max_len: int = 256,
    batch_size: int = 8,
    gen: dict[str, Any] | None = None,
    device: str = "auto",
) -> Path:
    """Store the teacher's top-k next-token log-probabilities at every position of the
    examples (safetensors: ids, targets, topk ids/logprobs; metadata: tokenizer, teacher)."""

    hf, ttok = unpack_student(teacher)
    ex, _ = _kd_inputs(teacher, ttok, texts_or_prompts, max_len, gen or _default_gen())
    if not ex:
        raise InputError("no examples to score with the teacher")
    dev = resolve_device(device)
    with placed_on(hf, dev):
        return _write_topk(teacher, hf, ttok, ex, path, k, max_len, batch_size, dev)


def _write_topk(
    teacher: Any,
    hf: Any,
    ttok: Any,
    ex: list[Example],
    path: str | Path,
    k: int,
    max_len: int,
    batch_size: int,
    dev: torch.device,
) -> Path:
    from safetensors.torch import save_file

    vocab = len(ttok)
    k = min(k, vocab)
    width = max(len(e.ids) for e in ex)
    n = len(ex)
    ids = torch.zeros((n, width), dtype=torch.int32)
    tg = torch.zeros((n, width), dtype=torch.uint8)
    lens = torch.zeros(n, dtype=torch.int32)
    top_ids = torch.zeros((n, width, k), dtype=torch.int32)
    top_lp = torch.full((n, width, k), -1e4, dtype=torch.float32)
    pad = ttok.pad_token_id if ttok.pad_token_id is not None else 0
    for s in range(0, n, batch_size):
        index = list(range(s, min(n, s + batch_size)))
        b = _collate(ex, index, pad, dev)
        with torch.inference_mode():
            lp = torch.log_softmax(
                hf(input_ids=b.ids, attention_mask=b.attn).logits[..., :vocab].float(), -1
            )
        v, i = torch.topk(lp, k, dim=-1)
        for row, j in enumerate(index):
            m = len(ex[j].ids)
            ids[j, :m] = torch.tensor(ex[j].ids, dtype=torch.int32)
            tg[j, :m] = torch.tensor(ex[j].targets, dtype=torch.uint8)
            lens[j] = m
            top_ids[j, :m] = i[row, :m].to("cpu", torch.int32)
            top_lp[j, :m] = v[row, :m].cpu()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    info = getattr(teacher, "info", None)
    save_file(
        {"ids": ids, "targets": tg, "lengths": lens, "topk_ids": top_ids, "topk_logprobs": top_lp},
        str(p),
        metadata={
            "format": "distilltrace-topk-v1",
            "tokenizer": tokenizer_fingerprint(ttok),
            "teacher": getattr(info, "name", "teacher"),
            "teacher_identity": getattr(info, "identity", ""),
            "k": str(k),
            "max_len": str(max_len),
        },
    )
    return p


def _read_topk(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise InputError(f"top-k file {p} does not exist")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for bad files
        raise InputError(f"{p}: not a readable top-k file ({type(e).__name__})") from None
    if meta.get("format") != "distilltrace-topk-v1":
        raise InputError(f"{p}: not a distilltrace top-k file (format {meta.get('format')!r})")
    return tensors, meta


def _default_gen() -> dict[str, Any]:
    return {"max_new_tokens": 96, "temperature": 0.7, "top_p": 0.95, "seed": 0}


@dataclass
class _KDSource:
    """Where logit-KD gets the teacher's distribution: examples, loss, run identity."""

    examples: list[Example]
    skipped: int
    loss_fn: LossFn
    extra: dict[str, Any]
    extra_vocab_copies: int
    teacher_hf: Any = None  # the live teacher's weights (None with a top-k file)


def train_logit_kd(
    student: Any,
    teacher: Any,
    texts_or_prompts: Any,
    out_dir: str | Path,
    cfg: TrainConfig | None = None,
    *,
    topk_file: str | Path | None = None,
    gen: dict[str, Any] | None = None,
    temperature: float | None = None,
    **settings: Any,
) -> TrainResult:
    """Token-level KD against the teacher's next-token distribution (``cfg.divergence``
    "fkl", "rkl" or "jsd" with ``cfg.beta``, at ``cfg.kd_temperature``; ``temperature=`` is
    accepted for it), on the fly from a local teacher or from a stored top-k file
    (`write_topk_file`). Student and teacher must share the tokenizer."""
    if temperature is not None:
        settings["kd_temperature"] = temperature
    cfg = TrainConfig.resolve(cfg, settings)
    cfg.check_logit_kd()
    model, tok = unpack_student(student)
    if topk_file is not None:
        src = _topk_source(topk_file, tok, cfg)
    else:
        src = _online_source(teacher, tok, texts_or_prompts, cfg, gen or _default_gen())
    place = (
        placed_on(src.teacher_hf, resolve_device(cfg.device))
        if src.teacher_hf is not None
        else nullcontext()
    )
    with place:
        return run_training(
            model,
            tok,
            src.examples,
            out_dir,
            cfg,
            method=f"logit-kd-{cfg.divergence}",
            loss_fn=src.loss_fn,
            extra_config=src.extra,
            extra_vocab_copies=src.extra_vocab_copies,
            skipped_examples=src.skipped,
        )


def _topk_source(topk_file: str | Path, tok: Any, cfg: TrainConfig) -> _KDSource:
    """Examples and loss from a stored top-k file (forward KL against the renormalised
    top-k teacher and the full student; rkl / jsd on the top-k support)."""
    tensors, meta = _read_topk(topk_file)
    if meta.get("tokenizer") != tokenizer_fingerprint(tok):
        raise InputError(
            f"top-k file {topk_file} was made with tokenizer {meta.get('tokenizer')}, the "
            f"student uses {tokenizer_fingerprint(tok)}; logit-KD needs the same tokenizer"
        )
    lens = tensors["lengths"].tolist()
    ex = [
        Example(tuple(tensors["ids"][i, :m].tolist()), tuple(tensors["targets"][i, :m].tolist()))
        for i, m in enumerate(lens)
    ]
    top_ids, top_lp = tensors["topk_ids"].long(), tensors["topk_logprobs"]
    vocab, div, beta, temp = len(tok), cfg.divergence, cfg.beta, cfg.kd_temperature

    def loss_fn(m: Any, b: _Batch) -> tuple[torch.Tensor, int]:
        logits = m(input_ids=b.ids, attention_mask=b.attn).logits[:, :-1, :vocab].float() / temp
        w = b.ids.shape[1]
        ti = top_ids[b.index, : w - 1].to(logits.device)
        tl = top_lp[b.index, : w - 1].to(logits.device) / temp
        t_logp = tl - torch.logsumexp(tl, -1, keepdim=True)
        s_full = torch.log_softmax(logits, -1)
        s_k = s_full.gather(-1, ti)
        if div == "fkl":  # cross-entropy to the renormalised top-k teacher, full student
            per = (t_logp.exp() * (t_logp - s_k)).sum(-1)
        else:  # rkl / jsd on the top-k support, both renormalised
            s_logp = s_k - torch.logsumexp(s_k, -1, keepdim=True)
            per = _div(div, t_logp, s_logp, beta)
        return _masked_mean(per, b, temp**2)

    extra = {
        "teacher": meta.get("teacher"),
        "teacher_identity": meta.get("teacher_identity"),
        "topk": int(meta.get("k", 0)),
    }
    return _KDSource(ex, 0, loss_fn, extra, 0)


def _online_source(
    teacher: Any, tok: Any, texts_or_prompts: Any, cfg: TrainConfig, gen: dict[str, Any]
) -> _KDSource:
    """Examples and loss against a live local teacher's full next-token distribution."""
    if teacher is None:
        raise InputError("logit-KD needs a local teacher or a top-k file")
    if isinstance(teacher, str):
        from distilltrace.models import load_model

        teacher = load_model(teacher)
    thf = getattr(teacher, "hf_model", None)
    ttok = getattr(teacher, "tokenizer", None)
    if thf is None or ttok is None:
        raise CapabilityError(
            f"logit-KD on the fly needs the teacher's weights; {teacher.info.name} is not a "
            "local model (harvest it for seq-KD instead)"
        )
    check_same_tokenizer(ttok, tok, teacher.info.name)
    ex, skipped = _kd_inputs(teacher, tok, texts_or_prompts, cfg.max_len, gen)
    thf.eval()
    vocab, div, beta, temp = len(tok), cfg.divergence, cfg.beta, cfg.kd_temperature

    def loss_fn(m: Any, b: _Batch) -> tuple[torch.Tensor, int]:
        with torch.inference_mode():
            tl = thf(input_ids=b.ids, attention_mask=b.attn).logits[:, :-1, :vocab].float()
        t_logp = torch.log_softmax(tl.clone() / temp, -1)
        logits = m(input_ids=b.ids, attention_mask=b.attn).logits[:, :-1, :vocab].float()
        s_logp = torch.log_softmax(logits / temp, -1)
        return _masked_mean(_div(div, t_logp, s_logp, beta), b, temp**2)

    extra = {"teacher": teacher.info.name, "teacher_identity": teacher.info.identity}
    return _KDSource(ex, skipped, loss_fn, extra, 3, thf)


def _masked_mean(per: torch.Tensor, b: _Batch, scale: float) -> tuple[torch.Tensor, int]:
    """Mean per-position loss over the target tokens, times `scale`; and their count."""
    mask = b.targets[:, 1:].bool()
    n = int(mask.sum())
    return per[mask].sum() * scale / max(n, 1), n


def _div(name: str, t: torch.Tensor, s: torch.Tensor, beta: float) -> torch.Tensor:
    return divergence(name, t, s, beta)
