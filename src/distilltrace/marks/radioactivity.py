"""Radioactivity tests: did a suspect model learn from text marked with our key?

Following Sander et al. (2024), "Watermarking Makes Language Models Radioactive":

- closed-model mode: prompt the suspect, score its outputs for the mark. Every distinct
  (window, token) tuple is scored once ACROSS all outputs, windows that occur in the
  prompts are excluded (the suspect may copy them), and optionally (supervised setting)
  only windows frequent in the provider's own marked outputs are scored. With our own
  (marking) model as `reference`, only tokens it gave probability <= 0.5 after the
  suspect's own context are scored: where our model was sure, the mark could not steer
  the choice, so a student learned nothing there to find. That selection is a function of
  the suspect's text and our weights, never of the key, so H0 stays exact.
- open-model mode: feed the provider's marked text through the suspect's weights and
  score the suspect's top-1 next-token prediction after each window, de-duplicated;
  windows already seen earlier in the same marked context are skipped (a model that
  copies from its context would otherwise echo the marked tokens).
- prefix mode (`distilltrace.marks.radioactivity_prefix`): open mode's reading taken
  through a suspect that continues a given text, one greedy token per probe.

H0: the suspect's weights are independent of the key (it was not trained on text marked
with it). Under H0 the scored tuples carry independent key-derived uniforms, so the
detector's exact null (Binomial for green-list, Gamma for Gumbel) holds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from distilltrace.errors import CapabilityError, InputError
from distilltrace.marks.detect import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_SCORED,
    MarkTest,
    TupleScorer,
    encode_text,
    window_seeds_of_texts,
)
from distilltrace.marks.schemes import Watermark

DEFAULT_MAX_REFERENCE_PROB = 0.5  # closed mode with our model: score tokens it gave <= this


@dataclass(frozen=True)
class RadioactivityResult:
    """A radioactivity test of one suspect in one mode."""

    mode: str
    suspect: dict[str, Any]
    key: dict[str, Any]
    test: MarkTest
    n_inputs: int  # prompts (closed) or marked texts (open)
    settings: dict[str, Any] = field(default_factory=dict)
    samples: tuple[dict[str, str], ...] = ()  # a few inputs/outputs, for the report

    # The evidence protocol (distilltrace.evidence.Evidence), from the mark test.
    @property
    def name(self) -> str:
        return f"radioactivity_{self.mode}"

    @property
    def null(self) -> str:
        return (
            "the suspect's weights are independent of the key (it was not trained on text "
            f"marked with it), so {self.test.null}"
        )

    @property
    def statistic(self) -> float:
        return self.test.statistic

    @property
    def pvalue(self) -> float | None:
        return self.test.pvalue

    @property
    def n(self) -> int:
        return self.test.n_scored

    @property
    def details(self) -> dict[str, Any]:
        return {"mode": self.mode, "n_inputs": self.n_inputs, **self.test.details}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["test"] = self.test.to_dict()
        d.update(name=self.name, null=self.null, statistic=self.statistic)
        d.update(pvalue=self.pvalue, n=self.n, details=self.details)
        return d


def frequent_window_seeds(
    wm: Watermark, tokenizer: Any, marked_texts: Sequence[str], min_count: int
) -> set[int]:
    """Seeds of windows occurring at least min_count times in the provider's marked texts
    (the supervised filter: windows the suspect most likely learned)."""
    if min_count < 1:
        raise InputError("filter min_count must be >= 1")
    counts: Counter[int] = Counter()
    for t in marked_texts:
        counts.update(int(s) for s in wm.sequence_seeds(encode_text(tokenizer, t)))
    return {s for s, c in counts.items() if c >= min_count}


def _suspect_info(model: Any) -> dict[str, Any]:
    info = getattr(model, "info", None)
    if info is None:
        return {"name": repr(model)}
    return {
        "name": info.name,
        "spec": info.spec,
        "backend": info.backend,
        "identity": info.identity,
        "tokenizer_id": info.tokenizer_id,
    }


def score_closed(
    wm: Watermark,
    outputs: Sequence[str],
    prompts: Sequence[str],
    tokenizer: Any,
    *,
    marked_texts: Sequence[str] | None = None,
    filter_min_count: int | None = None,
    reference_probs: Sequence[Sequence[float]] | None = None,
    max_reference_prob: float = DEFAULT_MAX_REFERENCE_PROB,
    alpha: float = DEFAULT_ALPHA,
    min_scored: int = DEFAULT_MIN_SCORED,
) -> tuple[MarkTest, int | None]:
    """The closed-mode test on suspect outputs: tuples de-duplicated across all outputs,
    prompt windows excluded, optionally only windows frequent in our marked texts, and,
    with `reference_probs` (our model's probability of each output token, from
    `reference_token_probs`), only tokens it gave <= max_reference_prob.
    Returns the test and the number of allowed windows (None without the filter)."""
    wm.check_tokenizer(tokenizer, what="the scoring tokenizer")
    allowed = None
    if filter_min_count is not None:
        if not marked_texts:
            raise InputError("the supervised filter needs the provider's marked texts (--marked)")
        allowed = frequent_window_seeds(wm, tokenizer, marked_texts, filter_min_count)
    if reference_probs is not None and len(reference_probs) != len(outputs):
        raise InputError("reference_probs must have one list per output")
    scorer = TupleScorer(
        wm, exclude_seeds=window_seeds_of_texts(wm, tokenizer, prompts), allowed_seeds=allowed
    )
    for i, text in enumerate(outputs):
        ids = encode_text(tokenizer, text)
        select = None
        if reference_probs is not None:
            if len(reference_probs[i]) != len(ids):
                raise InputError(f"reference_probs[{i}] does not align with output {i}'s tokens")
            select = [float(p) <= max_reference_prob for p in reference_probs[i]]
        scorer.add_sequence(ids, select=select)
    return scorer.test(alpha, min_scored), None if allowed is None else len(allowed)


def _check_local(reference: Any) -> None:
    if not hasattr(reference, "hf_model") or not hasattr(reference, "encode_prompt"):
        raise CapabilityError(
            f"{_suspect_info(reference)['name']!r} has no local weights to score with"
        )


def reference_token_probs(
    reference: Any,
    prompts: Sequence[str],
    outputs: Sequence[str],
    tokenizer: Any,
    *,
    chat: bool = True,
    batch_size: int = 8,
    on_batch: Callable[[int], None] | None = None,
) -> list[list[float]]:
    """Our model's probability of each token of each output (tokens of `tokenizer`, the
    key's), given the prompt (chat-templated when `chat`) and the output before it. It
    reads the suspect's text with our weights only: the result never depends on the key."""
    _check_local(reference)
    if len(prompts) != len(outputs):
        raise InputError("prompts and outputs must align")
    seqs, starts = [], []
    for p, o in zip(prompts, outputs, strict=True):
        ctx = reference.encode_prompt(p, chat)
        seqs.append(ctx + encode_text(tokenizer, o))
        starts.append(len(ctx))
    out: list[list[float]] = [[] for _ in seqs]
    for i, logits in _forward_rows(reference, seqs, batch_size):
        s, ids = starts[i], torch.tensor(seqs[i][starts[i] :], dtype=torch.long)
        if not len(ids):
            continue
        lg = logits[s - 1 : s - 1 + len(ids)].float()  # row j predicts token j + 1
        lp = lg.gather(-1, ids[:, None].to(lg.device))[:, 0] - torch.logsumexp(lg, -1)
        out[i] = [float(x) for x in lp.exp().cpu()]
        if on_batch is not None and ((i + 1) % batch_size == 0 or i + 1 == len(seqs)):
            on_batch(i + 1)
    return out


def radioactivity_closed(
    wm: Watermark,
    suspect: Any,
    prompts: Sequence[str],
    tokenizer: Any,
    *,
    marked_texts: Sequence[str] | None = None,
    filter_min_count: int | None = None,
    reference: Any = None,
    max_reference_prob: float = DEFAULT_MAX_REFERENCE_PROB,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    min_scored: int = DEFAULT_MIN_SCORED,
    chat: bool = True,
    on_batch: Callable[[int], None] | None = None,
    on_reference_batch: Callable[[int], None] | None = None,
) -> RadioactivityResult:
    """Prompt the suspect and test its outputs for the mark (any model spec works).
    `reference`: our own marking model (local weights, the key's tokenizer); only tokens
    it gave <= max_reference_prob after the suspect's context are then scored."""
    wm.check_tokenizer(tokenizer, what="the scoring tokenizer")
    if reference is not None:  # checked before the suspect is queried
        _check_local(reference)
        wm.check_tokenizer(reference.tokenizer, what="the reference's tokenizer")
        if not 0.0 < max_reference_prob <= 1.0:
            raise InputError(f"max_reference_prob must be in (0, 1], got {max_reference_prob}")
    prompts = list(prompts)
    if not prompts:
        raise InputError("closed-model mode needs at least one prompt")
    if filter_min_count is not None and not marked_texts:
        raise InputError("the supervised filter needs the provider's marked texts (--marked)")
    kwargs: dict[str, Any] = {}
    if on_batch is not None and hasattr(suspect, "hf_model"):
        kwargs["on_batch"] = on_batch
    gens = suspect.generate(
        prompts,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
        chat=chat,
        **kwargs,
    )
    outs = [g.text for g in gens]
    ref_probs = None
    if reference is not None:
        ref_probs = reference_token_probs(
            reference, prompts, outs, tokenizer, chat=chat, on_batch=on_reference_batch
        )
    test, n_allowed = score_closed(
        wm,
        outs,
        prompts,
        tokenizer,
        marked_texts=marked_texts,
        filter_min_count=filter_min_count,
        reference_probs=ref_probs,
        max_reference_prob=max_reference_prob,
        alpha=alpha,
        min_scored=min_scored,
    )
    return RadioactivityResult(
        mode="closed",
        suspect=_suspect_info(suspect),
        key=wm.to_dict(),
        test=test,
        n_inputs=len(prompts),
        settings={
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "seed": seed,
            "chat": chat,
            "filter_min_count": filter_min_count,
            "n_allowed_windows": n_allowed,
            "prompt_windows_excluded": True,
            "reference": None if reference is None else _suspect_info(reference),
            "max_reference_prob": None if reference is None else max_reference_prob,
        },
        samples=tuple({"input": g.prompt, "output": g.text} for g in gens[:5]),
    )


def _forward_rows(
    model: Any, seqs: Sequence[Sequence[int]], batch_size: int
) -> Iterator[tuple[int, torch.Tensor]]:
    """Left-padded batched forward passes: (index, logits of that sequence's own positions;
    row j predicts token j + 1), in order."""
    hf = model.hf_model
    pad = int(getattr(model, "pad_id", 0) or 0)
    device = getattr(model, "device", torch.device("cpu"))
    for a in range(0, len(seqs), batch_size):
        chunk = seqs[a : a + batch_size]
        width = max(1, max(len(s) for s in chunk))
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, s in enumerate(chunk):
            if len(s):
                ids[i, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
                mask[i, width - len(s) :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = hf(
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                position_ids=pos.to(device),
            ).logits
        for i, s in enumerate(chunk):
            yield a + i, logits[i, width - len(s) :]


def _top1_predictions(model: Any, seqs: list[list[int]], batch_size: int) -> list[list[int]]:
    """For each sequence, the model's argmax next token after every prefix (aligned so
    pred[t] is the prediction for position t; pred[0] is -1)."""
    out: list[list[int]] = []
    for _, logits in _forward_rows(model, seqs, batch_size):
        out.append([-1] + torch.argmax(logits, dim=-1).cpu().tolist()[:-1])
    return out


@dataclass(frozen=True)
class OpenReading:
    """A suspect's top-1 predictions along our marked texts (computed once, scored per key)."""

    seqs: tuple[tuple[int, ...], ...]
    starts: tuple[int, ...]  # first position of the marked part of each sequence
    preds: tuple[tuple[int, ...], ...]  # preds[i][t]: the prediction for position t

    @property
    def n_predicted(self) -> int:
        """Positions with a prediction (prefix mode leaves -1 where not probed or dropped)."""
        return sum(1 for p in self.preds for x in p if x >= 0)


def read_open(
    suspect: Any,
    marked_texts: Sequence[str],
    *,
    marked_prompts: Sequence[str] | None = None,
    max_tokens: int = 512,
    batch_size: int = 8,
    on_batch: Callable[[int], None] | None = None,
) -> OpenReading:
    """Feed marked texts (after their chat-templated prompts, if given) through the
    suspect's weights and keep its argmax next token at every position."""
    if not hasattr(suspect, "hf_model") or getattr(suspect, "tokenizer", None) is None:
        raise CapabilityError(
            f"open-model mode needs local weights; {_suspect_info(suspect)['name']!r} has none "
            "(use --mode closed)"
        )
    texts = list(marked_texts)
    if not texts:
        raise InputError("open-model mode needs marked texts (--marked)")
    if marked_prompts is not None and len(marked_prompts) != len(texts):
        raise InputError("marked prompts must align with marked texts")
    tok = suspect.tokenizer
    seqs, starts = [], []
    for i, t in enumerate(texts):
        ans = encode_text(tok, t)
        ctx = []
        if marked_prompts is not None and hasattr(suspect, "encode_prompt"):
            ctx = suspect.encode_prompt(marked_prompts[i], True)
        seqs.append((ctx + ans)[:max_tokens])
        starts.append(len(ctx))
    preds: list[tuple[int, ...]] = [()] * len(seqs)
    keep = [i for i, s in enumerate(seqs) if len(s) > 1]
    keep.sort(key=lambda i: len(seqs[i]))  # similar lengths batch with little padding
    done = 0
    for a in range(0, len(keep), batch_size):
        idx = keep[a : a + batch_size]
        for i, p in zip(
            idx, _top1_predictions(suspect, [seqs[i] for i in idx], batch_size), strict=True
        ):
            preds[i] = tuple(p)
        done += len(idx)
        if on_batch is not None:
            on_batch(done)
    return OpenReading(
        tuple(tuple(s) for s in seqs),
        tuple(starts),
        tuple(p or (-1,) * len(s) for p, s in zip(preds, seqs, strict=True)),
    )


def score_open(
    wm: Watermark,
    reading: OpenReading,
    *,
    allowed_seeds: set[int] | None = None,
    alpha: float = DEFAULT_ALPHA,
    min_scored: int = DEFAULT_MIN_SCORED,
) -> MarkTest:
    """The open-mode test: the suspect's predictions after each window of the marked part,
    (window, prediction) de-duplicated, windows repeated earlier in a context skipped."""
    scorer = TupleScorer(wm, allowed_seeds=allowed_seeds)
    for seq, start, pred in zip(reading.seqs, reading.starts, reading.preds, strict=True):
        if len(seq) > wm.context_width:
            scorer.add_sequence(
                seq,
                start=max(start, 1),
                tokens=pred,
                context_is_marked=True,
                select=[p >= 0 for p in pred],  # -1: no prediction there (prefix mode)
            )
    return scorer.test(alpha, min_scored)


def radioactivity_open(
    wm: Watermark,
    suspect: Any,
    marked_texts: Sequence[str],
    *,
    marked_prompts: Sequence[str] | None = None,
    filter_min_count: int | None = None,
    max_tokens: int = 512,
    batch_size: int = 8,
    alpha: float = DEFAULT_ALPHA,
    min_scored: int = DEFAULT_MIN_SCORED,
    on_batch: Callable[[int], None] | None = None,
) -> RadioactivityResult:
    """Feed marked text through the suspect's weights and test its top-1 predictions."""
    if hasattr(suspect, "hf_model") and getattr(suspect, "tokenizer", None) is not None:
        wm.check_tokenizer(
            suspect.tokenizer, what=f"the suspect's tokenizer ({_suspect_info(suspect)['name']})"
        )
    reading = read_open(
        suspect,
        marked_texts,
        marked_prompts=marked_prompts,
        max_tokens=max_tokens,
        batch_size=batch_size,
        on_batch=on_batch,
    )
    settings = {"max_tokens": max_tokens, "with_prompts": marked_prompts is not None,
                "scored": "top-1 next-token predictions"}  # fmt: skip
    return open_result(
        "open", wm, suspect, reading, suspect.tokenizer, marked_texts, settings,
        filter_min_count=filter_min_count, alpha=alpha, min_scored=min_scored,
    )  # fmt: skip


def open_result(
    mode: str,
    wm: Watermark,
    suspect: Any,
    reading: OpenReading,
    tokenizer: Any,
    marked_texts: Sequence[str],
    settings: dict[str, Any],
    *,
    filter_min_count: int | None,
    alpha: float,
    min_scored: int,
) -> RadioactivityResult:
    """Score an `OpenReading` (open or prefix mode), with the supervised window filter
    when `filter_min_count` is given, as a result with the mode's own `settings`."""
    allowed = None
    if filter_min_count is not None:
        allowed = frequent_window_seeds(wm, tokenizer, list(marked_texts), filter_min_count)
    test = score_open(wm, reading, allowed_seeds=allowed, alpha=alpha, min_scored=min_scored)
    return RadioactivityResult(
        mode=mode,
        suspect=_suspect_info(suspect),
        key=wm.to_dict(),
        test=test,
        n_inputs=len(reading.seqs),
        settings={
            **settings,
            "filter_min_count": filter_min_count,
            "n_allowed_windows": None if allowed is None else len(allowed),
        },
        samples=tuple({"input": t[:400], "output": ""} for t in list(marked_texts)[:3]),
    )
