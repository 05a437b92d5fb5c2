"""OpenAI-compatible HTTP endpoints as a Model (``openai:BASE_URL;model=NAME;...``).

- generate: ``/v1/chat/completions`` (chat) or ``/v1/completions`` (raw text), one request
  per prompt, at most ``concurrency`` in flight, each with the caller's seed.
- next_token_logprobs: the same endpoints with ``max_tokens=1`` and ``logprobs``/
  ``top_logprobs``; a server that returns no log-probabilities raises CapabilityError.
- score: ``/v1/completions`` with ``echo=true, max_tokens=0, logprobs`` (raw text), or, for
  chat, ``/v1/chat/completions`` with the continuation as a final assistant message and
  ``echo=true, max_tokens=0, logprobs=true`` (a ``distilltrace serve`` extension); servers
  without these raise CapabilityError.

Transient failures (connection errors, timeouts, 429 and 5xx) are retried with exponential
backoff; ``Retry-After`` on 429/503 is respected. The API key comes only from the
environment variable named by ``key_env`` and never appears in errors or logs.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import httpx

from distilltrace.errors import CapabilityError, EndpointError, InputError, ModelSpecError
from distilltrace.models.base import (
    CHAT,
    GENERATE,
    LOGPROBS,
    SCORE,
    Generation,
    ModelInfo,
    NextTokenLogprobs,
    ScoredContinuation,
    TokenLogprob,
    TokenStep,
)
from distilltrace.models.sampling import check_sampling
from distilltrace.models.spec import ParsedSpec

RETRY_STATUS = {429, 500, 502, 503, 504}
MAX_BACKOFF_S = 8.0
MAX_RETRY_AFTER_S = 60.0


class OpenAIModel:
    """A model behind an OpenAI-compatible HTTP API."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        concurrency: int = 4,
        retries: int = 4,
        backoff: float = 0.5,
        spec: str | None = None,
        probe: bool = True,
    ):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._key = api_key
        self.timeout = float(timeout)
        self.concurrency = max(1, int(concurrency))
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self._sem = threading.BoundedSemaphore(self.concurrency)
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=self.timeout,
            limits=httpx.Limits(max_connections=self.concurrency),
        )
        served: dict[str, Any] = {}
        if probe:
            served = self._probe()
        remote = served.get("distilltrace", {}) if isinstance(served, dict) else {}
        supports = {GENERATE, CHAT}
        if isinstance(remote.get("supports"), list):
            supports |= {s for s in remote["supports"] if s in (LOGPROBS, SCORE)}
        ident_src = f"openai\x00{self.base_url}\x00{model}\x00{remote.get('identity', '')}"
        self.info = ModelInfo(
            name=model,
            spec=spec or f"openai:{self.base_url};model={model}",
            backend="openai",
            tokenizer_id=str(remote.get("tokenizer_id", f"remote:{model}")),
            vocab_size=int(remote.get("vocab_size", 0) or 0),
            identity=hashlib.sha256(ident_src.encode()).hexdigest(),
            supports=frozenset(supports),
            extra={
                "base_url": self.base_url,
                "served_identity": remote.get("identity"),
                "concurrency": self.concurrency,
                "timeout_s": self.timeout,
            },
        )

    @classmethod
    def from_spec(cls, parsed: ParsedSpec) -> OpenAIModel:
        """Build from a parsed ``openai:`` spec; read the key from the named env variable."""
        o = parsed.options
        key = None
        if o.get("key_env"):
            key = os.environ.get(o["key_env"])
            if not key:
                raise ModelSpecError(
                    f"environment variable {o['key_env']} (named by key_env) is not set or empty"
                )
        return cls(
            parsed.target,
            o["model"],
            api_key=key,
            timeout=float(o.get("timeout", 60)),
            concurrency=int(o.get("concurrency", 4)),
            retries=int(o.get("retries", 4)),
            spec=parsed.raw,
        )

    # ------------------------------------------------------------------ transport
    def _clean(self, text: str) -> str:
        text = " ".join(str(text).split())[:300]
        if self._key:
            text = text.replace(self._key, "***")
        return text

    def _where(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One JSON request with retries; EndpointError (one line) when it cannot succeed."""
        last = ""
        for attempt in range(self.retries + 1):
            wait = min(MAX_BACKOFF_S, self.backoff * (2**attempt))
            try:
                with self._sem:
                    r = self._client.request(method, path, json=body)
            except httpx.TimeoutException:
                last = f"timed out after {self.timeout:g}s"
            except httpx.TransportError as e:
                last = f"unreachable ({type(e).__name__}: {self._clean(e)})"
            else:
                if r.status_code < 400:
                    try:
                        return r.json()
                    except ValueError:
                        raise EndpointError(
                            f"{self._where(path)} returned a response that is not JSON"
                        ) from None
                msg = self._error_message(r)
                if r.status_code in (401, 403):
                    raise EndpointError(
                        f"{self._where(path)} refused the API key (HTTP {r.status_code}): {msg}"
                    )
                if r.status_code not in RETRY_STATUS:
                    raise EndpointError(f"{self._where(path)}: HTTP {r.status_code}: {msg}")
                last = f"HTTP {r.status_code}: {msg}"
                ra = _retry_after(r)
                if ra is not None:
                    wait = min(MAX_RETRY_AFTER_S, ra)
            if attempt < self.retries:
                time.sleep(wait)
        raise EndpointError(
            f"{self._where(path)}: {last} (gave up after {self.retries + 1} attempts)"
        )

    def _error_message(self, r: httpx.Response) -> str:
        try:
            d = r.json()
            err = d.get("error", d) if isinstance(d, dict) else d
            msg = err.get("message", err) if isinstance(err, dict) else err
        except ValueError:
            msg = r.text or r.reason_phrase
        return self._clean(msg)

    def _probe(self) -> dict[str, Any]:
        """GET /models: checks reachability and the key; returns this model's entry if listed."""
        d = self.request("GET", "/models")
        data = d.get("data", []) if isinstance(d, dict) else []
        for m in data:
            if isinstance(m, dict) and m.get("id") == self.model:
                return m
        return {}

    def _map(self, fn: Any, items: Sequence[Any]) -> list[Any]:
        if len(items) <= 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(items))) as ex:
            return list(ex.map(fn, items))

    def _no_capability(self, what: str, needed_for: str | None = None) -> CapabilityError:
        self.info = replace(self.info, supports=self.info.supports - {what})
        needed_for = needed_for or ("next_token_logprobs" if what == LOGPROBS else "score")
        return CapabilityError(
            f"{self.base_url} (model {self.model}) does not return log-probabilities "
            f"needed for {needed_for}"
        )

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
    ) -> list[Generation]:
        """Complete each prompt over HTTP (one request per prompt, concurrently)."""
        if logits_processors:
            raise CapabilityError("an HTTP endpoint cannot run local logits processors")
        check_sampling(max_new_tokens, temperature, top_p)
        _check_prompts(prompts)

        def one(p: str) -> Generation:
            body: dict[str, Any] = {
                "model": self.model,
                "max_tokens": max_new_tokens,
                "temperature": float(temperature),
                "top_p": float(top_p),
                "seed": int(seed),
            }
            if chat:
                body["messages"] = [{"role": "user", "content": p}]
                d = self.request("POST", "/chat/completions", body)
                c = _first_choice(d, self.base_url)
                text = (c.get("message") or {}).get("content") or ""
            else:
                body["prompt"] = p
                d = self.request("POST", "/completions", body)
                c = _first_choice(d, self.base_url)
                text = c.get("text") or ""
            fr = "stop" if c.get("finish_reason") == "stop" else "length"
            return Generation(prompt=p, text=text, token_ids=(), finish_reason=fr)

        return self._map(one, list(prompts))

    def next_token_logprobs(
        self, prompts: Sequence[str], top_k: int = 5, chat: bool = True
    ) -> list[NextTokenLogprobs]:
        """Top-k next tokens via ``logprobs``/``top_logprobs``, or CapabilityError."""
        if not isinstance(top_k, int) or not 1 <= top_k <= 20:
            raise InputError(f"top_k must be an integer in 1..20 over HTTP, got {top_k!r}")
        _check_prompts(prompts)

        def one(p: str) -> NextTokenLogprobs:
            body: dict[str, Any] = {"model": self.model, "max_tokens": 1, "temperature": 0.0}
            if chat:
                body |= {"messages": [{"role": "user", "content": p}], "logprobs": True}
                body["top_logprobs"] = top_k
                d = self.request("POST", "/chat/completions", body)
                lp = _first_choice(d, self.base_url).get("logprobs") or {}
                content = lp.get("content") or []
                if not content or not content[0].get("top_logprobs"):
                    raise self._no_capability(LOGPROBS)
                top = [
                    TokenLogprob(str(t["token"]), float(t["logprob"]), _opt_int(t.get("id")))
                    for t in content[0]["top_logprobs"]
                ]
            else:
                body |= {"prompt": p, "logprobs": top_k}
                d = self.request("POST", "/completions", body)
                lp = _first_choice(d, self.base_url).get("logprobs") or {}
                tops = lp.get("top_logprobs") or []
                if not tops or not tops[0]:
                    raise self._no_capability(LOGPROBS)
                ids = (lp.get("top_logprob_ids") or [None])[0] or {}
                top = [
                    TokenLogprob(str(k), float(v), _opt_int(ids.get(k))) for k, v in tops[0].items()
                ]
            top.sort(key=lambda t: -t.logprob)
            return NextTokenLogprobs(prompt=p, top=tuple(top[:top_k]))

        return self._map(one, list(prompts))

    def generate_steps(
        self,
        prompts: Sequence[str],
        *,
        top_k: int = 20,
        max_new_tokens: int = 128,
        seed: int = 0,
        chat: bool = True,
        on_batch: Any = None,
    ) -> list[tuple[Generation, list[TokenStep]]]:
        """Greedy answers with each generated token's top-k log-probabilities, through
        ``/v1/chat/completions`` with ``logprobs=true, top_logprobs=k`` (or CapabilityError)."""
        if not chat:
            raise CapabilityError("answers with log-probabilities are read from the chat API")
        if not isinstance(top_k, int) or not 1 <= top_k <= 20:
            raise InputError(f"top_k must be an integer in 1..20 over HTTP, got {top_k!r}")
        check_sampling(max_new_tokens, 0.0, 1.0)
        _check_prompts(prompts)
        done = [0]
        lock = threading.Lock()

        def one(p: str) -> tuple[Generation, list[TokenStep]]:
            body: dict[str, Any] = {"model": self.model, "max_tokens": max_new_tokens,
                                    "temperature": 0.0, "seed": int(seed), "logprobs": True,
                                    "top_logprobs": top_k,
                                    "messages": [{"role": "user", "content": p}]}  # fmt: skip
            c = _first_choice(self.request("POST", "/chat/completions", body), self.base_url)
            text = (c.get("message") or {}).get("content") or ""
            content = (c.get("logprobs") or {}).get("content")
            if text and not content:
                raise self._no_capability(LOGPROBS, "generate_steps")
            steps = [
                TokenStep(
                    chosen=_token(t), top=tuple(_token(x) for x in t.get("top_logprobs") or [])
                )
                for t in content or []
            ]
            fr = "stop" if c.get("finish_reason") == "stop" else "length"
            with lock:
                done[0] += 1
                if on_batch is not None:
                    on_batch(done[0])
            return Generation(prompt=p, text=text, finish_reason=fr), steps

        return self._map(one, list(prompts))

    def score(
        self, prompts: Sequence[str], continuations: Sequence[str], chat: bool = True
    ) -> list[ScoredContinuation]:
        """Per-token log-probabilities of continuations via echo, or CapabilityError."""
        prompts, continuations = list(prompts), list(continuations)
        if len(prompts) != len(continuations):
            raise InputError(
                f"score needs one continuation per prompt ({len(prompts)} prompts, "
                f"{len(continuations)} continuations)"
            )
        _check_prompts(prompts)
        _check_prompts(continuations)

        def one(pc: tuple[str, str]) -> ScoredContinuation:
            p, cont = pc
            if not cont:
                return ScoredContinuation(prompt=p, continuation=cont, tokens=())
            body: dict[str, Any] = {
                "model": self.model,
                "max_tokens": 0,
                "temperature": 0.0,
                "echo": True,
            }
            if chat:
                body |= {
                    "messages": [
                        {"role": "user", "content": p},
                        {"role": "assistant", "content": cont},
                    ],
                    "logprobs": True,
                }
                d = self.request("POST", "/chat/completions", body)
                lp = _first_choice(d, self.base_url).get("logprobs") or {}
                content = lp.get("content") or []
                if not content:
                    raise self._no_capability(SCORE)
                toks = [
                    TokenLogprob(str(t["token"]), float(t["logprob"]), _opt_int(t.get("id")))
                    for t in content
                ]
            else:
                body |= {"prompt": p + cont, "logprobs": 1}
                d = self.request("POST", "/completions", body)
                lp = _first_choice(d, self.base_url).get("logprobs") or {}
                tokens, lps = lp.get("tokens"), lp.get("token_logprobs")
                offsets = lp.get("text_offset")
                if not tokens or not lps or not offsets:
                    raise self._no_capability(SCORE)
                ids = lp.get("token_ids") or [None] * len(tokens)
                toks = [
                    TokenLogprob(str(t), float(v), _opt_int(i))
                    for t, v, off, i in zip(tokens, lps, offsets, ids, strict=False)
                    if off >= len(p) and v is not None
                ]
            return ScoredContinuation(prompt=p, continuation=cont, tokens=tuple(toks))

        return self._map(one, list(zip(prompts, continuations, strict=True)))

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"OpenAIModel(base_url={self.base_url!r}, model={self.model!r})"


def _check_prompts(prompts: Sequence[str]) -> None:
    for p in prompts:
        if not isinstance(p, str):
            raise InputError(f"prompts must be strings, got {type(p).__name__}")


def _first_choice(d: dict[str, Any], where: str) -> dict[str, Any]:
    choices = d.get("choices") if isinstance(d, dict) else None
    if not choices or not isinstance(choices[0], dict):
        raise EndpointError(f"{where} returned a response without choices")
    return choices[0]


def _token(t: dict[str, Any]) -> TokenLogprob:
    """A TokenLogprob from an OpenAI logprobs entry (its "id" where the server gives one)."""
    piece = bytes(t["bytes"]).decode("utf-8", "replace") if t.get("bytes") else t["token"]
    return TokenLogprob(str(piece), float(t["logprob"]), _opt_int(t.get("id")))


def _opt_int(x: Any) -> int | None:
    try:
        return int(x) if x is not None else None
    except (TypeError, ValueError):
        return None


def _retry_after(r: httpx.Response) -> float | None:
    v = r.headers.get("retry-after")
    if v is None:
        return None
    try:
        return max(0.0, float(v))
    except ValueError:
        return None


def load_openai_spec(parsed: ParsedSpec, status: Any = None) -> OpenAIModel:
    """The ``openai`` backend's loader (``status`` is unused: connecting is quick)."""
    return OpenAIModel.from_spec(parsed)
