"""Local transformers models (safetensors folders, de-quantised GGUF, in-memory objects)."""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from distilltrace.errors import InputError, ModelSpecError
from distilltrace.models.base import (
    CHAT,
    GENERATE,
    LOGITS_PROCESSORS,
    LOGPROBS,
    SCORE,
    WEIGHTS,
    Generation,
    ModelInfo,
    NextTokenLogprobs,
    ScoredContinuation,
    TokenLogprob,
    TokenStep,
)
from distilltrace.models.identity import hash_files, hash_objects, tokenizer_fingerprint
from distilltrace.models.sampling import (
    PickProcessor,
    WarpProcessor,
    check_sampling,
    make_generators,
)

# End-of-turn markers of common chat formats: generation stops on them too.
_END_OF_TURN = ("<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|endoftext|>", "</s>")

_IDENTITY_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "tokenizer.model",
    "special_tokens_map.json",
)


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def _as_float(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """A logits processor that hands the next processors float32 scores."""
    return scores.float()


class TransformersModel:
    """A transformers causal LM and its tokenizer behind the distilltrace Model protocol."""

    # Prompts generated together. Generation is bound by per-step overhead on CPU, so wide
    # batches pay: 128 SmolLM2 prompts x 64 tokens take 24 s at 16, 12 s at 64
    # (docs/benchmarks.md, "Generation batch size"). Batches are also capped at
    # max_batch_tokens padded tokens (prompt + new), so long prompts get fewer rows.
    batch_size: int = 64
    max_batch_tokens: int = 16384
    # Rows per forward pass when scoring (score, next_token_logprobs) and when generation
    # returns per-token log-probabilities: one pass, so padding and logits memory count.
    score_batch_size: int = 16
    # A prompt prefix shared by every row of a score call (a default system prompt and the
    # template's opening: 24 of SmolLM2's ~95 tokens per scored text) is computed once per
    # call and its key/value cache reused by each batch when it is at least this many
    # tokens; 0 turns this off. SmolLM2 scores 1.2-1.3x faster in float32 (docs/benchmarks.md).
    shared_prefix_min: int = 16

    def __init__(
        self,
        hf_model: Any,
        tokenizer: Any,
        *,
        name: str,
        spec: str,
        identity: str,
        backend: str = "transformers",
        tokenizer_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ):
        _quiet_transformers()
        hf_model.eval()
        self.hf_model = hf_model
        self.tokenizer = tokenizer
        self.device = next(hf_model.parameters()).device
        self._lock = threading.RLock()
        tokenizer.padding_side = "left"
        self.pad_id = self._pad_id()
        self.eos_ids = self._eos_ids()
        self.has_chat = bool(getattr(tokenizer, "chat_template", None))
        supports = {GENERATE, LOGPROBS, SCORE, LOGITS_PROCESSORS, WEIGHTS}
        if self.has_chat:
            supports.add(CHAT)
        vocab_size = int(hf_model.get_output_embeddings().weight.shape[0])
        self.info = ModelInfo(
            name=name,
            spec=spec,
            backend=backend,
            tokenizer_id=tokenizer_id or tokenizer_fingerprint(tokenizer),
            vocab_size=vocab_size,
            identity=identity,
            supports=frozenset(supports),
            extra={
                "device": str(self.device),
                "dtype": str(next(hf_model.parameters()).dtype).replace("torch.", ""),
                "n_parameters": int(sum(p.numel() for p in hf_model.parameters())),
                "architecture": type(hf_model).__name__,
                **(extra or {}),
            },
        )

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_objects(
        cls,
        hf_model: Any,
        tokenizer: Any,
        *,
        name: str = "in-memory",
        identity: str | None = None,
        spec: str | None = None,
    ) -> TransformersModel:
        """Wrap an in-memory transformers model and tokenizer (identity: a hash of the weights)."""
        ident = identity or hash_objects(hf_model, tokenizer)
        return cls(
            hf_model,
            tokenizer,
            name=name,
            spec=spec or f"memory:{name}",
            identity=ident,
            backend="transformers",
        )

    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        *,
        spec: str | None = None,
        name: str | None = None,
        identity: str | None = None,
        backend: str = "transformers",
        extra: dict[str, Any] | None = None,
    ) -> TransformersModel:
        """Load a local transformers folder (config.json, safetensors, tokenizer files)."""
        p = Path(path).expanduser()
        if not p.is_dir():
            raise ModelSpecError(f"model folder not found: {p}")
        if not (p / "config.json").is_file():
            raise ModelSpecError(f"not a transformers model folder (no config.json): {p}")
        weights = sorted(p.glob("*.safetensors"))
        if not weights:
            raise ModelSpecError(f"no *.safetensors weights in model folder: {p}")
        _quiet_transformers()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                str(p), local_files_only=True, dtype=torch.float32
            )
        except (OSError, ValueError, KeyError) as e:
            raise ModelSpecError(f"cannot load model folder {p}: {_one_line(e)}") from None
        ident = identity or hash_files(
            [*weights, *(p / f for f in _IDENTITY_FILES if (p / f).is_file())]
        )
        return cls(
            model,
            tok,
            name=name or p.name,
            spec=spec or str(p),
            identity=ident,
            backend=backend,
            extra={"path": str(p), **(extra or {})},
        )

    def set_dtype(self, name: str) -> str:
        """Run the model in precision `name` ("auto", "float32", "bfloat16"; see
        distilltrace.models.precision); returns the precision chosen. The identity (a hash
        of the weights on disk) is unchanged; `info.extra["dtype"]` records the precision."""
        from distilltrace.models.precision import resolve_dtype, torch_dtype

        chosen = resolve_dtype(name, str(self.device))
        with self._lock:
            self.hf_model.to(torch_dtype(chosen))
            self.info = replace(self.info, extra={**self.info.extra, "dtype": chosen})
        return chosen

    # ------------------------------------------------------------------ helpers
    def _pad_id(self) -> int:
        tok = self.tokenizer
        for cand in (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id):
            if cand is not None:
                return int(cand)
        return 0

    def _eos_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        tok = self.tokenizer
        if tok.eos_token_id is not None:
            ids.add(int(tok.eos_token_id))
        gen_eos = getattr(getattr(self.hf_model, "generation_config", None), "eos_token_id", None)
        if gen_eos is not None:
            ids.update(int(x) for x in (gen_eos if isinstance(gen_eos, list) else [gen_eos]))
        vocab = tok.get_vocab()
        for t in _END_OF_TURN:
            if t in vocab:
                ids.add(int(vocab[t]))
        return frozenset(ids)

    def format_prompt(self, prompt: str, chat: bool = True) -> str:
        """The text the model sees: the chat template with one user turn, or the raw prompt."""
        if chat and self.has_chat:
            return self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
        return prompt

    def encode_prompt(self, prompt: str, chat: bool = True) -> list[int]:
        """Token ids of a prompt (templated text gets no extra special tokens)."""
        if not isinstance(prompt, str):
            raise InputError(f"prompts must be strings, got {type(prompt).__name__}")
        if chat and self.has_chat:
            ids = self.tokenizer(self.format_prompt(prompt, True), add_special_tokens=False)[
                "input_ids"
            ]
        else:
            # raw text that already opens with BOS (a chat template rendered as text, as in
            # prefix-mode probes) gets no second one
            bos = self.tokenizer.bos_token
            opens = bool(bos) and prompt.startswith(bos)
            ids = self.tokenizer(prompt, add_special_tokens=not opens)["input_ids"]
        if not ids:  # an empty raw prompt: start from BOS (or EOS) so there is a context
            start = self.tokenizer.bos_token_id
            ids = [int(start if start is not None else self.pad_id)]
        return list(ids)

    def _piece(self, token_id: int) -> str:
        return self.tokenizer.decode([int(token_id)], skip_special_tokens=False)

    def _left_pad(self, seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            if s:
                ids[i, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
                mask[i, width - len(s) :] = 1
        return ids.to(self.device), mask.to(self.device)

    def _forward_logprobs(self, seqs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, int]:
        """Log-softmax over the vocabulary at every position of left-padded sequences."""
        ids, mask = self._left_pad(seqs)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = self.hf_model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        return torch.log_softmax(logits.float(), dim=-1), ids.shape[1]

    def _continuation_logprobs(
        self, seqs: Sequence[Sequence[int]], keep: int, shared: _SharedPrefix | None = None
    ) -> torch.Tensor:
        """Log-probabilities of each row's next tokens at the last `keep` positions of the
        left-padded batch: (rows, keep) with entry [r, q] = log p(seq[q + 1] | seq[:q + 1])
        for the continuation tokens (0 elsewhere). Only those positions' logits are
        computed, and no full-vocabulary log-softmax is materialised. With `shared`, every
        row opens with its tokens and only the rest is run, after a copy of its cache."""
        skip = shared.length if shared is not None else 0
        ids, mask = self._left_pad([s[skip:] for s in seqs])
        width = ids.shape[1]
        keep = min(keep, width)
        pos = skip + (mask.cumsum(-1) - 1).clamp(min=0)
        kw: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "position_ids": pos}
        if shared is not None:
            ones = torch.ones((len(seqs), skip), dtype=mask.dtype, device=mask.device)
            kw.update(
                attention_mask=torch.cat([ones, mask], dim=1),
                cache=shared.expanded(len(seqs)),
                use_cache=True,
            )
        with torch.inference_mode():
            try:
                logits = self.hf_model(**kw, logits_to_keep=keep).logits
            except TypeError:  # a model class without logits_to_keep
                logits = self.hf_model(**kw).logits
            logits = logits[:, -keep:, :]
            # target at kept position q is the token at absolute position width - keep + q + 1
            target = torch.zeros((ids.shape[0], keep), dtype=torch.long)
            target[:, : keep - 1] = ids[:, width - keep + 1 :]
            lse = torch.logsumexp(logits.float(), dim=-1)
            picked = torch.gather(logits, -1, target[..., None])[..., 0].float()
        return picked - lse

    def _shared_prefix(
        self, prompts: Sequence[Sequence[int]], longest: int
    ) -> _SharedPrefix | None:
        """The tokens every prompt opens with (each keeps at least its last token, whose
        logits predict the continuation), run once, when they are at least
        shared_prefix_min long; None when they are shorter, when the model's cache cannot
        be copied per row, or when a sliding attention window is narrower than `longest`
        (the longest sequence) so a reused cache would see other keys."""
        n = int(self.shared_prefix_min)
        if n <= 0 or len(prompts) < 2:
            return None
        length = min(len(os.path.commonprefix([list(p) for p in prompts])),
                     min(len(p) for p in prompts) - 1)  # fmt: skip
        text_cfg = self.hf_model.config.get_text_config()
        window = getattr(text_cfg, "sliding_window", None)
        if length < n or (window and longest > int(window)):
            return None
        ids = torch.tensor([list(prompts[0][:length])], dtype=torch.long, device=self.device)
        with torch.inference_mode():
            cache = getattr(self.hf_model(input_ids=ids, use_cache=True), "cache", None)
        if not hasattr(cache, "batch_repeat_interleave"):
            return None
        return _SharedPrefix(length, cache)

    def _batches(self, n: int) -> list[range]:
        """Scoring batches: score_batch_size rows each."""
        b = max(1, int(self.score_batch_size))
        return [range(i, min(n, i + b)) for i in range(0, n, b)]

    def _gen_batches(self, lengths: Sequence[int], new: int, rows: int) -> list[range]:
        """Generation batches over rows sorted by prompt length (ascending): consecutive
        runs of at most `rows` rows whose padded size, rows x (longest prompt + `new`), stays
        within max_batch_tokens (a row longer than that alone gets a batch of its own)."""
        out: list[range] = []
        start, cap = 0, int(self.max_batch_tokens)
        for i, n in enumerate(lengths):
            width = i - start + 1
            if i > start and (width > rows or width * (n + new) > cap):
                out.append(range(start, i))
                start = i
        if lengths:
            out.append(range(start, len(lengths)))
        return out

    # ------------------------------------------------------------------ protocol
    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        logits_processors: Sequence[Any] | None = None,
        chat: bool = True,
        *,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[Generation]:
        """Complete each prompt; temperature 0 is greedy. Same seed, same output per prompt.

        ``on_batch(n_done)`` is called after each batch (for progress bars).
        """
        prompts = list(prompts)
        encoded = [self.encode_prompt(p, chat) for p in prompts]
        out = self.generate_encoded(
            prompts,
            encoded,
            max_new_tokens,
            temperature,
            top_p,
            seed,
            logits_processors,
            seed_chat=chat,
            on_batch=on_batch,
        )
        return [g for g, _ in out]

    def encode_messages(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Token ids of a conversation through the chat template.

        A final assistant message is continued (no generation prompt after it).
        """
        if not self.has_chat:
            raise InputError("this model has no chat template")
        msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
        cont = bool(msgs) and msgs[-1]["role"] == "assistant"
        text = self.tokenizer.apply_chat_template(
            msgs, tokenize=False, add_generation_prompt=not cont, continue_final_message=cont
        )
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def generate_encoded(
        self,
        prompts: Sequence[str],
        encoded: Sequence[Sequence[int]],
        max_new_tokens: int = 64,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        logits_processors: Sequence[Any] | None = None,
        *,
        seed_chat: bool = True,
        top_logprobs: int | None = None,
        streamer: Any | None = None,
        stopping_criteria: Sequence[Any] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> list[tuple[Generation, list[TokenStep] | None]]:
        """Generate from already-tokenised prompts; optionally with per-token log-probabilities.

        ``prompts`` label the results and seed each prompt's sampler (with ``seed_chat``).
        ``top_logprobs`` (k >= 0) adds, per generated token, its model log-probability and
        the top-k alternatives (raw model distribution, before temperature and processors).
        ``streamer`` (single prompt only) receives token ids as they are produced.
        """
        check_sampling(max_new_tokens, temperature, top_p)
        prompts = list(prompts)
        if len(prompts) != len(encoded):
            raise InputError("one encoding per prompt is needed")
        if streamer is not None and len(prompts) != 1:
            raise InputError("streaming supports exactly one prompt")
        out: list[tuple[Generation, list[TokenStep] | None] | None] = [None] * len(prompts)
        # Sort by length so batches pad little. In float32 results do not depend on the
        # batch (beyond last-bit rounding); in bfloat16 they do (docs/models.md, "Sampling").
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
        rows = self.batch_size if top_logprobs is None else self.score_batch_size
        batches = self._gen_batches(
            [len(encoded[i]) for i in order], max_new_tokens, max(1, int(rows))
        )
        done = 0
        with self._lock:
            for rng in batches:
                idx = [order[k] for k in rng]
                gens = self._generate_batch(
                    [prompts[i] for i in idx],
                    [list(encoded[i]) for i in idx],
                    max_new_tokens,
                    float(temperature),
                    float(top_p),
                    int(seed),
                    list(logits_processors or []),
                    seed_chat,
                    top_logprobs,
                    streamer,
                    list(stopping_criteria or []),
                )
                for i, g in zip(idx, gens, strict=True):
                    out[i] = g
                done += len(idx)
                if on_batch is not None:
                    on_batch(done)
        return [g for g in out if g is not None]

    def _generate_batch(
        self,
        prompts: list[str],
        encoded: list[list[int]],
        max_new_tokens: int,
        temperature: float,
        top_p: float,
        seed: int,
        processors: list[Any],
        chat: bool,
        top_logprobs: int | None,
        streamer: Any | None,
        stopping: list[Any],
    ) -> list[tuple[Generation, list[TokenStep] | None]]:
        if max_new_tokens == 0:
            return [
                (
                    Generation(prompt=p, text="", token_ids=(), finish_reason="length"),
                    [] if top_logprobs is not None else None,
                )
                for p in prompts
            ]
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        ids, mask = self._left_pad(encoded)
        generators = None if temperature == 0 else make_generators(seed, prompts, chat)
        # processors see float32 scores whatever the model's precision (WarpProcessor
        # casts; at temperature 0 a bare cast does)
        chain: list[Any] = [WarpProcessor(temperature, top_p) if temperature > 0 else _as_float]
        chain.extend(processors)
        chain.append(PickProcessor(generators))
        want_lp = top_logprobs is not None
        gc = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=sorted(self.eos_ids) or None,
            pad_token_id=self.pad_id,
            output_logits=want_lp,
            return_dict_in_generate=True,
        )
        with torch.inference_mode():
            res = self.hf_model.generate(
                input_ids=ids,
                attention_mask=mask,
                generation_config=gc,
                logits_processor=LogitsProcessorList(chain),
                stopping_criteria=StoppingCriteriaList(stopping) if stopping else None,
                streamer=streamer,
            )
        seqs = res.sequences
        new = seqs[:, ids.shape[1] :].tolist()
        step_lp = None
        if want_lp and res.logits:
            step_lp = torch.log_softmax(torch.stack(res.logits, dim=1).float(), dim=-1)
        result = []
        for r, (p, row) in enumerate(zip(prompts, new, strict=True)):
            toks: list[int] = []
            finish = "length"
            for t in row:
                if t in self.eos_ids:
                    finish = "stop"
                    break
                toks.append(int(t))
            text = self.tokenizer.decode(toks, skip_special_tokens=True)
            steps: list[TokenStep] | None = None
            if want_lp:
                steps = []
                for j, t in enumerate(toks):
                    if step_lp is None or j >= step_lp.shape[1]:
                        break
                    row_lp = step_lp[r, j]
                    top: tuple[TokenLogprob, ...] = ()
                    if top_logprobs:
                        vals, tix = torch.topk(row_lp, min(int(top_logprobs), row_lp.shape[0]))
                        top = tuple(
                            TokenLogprob(self._piece(i), float(v), int(i))
                            for v, i in zip(vals.tolist(), tix.tolist(), strict=True)
                        )
                    chosen = TokenLogprob(self._piece(t), float(row_lp[t]), int(t))
                    steps.append(TokenStep(chosen=chosen, top=top))
            gen = Generation(prompt=p, text=text, token_ids=tuple(toks), finish_reason=finish)
            result.append((gen, steps))
        return result

    def next_token_logprobs(
        self, prompts: Sequence[str], top_k: int = 5, chat: bool = True
    ) -> list[NextTokenLogprobs]:
        """The top-k next tokens after each prompt with their log-probabilities."""
        if not isinstance(top_k, int) or top_k < 1:
            raise InputError(f"top_k must be an integer >= 1, got {top_k!r}")
        prompts = list(prompts)
        encoded = [self.encode_prompt(p, chat) for p in prompts]
        k = min(top_k, self.info.vocab_size)
        out: list[NextTokenLogprobs] = []
        with self._lock:
            for rng in self._batches(len(prompts)):
                lp, _ = self._forward_logprobs([encoded[i] for i in rng])
                vals, idx = torch.topk(lp[:, -1, :], k, dim=-1)
                for row, i in enumerate(rng):
                    top = tuple(
                        TokenLogprob(token=self._piece(t), logprob=float(v), id=int(t))
                        for v, t in zip(vals[row].tolist(), idx[row].tolist(), strict=True)
                    )
                    out.append(NextTokenLogprobs(prompt=prompts[i], top=top))
        return out

    def score(
        self, prompts: Sequence[str], continuations: Sequence[str], chat: bool = True
    ) -> list[ScoredContinuation]:
        """Per-token log-probabilities of each continuation given its prompt."""
        prompts, continuations = list(prompts), list(continuations)
        if len(prompts) != len(continuations):
            raise InputError(
                f"score needs one continuation per prompt ({len(prompts)} prompts, "
                f"{len(continuations)} continuations)"
            )
        p_ids = [self.encode_prompt(p, chat) for p in prompts]
        c_ids = [self.encode_continuation(c) for c in continuations]
        out: list[ScoredContinuation | None] = [None] * len(prompts)
        # Batches of similar lengths pad little (a pure speed-up: each row is masked).
        order = sorted(range(len(prompts)), key=lambda i: (len(p_ids[i]) + len(c_ids[i]), i))
        with self._lock:
            longest = max((len(p) + len(c) for p, c in zip(p_ids, c_ids, strict=True)), default=0)
            shared = self._shared_prefix(p_ids, longest)
            for b in self._batches(len(prompts)):
                rng = [order[k] for k in b]
                keep = max(len(c_ids[i]) for i in rng) + 1
                lp = self._continuation_logprobs([p_ids[i] + c_ids[i] for i in rng], keep, shared)
                for row, i in enumerate(rng):
                    cont = c_ids[i]
                    first = keep - 1 - len(cont)  # kept position predicting cont[0]
                    toks = [
                        TokenLogprob(token=self._piece(t), logprob=float(v), id=int(t))
                        for t, v in zip(
                            cont, lp[row, first : first + len(cont)].tolist(), strict=True
                        )
                    ]
                    out[i] = ScoredContinuation(
                        prompt=prompts[i], continuation=continuations[i], tokens=tuple(toks)
                    )
        return [x for x in out if x is not None]

    def encode_continuation(self, text: str) -> list[int]:
        """Token ids of a continuation (no special tokens added)."""
        if not isinstance(text, str):
            raise InputError(f"continuations must be strings, got {type(text).__name__}")
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    def __repr__(self) -> str:
        return f"TransformersModel(name={self.info.name!r}, spec={self.info.spec!r})"


def load_folder_spec(parsed: Any, status: Callable[[str], None] | None = None) -> TransformersModel:
    """The ``hf`` backend's loader: a local transformers folder named by a parsed spec."""
    p = Path(parsed.target).expanduser()
    if not p.exists():
        raise ModelSpecError(f"model folder not found: {p}")
    if status:
        status(f"loading {p.name}")
    return TransformersModel.from_folder(p, spec=parsed.raw)


class _SharedPrefix:
    """The key/value cache of a prompt prefix every row of a score call opens with."""

    def __init__(self, length: int, cache: Any):
        self.length, self.cache = length, cache

    def expanded(self, rows: int) -> Any:
        """A fresh copy for a batch of `rows` (the forward pass appends to the copy)."""
        cache = copy.deepcopy(self.cache)
        cache.batch_repeat_interleave(rows)
        return cache


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300] or type(e).__name__
