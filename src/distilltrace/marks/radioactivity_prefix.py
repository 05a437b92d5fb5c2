"""Prefix-mode radioactivity: open mode through a suspect's text-completion interface.

Open mode reads a suspect's top-1 next-token prediction after each window of our marked
text, which needs its weights. Prefix mode asks the same question of a suspect that can
only be prompted, provided it continues a given text: a raw ``/v1/completions`` endpoint,
or a chat API with assistant prefill ("prefix completion"). Each probe is the harvested
prompt in the suspect's chat format followed by the first t tokens of our marked answer;
the suspect's greedy first token is its top-1 prediction for token t. One probe per
scored position: `stride` sets how many positions of each answer are probed (queries =
answers x tokens / stride).

Why it exists: a student trained on a small share of marked answers fits those answers
(open mode: p = 1e-93 for a SmolLM2 student with 10% marked data, docs/benchmarks.md),
but its free greedy answers carry little of the mark (closed mode: p = 0.33 on the same
student). Prefix mode puts the student back into the marked contexts it learned from.

H0: the suspect's weights are independent of the key. Each scored tuple is (window of our
marked text, the suspect's prediction after it); de-duplicated across texts, and a window
already seen earlier in the same answer is skipped (a suspect that copies from its
context would echo the key's choices), exactly as in open mode (`score_open`), so the
detector's exact null holds. Which positions are probed, and which probes are dropped
(the suspect ended its answer, or its token does not re-tokenise onto our answer's
tokens), depend on the stride and on the suspect's text, never on the key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from distilltrace.errors import InputError
from distilltrace.marks.detect import DEFAULT_ALPHA, DEFAULT_MIN_SCORED, encode_text
from distilltrace.marks.radioactivity import (
    OpenReading,
    RadioactivityResult,
    _suspect_info,
    open_result,
)
from distilltrace.marks.schemes import Watermark

DEFAULT_STRIDE = 4  # probe every 4th token of each marked answer


def chat_prefix(suspect: Any, prompt: str, prompt_format: str | None) -> str:
    """The text before the suspect's answer: `prompt_format` with {prompt} filled in, else
    the suspect's own chat template (local weights)."""
    if prompt_format is not None:
        if "{prompt}" not in prompt_format:
            raise InputError(f"prompt format must contain {{prompt}}, got {prompt_format!r}")
        return prompt_format.replace("{prompt}", prompt)
    fmt = getattr(suspect, "format_prompt", None)
    if fmt is None:
        raise InputError(
            f"prefix mode needs the suspect's prompt format for {_suspect_info(suspect)['name']!r}"
            " (--prefix-format, e.g. '<|im_start|>user\\n{prompt}<|im_end|>\\n"
            "<|im_start|>assistant\\n')"
        )
    return fmt(prompt, True)


def prefix_positions(
    answers: Sequence[Sequence[int]], h: int, stride: int
) -> list[tuple[int, int]]:
    """(answer index, position t) for every probed position: t = h, h + stride, ..."""
    return [(i, t) for i, ids in enumerate(answers) for t in range(h, len(ids), stride)]


def _predicted(tokenizer: Any, ids: Sequence[int], t: int, head: str, cont: str) -> int:
    """Our tokenizer's token t after the suspect continued ids[:t] (decoded as `head`) with
    `cont`; -1 when it ended or its text does not re-tokenise onto ids[:t]."""
    if not cont:
        return -1
    again = encode_text(tokenizer, head + cont)
    return int(again[t]) if len(again) > t and list(again[:t]) == list(ids[:t]) else -1


def prefix_predictions(
    tokenizer: Any,
    answers: Sequence[Sequence[int]],
    positions: Sequence[tuple[int, int]],
    continuations: Sequence[str],
) -> OpenReading:
    """The reading a set of probes gives: at (i, t), our token t re-tokenised from our first t
    tokens of answer i followed by the suspect's continuation (-1 elsewhere). A pure function
    of the recorded text, so a custody bundle's verify recomputes it without the suspect."""
    if len(positions) != len(continuations):
        raise InputError(f"{len(positions)} probes but {len(continuations)} continuations")
    preds = [[-1] * len(a) for a in answers]
    for (i, t), cont in zip(positions, continuations, strict=True):
        head = tokenizer.decode(list(answers[i][:t]))
        preds[i][t] = _predicted(tokenizer, answers[i], t, head, cont)
    return OpenReading(
        tuple(tuple(a) for a in answers), (0,) * len(answers), tuple(tuple(p) for p in preds)
    )


@dataclass(frozen=True)
class PrefixReading:
    """What prefix mode asked and heard: the suspect's text before each answer (`heads`),
    the probed positions, the suspect's continuations, and the `reading` they give. The
    query of probe (i, t) was ``heads[i]`` + our first t tokens of answer i, decoded."""

    heads: tuple[str, ...]
    positions: tuple[tuple[int, int], ...]
    continuations: tuple[str, ...]
    finish_reasons: tuple[str | None, ...]
    reading: OpenReading

    @property
    def n_queries(self) -> int:
        return len(self.positions)

    @property
    def n_usable(self) -> int:
        """Probes that gave one of our tokens (not ended, and re-tokenised onto ours)."""
        return self.reading.n_predicted


def read_prefix(
    suspect: Any,
    marked_texts: Sequence[str],
    marked_prompts: Sequence[str],
    tokenizer: Any,
    *,
    context_width: int,
    stride: int = DEFAULT_STRIDE,
    prompt_format: str | None = None,
    max_tokens: int = 256,
    new_tokens: int = 1,
    batch_size: int = 16,
    on_batch: Callable[[int, int], None] | None = None,
) -> PrefixReading:
    """The suspect's greedy next token after `stride`-spaced prefixes of each marked answer
    (our tokenizer's ids; -1 where not probed or dropped). A suspect with another tokenizer
    may need `new_tokens` > 1 to cover one of our tokens."""
    if stride < 1 or new_tokens < 1:
        raise InputError(f"stride and new_tokens must be >= 1, got {stride} and {new_tokens}")
    if len(marked_prompts) != len(marked_texts) or not marked_texts:
        raise InputError("prefix mode needs marked texts with their prompts (--marked)")
    answers = [encode_text(tokenizer, t)[:max_tokens] for t in marked_texts]
    heads = tuple(chat_prefix(suspect, p, prompt_format) for p in marked_prompts)
    positions = prefix_positions(answers, context_width, stride)
    conts: list[str] = []
    finish: list[str | None] = []
    for a in range(0, len(positions), batch_size):
        chunk = positions[a : a + batch_size]
        gens = suspect.generate(
            [heads[i] + tokenizer.decode(answers[i][:t]) for i, t in chunk],
            max_new_tokens=new_tokens,
            temperature=0.0,
            chat=False,
        )
        conts += [g.text for g in gens]
        finish += [getattr(g, "finish_reason", None) for g in gens]
        if on_batch is not None:
            on_batch(a + len(chunk), len(positions))
    reading = prefix_predictions(tokenizer, answers, positions, conts)
    return PrefixReading(heads, tuple(positions), tuple(conts), tuple(finish), reading)


def radioactivity_prefix(
    wm: Watermark,
    suspect: Any,
    marked_texts: Sequence[str],
    marked_prompts: Sequence[str],
    tokenizer: Any,
    *,
    stride: int = DEFAULT_STRIDE,
    prompt_format: str | None = None,
    filter_min_count: int | None = None,
    max_tokens: int = 256,
    new_tokens: int = 1,
    batch_size: int = 16,
    alpha: float = DEFAULT_ALPHA,
    min_scored: int = DEFAULT_MIN_SCORED,
    on_batch: Callable[[int, int], None] | None = None,
) -> RadioactivityResult:
    """Probe the suspect with prefixes of our marked answers and test its next tokens."""
    wm.check_tokenizer(tokenizer, what="the scoring tokenizer")
    probed = read_prefix(
        suspect,
        marked_texts,
        marked_prompts,
        tokenizer,
        context_width=wm.context_width,
        stride=stride,
        prompt_format=prompt_format,
        max_tokens=max_tokens,
        new_tokens=new_tokens,
        batch_size=batch_size,
        on_batch=on_batch,
    )
    settings = {
        "stride": stride,
        "max_tokens": max_tokens,
        "new_tokens": new_tokens,
        "prompt_format": prompt_format or "the suspect's chat template",
        "n_queries": probed.n_queries,
        "n_usable_probes": probed.n_usable,
        "scored": "the suspect's greedy next token after prefixes of our marked answers",
    }
    return open_result(
        "prefix", wm, suspect, probed.reading, tokenizer, marked_texts, settings,
        filter_min_count=filter_min_count, alpha=alpha, min_scored=min_scored,
    )  # fmt: skip
