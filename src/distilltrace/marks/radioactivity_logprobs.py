"""Logprobs-mode radioactivity: closed mode that reads the suspect's top-k log-probabilities.

Closed mode scores the tokens a suspect writes. A student that learned a mark from a small
share of its training data leans towards the key's choices, but the lean rarely flips its
greedy choice, so its text carries little of the mark (a SmolLM2 student with 10% marked
data: p = 0.33, docs/benchmarks.md). Many chat APIs return, with each generated token, the
log-probabilities of the k most likely tokens (OpenAI's ``logprobs`` / ``top_logprobs``,
up to 20). That shows the lean itself: at each position of the suspect's own answer,
how much probability it puts on each candidate token, whatever it then wrote.

Each candidate v after the window s of the answer gets a weight: the suspect's
probability q(v), or with our own marking model as `reference`, q(v) - p(v), what the
suspect believes beyond what our unmarked model believes at the same place (the mark moves
a student's distribution away from its base in the key's direction; where both agree the
tuple only adds noise). Weights of a repeated (window, token) tuple add up. The statistic
is the weighted sum of the centred key scores (`marks.weighted`).

H0: the suspect's weights are independent of the key. Then its answers and its
probabilities are too, our model's probabilities read its text with our weights only, and
the weights are fixed with respect to the key, which is what `marks.weighted` needs.
Windows that occur in the prompts are left out (a prompt could quote marked text that the
suspect copies). Candidates the suspect's token pieces cannot be mapped to (another
tokenizer) are dropped, by their text alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from distilltrace.errors import CapabilityError, InputError
from distilltrace.marks.detect import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_SCORED,
    MarkTest,
    window_seeds_of_texts,
)
from distilltrace.marks.radioactivity import (
    RadioactivityResult,
    _check_local,
    _forward_rows,
    _suspect_info,
)
from distilltrace.marks.schemes import Watermark
from distilltrace.marks.weighted import weighted_test

DEFAULT_TOP_K = 20  # OpenAI's maximum top_logprobs


@dataclass(frozen=True)
class StepReading:
    """A suspect's answers with the top-k log-probabilities at each generated token, in the
    key's token ids (-1: a piece that does not map onto the key's tokenizer)."""

    prompts: tuple[str, ...]
    texts: tuple[str, ...]
    chosen: tuple[tuple[int, ...], ...]  # the token written at each step
    top_ids: tuple[np.ndarray, ...]  # [steps, k] int64
    top_logprobs: tuple[np.ndarray, ...]  # [steps, k] float64 (-inf where missing)
    top_k: int

    @property
    def n_steps(self) -> int:
        return sum(len(c) for c in self.chosen)


def _steps_of(suspect: Any, prompts: list[str], top_k: int, max_new_tokens: int, chat: bool,
              seed: int, on_batch: Callable[[int], None] | None) -> list[tuple[Any, list]]:  # fmt: skip
    if hasattr(suspect, "generate_encoded") and hasattr(suspect, "encode_prompt"):
        enc = [suspect.encode_prompt(p, chat) for p in prompts]
        return suspect.generate_encoded(prompts, enc, max_new_tokens, 0.0, 1.0, seed, None,
                                        seed_chat=chat, top_logprobs=top_k, on_batch=on_batch)  # fmt: skip
    if hasattr(suspect, "generate_steps"):
        return suspect.generate_steps(prompts, top_k=top_k, max_new_tokens=max_new_tokens,
                                      seed=seed, chat=chat, on_batch=on_batch)  # fmt: skip
    raise CapabilityError(
        f"logprobs mode needs a suspect that returns top-k log-probabilities while it answers "
        f"(local weights or an OpenAI-compatible endpoint); {_suspect_info(suspect)['name']!r} "
        "has neither (use --mode closed)"
    )


def _piece_map(tokenizer: Any) -> dict[str, int]:
    """Decoded text of each token id -> id, for pieces that decode uniquely."""
    seen: dict[str, int] = {}
    dup: set[str] = set()
    for i in range(len(tokenizer)):
        s = tokenizer.decode([i])
        if s in seen:
            dup.add(s)
        seen[s] = i
    return {s: i for s, i in seen.items() if s not in dup}


def _ids(tokens: Sequence[Any], tokenizer: Any, pieces: dict[str, int] | None) -> list[int]:
    """Key-tokenizer ids of TokenLogprobs: their id when given, else their piece's."""
    out = []
    for t in tokens:
        if t.id is not None:
            out.append(int(t.id) if 0 <= int(t.id) < len(tokenizer) else -1)
        else:
            out.append(-1 if pieces is None else pieces.get(t.token, -1))
    return out


def read_steps(
    wm: Watermark,
    suspect: Any,
    prompts: Sequence[str],
    tokenizer: Any,
    *,
    top_k: int = DEFAULT_TOP_K,
    max_new_tokens: int = 128,
    chat: bool = True,
    seed: int = 0,
    on_batch: Callable[[int], None] | None = None,
) -> StepReading:
    """Ask the suspect each prompt (greedy) and keep its top-k log-probabilities per step.
    The suspect's tokens must be the key's: a local suspect's tokenizer is checked, an
    endpoint's answers must decode back to their text under the key's tokenizer."""
    if not isinstance(top_k, int) or not 1 <= top_k <= 100:
        raise InputError(f"top_k must be an integer in 1..100, got {top_k!r}")
    prompts = list(prompts)
    if not prompts:
        raise InputError("logprobs mode needs at least one prompt")
    wm.check_tokenizer(tokenizer, what="the scoring tokenizer")
    if getattr(suspect, "tokenizer", None) is not None and hasattr(suspect, "generate_encoded"):
        wm.check_tokenizer(suspect.tokenizer, what=f"the suspect's tokenizer "
                           f"({_suspect_info(suspect)['name']}); logprobs mode needs the key's")  # fmt: skip
    out = _steps_of(suspect, prompts, top_k, max_new_tokens, chat, seed, on_batch)
    pieces = None
    if any(t.id is None for _, steps in out for s in (steps or []) for t in (s.chosen, *s.top)):
        pieces = _piece_map(tokenizer)
    chosen, tids, tlps, bad = [], [], [], 0
    for gen, steps in out:
        steps = steps or []
        c = _ids([s.chosen for s in steps], tokenizer, pieces)
        ids = np.full((len(steps), top_k), -1, dtype=np.int64)
        lps = np.full((len(steps), top_k), -np.inf)
        for j, s in enumerate(steps):
            top = s.top[:top_k]
            ids[j, : len(top)] = _ids(top, tokenizer, pieces)
            lps[j, : len(top)] = [t.logprob for t in top]
        if c and tokenizer.decode([x for x in c if x >= 0]).strip() != gen.text.strip():
            bad += 1
        chosen.append(tuple(c))
        tids.append(ids)
        tlps.append(lps)
    if bad > len(out) / 2:
        raise CapabilityError(
            f"{bad} of {len(out)} answers do not decode back to their text under the key's "
            "tokenizer: the suspect's tokens are not the key's (use --mode closed or prefix)"
        )
    return StepReading(tuple(prompts), tuple(g.text for g, _ in out), tuple(chosen),
                       tuple(tids), tuple(tlps), top_k)  # fmt: skip


def reference_candidates(
    reference: Any, reading: StepReading, *, chat: bool = True, batch_size: int = 8,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:  # fmt: skip
    """Per answer: candidate ids [steps, 2k] (the suspect's top-k, then our model's top-k)
    and our model's probability of each, reading the suspect's answer after the prompt.
    A candidate among our top-k that is also among the suspect's gets probability 0 in the
    second half (it is counted once, in the first)."""
    _check_local(reference)
    k = reading.top_k
    seqs, starts = [], []
    for p, c in zip(reading.prompts, reading.chosen, strict=True):
        ctx = reference.encode_prompt(p, chat)
        seqs.append(ctx + [max(0, x) for x in c])
        starts.append(len(ctx))
    cands: list[np.ndarray] = [np.zeros((0, 2 * k), np.int64)] * len(seqs)
    probs: list[np.ndarray] = [np.zeros((0, 2 * k))] * len(seqs)
    for i, logits in _forward_rows(reference, seqs, batch_size):
        n, s = len(reading.chosen[i]), starts[i]
        if n:
            lp = torch.log_softmax(logits[s - 1 : s - 1 + n].float(), -1)
            ours = torch.topk(lp, k, -1).indices.cpu().numpy()
            sus = reading.top_ids[i]
            cand = np.concatenate([sus, ours], 1)
            pr = lp.exp().cpu().numpy()
            p = np.take_along_axis(pr, np.maximum(cand, 0), 1)
            p[:, :k][sus < 0] = 0.0
            p[:, k:][(ours[:, :, None] == sus[:, None, :]).any(-1)] = 0.0
            cands[i], probs[i] = cand, p
        if on_batch is not None:
            on_batch(i + 1)
    return cands, probs


def score_logprobs(
    wm: Watermark,
    reading: StepReading,
    tokenizer: Any,
    *,
    reference_probs: tuple[list[np.ndarray], list[np.ndarray]] | None = None,
    exclude_prompt_windows: bool = True,
    alpha: float = DEFAULT_ALPHA,
    min_scored: int = DEFAULT_MIN_SCORED,
) -> MarkTest:
    """The weighted test over a reading: weights q, or q - p with `reference_probs` (from
    `reference_candidates`), at each position whose window lies inside the answer.
    `exclude_prompt_windows` false keeps windows that occur in the prompts: only for
    prompts known to carry no marked text (e.g. users' own questions), since a suspect
    copying marked text from its prompt would lean towards the key without having learned
    it."""
    h = wm.context_width
    excluded = (
        window_seeds_of_texts(wm, tokenizer, reading.prompts) if exclude_prompt_windows else set()
    )
    S, V, W = [], [], []
    counts = {"n_tokens": 0, "n_excluded": 0, "n_unselected": 0}
    for i, c in enumerate(reading.chosen):
        if len(c) <= h:
            continue
        ids = np.asarray(c, dtype=np.int64)
        seeds = wm.sequence_seeds(np.maximum(ids, 0).tolist())  # seeds[t - h]: window before t
        t = np.arange(h, len(c))
        # the window before t holds no unmapped token (-1)
        ok = np.lib.stride_tricks.sliding_window_view(ids >= 0, h)[:-1].all(1)
        ex = np.isin(seeds, np.fromiter(excluded, dtype=np.uint64, count=len(excluded)))
        counts["n_tokens"] += len(t)
        counts["n_unselected"] += int((~ok).sum())
        counts["n_excluded"] += int((ok & ex).sum())
        keep = ok & ~ex
        t, sd = t[keep], seeds[keep]
        q = np.exp(reading.top_logprobs[i][t])
        q[reading.top_ids[i][t] < 0] = 0.0
        if reference_probs is None:
            cand, w = reading.top_ids[i][t], q
        else:
            cand = reference_probs[0][i][t]
            w = np.concatenate([q, np.zeros_like(q)], 1) - reference_probs[1][i][t]
            w[cand < 0] = 0.0
        S.append(np.repeat(sd, cand.shape[1]))
        V.append(np.maximum(cand, 0).reshape(-1))
        W.append(w.reshape(-1))
    return weighted_test(wm, _cat(S, np.uint64), _cat(V, np.int64), _cat(W, np.float64),
                         alpha=alpha, min_scored=min_scored, counts=counts)  # fmt: skip


def _cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def radioactivity_logprobs(
    wm: Watermark,
    suspect: Any,
    prompts: Sequence[str],
    tokenizer: Any,
    *,
    reference: Any = None,
    top_k: int = DEFAULT_TOP_K,
    exclude_prompt_windows: bool = True,
    max_new_tokens: int = 128,
    seed: int = 0,
    chat: bool = True,
    alpha: float = DEFAULT_ALPHA,
    min_scored: int = DEFAULT_MIN_SCORED,
    on_batch: Callable[[int], None] | None = None,
    on_reference_batch: Callable[[int], None] | None = None,
) -> RadioactivityResult:
    """Prompt the suspect, read its top-k log-probabilities along its answers, and test
    them for the mark; with `reference` (our marking model) the weights are q - p."""
    if reference is not None:  # checked before the suspect is queried
        _check_local(reference)
        wm.check_tokenizer(reference.tokenizer, what="the reference's tokenizer")
    reading = read_steps(wm, suspect, prompts, tokenizer, top_k=top_k,
                         max_new_tokens=max_new_tokens, chat=chat, seed=seed, on_batch=on_batch)  # fmt: skip
    ref = None
    if reference is not None:
        ref = reference_candidates(reference, reading, chat=chat, on_batch=on_reference_batch)
    test = score_logprobs(wm, reading, tokenizer, reference_probs=ref, alpha=alpha,
                          exclude_prompt_windows=exclude_prompt_windows,
                          min_scored=min_scored)  # fmt: skip
    return RadioactivityResult(
        mode="logprobs",
        suspect=_suspect_info(suspect),
        key=wm.to_dict(),
        test=test,
        n_inputs=len(reading.prompts),
        settings={
            "max_new_tokens": max_new_tokens,
            "temperature": 0.0,
            "seed": seed,
            "chat": chat,
            "top_k": top_k,
            "weights": "q" if reference is None else "q - p (our model)",
            "reference": None if reference is None else _suspect_info(reference),
            "prompt_windows_excluded": exclude_prompt_windows,
            "n_steps": reading.n_steps,
        },
        samples=tuple(
            {"input": p, "output": t}
            for p, t in zip(reading.prompts[:5], reading.texts[:5], strict=True)
        ),  # fmt: skip
    )
