"""Keyed pseudo-random numbers for watermarks: one uniform per (context window, token).

The secret keys a BLAKE2b hash of the context window into a 64-bit window seed; the
uniform of token v under that window is a SplitMix64 mix of the seed and a fixed mix
of v. Distinct (window seed, token) pairs therefore behave as independent uniforms on
(0, 1), which is what makes the detectors' null distributions exact once repeated
(window, token) tuples are scored only once. Without the secret the seeds are unknown.

Seeding schemes (how a window becomes a seed):

- ``lefthash``: the h tokens before the current one, in order (Kirchenbauer et al.'s
  "LeftHash" generalised to width h);
- ``minhash``: the minimum keyed hash over the h tokens before the current one (robust
  to reordering inside the window; fewer distinct seeds).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

SEEDING_SCHEMES = ("lefthash", "minhash")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))
_PERSON = b"distilltrace-wm"  # BLAKE2b personalisation (domain separation), <= 16 bytes


def mix64(z: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser on a uint64 array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        return z ^ (z >> _S31)


class TokenTable:
    """The fixed per-token mix, grown on demand to the vocabulary size in use."""

    def __init__(self) -> None:
        self._t = np.zeros(0, dtype=np.uint64)

    def get(self, n: int) -> np.ndarray:
        if self._t.size < n:
            ids = np.arange(n, dtype=np.uint64)
            with np.errstate(over="ignore"):
                self._t = mix64(ids * _GOLDEN + np.uint64(0x2545F4914F6CDD1D))
        return self._t[:n]


_TOKENS = TokenTable()


def token_mix(token_ids: np.ndarray) -> np.ndarray:
    """The per-token mix of given token ids (any shape)."""
    t = np.asarray(token_ids, dtype=np.int64)
    if t.size == 0:
        return np.zeros(t.shape, dtype=np.uint64)
    if t.min() < 0:
        raise ValueError("token ids must be >= 0")
    return _TOKENS.get(int(t.max()) + 1)[t]


def bits_to_uniform(z: np.ndarray) -> np.ndarray:
    """Map uint64 hashes to uniforms strictly inside (0, 1)."""
    return ((z >> _S11).astype(np.float64) + 0.5) * (2.0**-53)


def pair_bits(seeds: np.ndarray, token_ids: np.ndarray) -> np.ndarray:
    """uint64 hash of each (window seed, token) pair (broadcasting)."""
    return mix64(np.asarray(seeds, dtype=np.uint64) ^ token_mix(token_ids))


def pair_uniforms(seeds: np.ndarray, token_ids: np.ndarray) -> np.ndarray:
    """The uniform of each (window seed, token) pair (broadcasting)."""
    return bits_to_uniform(pair_bits(seeds, token_ids))


class RowHasher:
    """uint64 hashes of every token under each of a batch of window seeds, computed in
    place in reused buffers (the per-step cost of marking a batch)."""

    def __init__(self) -> None:
        self._buf = np.empty((0, 0), dtype=np.uint64)
        self._tmp = np.empty((0, 0), dtype=np.uint64)

    def __call__(self, seeds: Sequence[int], vocab_size: int) -> np.ndarray:
        shape = (len(seeds), int(vocab_size))
        if self._buf.shape != shape:
            self._buf = np.empty(shape, dtype=np.uint64)
            self._tmp = np.empty(shape, dtype=np.uint64)
        buf, tmp = self._buf, self._tmp
        sd = np.asarray([int(x) for x in seeds], dtype=np.uint64)[:, None]
        np.bitwise_xor(sd, _TOKENS.get(shape[1])[None, :], out=buf)
        with np.errstate(over="ignore"):
            for shift, mult in ((_S30, _M1), (_S27, _M2)):
                np.right_shift(buf, shift, out=tmp)
                np.bitwise_xor(buf, tmp, out=buf)
                np.multiply(buf, mult, out=buf)
            np.right_shift(buf, _S31, out=tmp)
            np.bitwise_xor(buf, tmp, out=buf)
        return buf


def row_bits(seed: int | np.uint64, vocab_size: int) -> np.ndarray:
    """uint64 hashes of every token 0..vocab_size-1 under one window seed."""
    return mix64(np.uint64(seed) ^ _TOKENS.get(vocab_size))


class WindowHasher:
    """Keyed window -> 64-bit seed, for one secret and one seeding scheme."""

    def __init__(self, secret: bytes, seeding: str, context_width: int):
        if seeding not in SEEDING_SCHEMES:
            raise ValueError(f"unknown seeding scheme {seeding!r}; choose from {SEEDING_SCHEMES}")
        if int(context_width) < 1:
            raise ValueError("context width must be >= 1")
        self._secret = bytes(secret)
        self.seeding = seeding
        self.h = int(context_width)
        self._tok_cache: dict[int, int] = {}

    def __repr__(self) -> str:
        return f"WindowHasher(seeding={self.seeding!r}, h={self.h})"

    def _hash(self, tag: bytes, data: bytes) -> int:
        d = hashlib.blake2b(tag + data, digest_size=8, key=self._secret, person=_PERSON)
        return int.from_bytes(d.digest(), "little")

    def _tok(self, t: int) -> int:
        v = self._tok_cache.get(t)
        if v is None:
            v = self._hash(b"tok", int(t).to_bytes(8, "little"))
            if len(self._tok_cache) < 1_000_000:
                self._tok_cache[t] = v
        return v

    def seed(self, window: Sequence[int]) -> int:
        """The seed of one window of exactly h token ids."""
        w = [int(t) for t in window]
        if len(w) != self.h:
            raise ValueError(f"window must have {self.h} tokens, got {len(w)}")
        if self.seeding == "lefthash":
            return self._hash(b"left", b"".join(t.to_bytes(8, "little") for t in w))
        m = min(self._tok(t) for t in w)
        return self._hash(b"min", m.to_bytes(8, "little"))

    def seeds_of_sequence(self, ids: Sequence[int]) -> np.ndarray:
        """Seed of the window before each position t >= h of a token sequence (len - h)."""
        n = len(ids) - self.h
        if n <= 0:
            return np.zeros(0, dtype=np.uint64)
        return np.array(
            [self.seed(ids[t - self.h : t]) for t in range(self.h, len(ids))], dtype=np.uint64
        )
