"""KV-cached sessions: one new event costs O(L), not O(L^2) (lesson 07).

``session = rec.session(history)``, then ``session.append(item_id)`` as
events arrive and ``session.top(k)`` whenever a page needs them. The
answer is always what ``rec.recommend(history so far, k)`` gives (same
items, scores within float error; tested).

Why a cache works: in a causal, pre-LN SASRec the state of position t
depends only on items 0..t. So after an append, the keys and values of
the earlier positions, in every block, are the ones computed before.
A new item needs its own query, key and value per block and one
attention row over the cached keys:

    q_t, k_t, v_t = W_q h_t, W_k h_t, W_v h_t          (per block, per head)
    out_t = softmax(q_t [k_0 .. k_t]^T / sqrt(d)) [v_0 .. v_t]

O(t d + d^2) per block (one attention row, one token through the
projections and the FFN) instead of a fresh pass's O(t^2 d + t d^2).

When the cache is **exact**, and when it is not:

- It needs positions that stay put. The course's default SASRec uses
  right-aligned positions (the newest item is always at ``maxlen - 1``):
  an append moves every earlier item one position back, so every cached
  key and value changes. No cache is exact for it; its sessions
  recompute the whole window at every ``top`` (``session.cached`` is
  False and ``session.reason`` says why). Train with
  ``positions="left"`` (``--model-arg positions=left``) to cache.
- With ``positions="left"`` the cache is exact while the history fits
  in ``maxlen``. Past that the window slides: its first item is dropped
  and every remaining item moves one position down, so each further
  append **rebuilds** the cache from the last ``maxlen`` items (one
  forward pass, counted in ``session.rebuilds``). Relative positions
  (ALiBi, rotary) would not make the slide exact either: in every block
  after the first, the kept items' states attended to the dropped one.
  (LLM servers that slide a cache, e.g. StreamingLLM, accept that error.)
- Other models (DIN, GRU4Rec, ...) are recomputed (``cached=False``).

A session belongs to one user and is not thread-safe; the model is
shared, so its calls take the recommender's lock.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..models.sasrec import SASRec
from .ranking import check_ids, check_k, top_items

__all__ = ["Session", "KVCache", "why_not_cached"]


def why_not_cached(model) -> str | None:
    """None if ``model`` can be KV-cached exactly, else the reason."""
    if not isinstance(model, SASRec):
        return (f"{type(model).__name__} is not a self-attention model with a KV cache here: "
                "every top() recomputes")
    if getattr(model, "features", None) is not None:
        return ("the KV cache embeds items by id only and this model fuses item features "
                "(lesson 09): every top() recomputes with the fused table")
    if model.cfg.positions != "left":
        return ("exact cache impossible because positions move: with right-aligned positions "
                "each append shifts every earlier item's position, so every key and value "
                "changes; every top() recomputes. Train with positions='left' "
                "(--model-arg positions=left) to cache")
    return None


class KVCache:
    """Keys and values of every block for the first ``length`` positions.

    ``k``, ``v``: ``(n_blocks, H, maxlen, Dh)`` buffers, allocated once.
    """

    def __init__(self, model: SASRec) -> None:
        cfg, p = model.cfg, model.item_emb.weight
        shape = (cfg.n_blocks, cfg.n_heads, cfg.maxlen, cfg.d_model // cfg.n_heads)
        self.k = torch.zeros(shape, dtype=p.dtype, device=p.device)
        self.v = torch.zeros(shape, dtype=p.dtype, device=p.device)
        self.length = 0


@torch.no_grad()
def extend(model: SASRec, cache: KVCache, items: Tensor) -> Tensor:
    """Run ``items`` ``(m,)`` after the cached prefix; return the last state.

    Writes the new keys/values into ``cache`` and returns the final
    (LayerNormed) hidden state ``(D,)`` of the last item: ``m`` = the
    whole window is a fresh forward pass (prefill), ``m = 1`` one step.
    Eval mode only (dropout off), positions="left" only.
    """
    if model.training:
        raise ValueError("the KV cache skips dropout: call model.eval() first")
    n0, m = cache.length, len(items)
    H, D = model.cfg.n_heads, model.cfg.d_model
    if n0 + m > model.cfg.maxlen:
        raise ValueError(f"{n0} cached + {m} new > maxlen={model.cfg.maxlen}; rebuild")
    x = model.item_emb(items) + model.pos_emb(torch.arange(n0, n0 + m, device=items.device))
    x = x[None]  # (1, m, D)
    rows = torch.arange(n0, n0 + m, device=items.device)  # (m,) absolute positions
    mask = torch.arange(n0 + m, device=items.device)[None, :] <= rows[:, None]  # (m, n0+m) causal
    for b, block in enumerate(model.blocks):
        a = block.attn
        h = block.ln1(x)  # (1, m, D)
        q = a.W_q(h).view(1, m, H, D // H).transpose(1, 2)  # (1, H, m, Dh)
        cache.k[b, :, n0:n0 + m] = a.W_k(h).view(m, H, D // H).transpose(0, 1)  # (H, m, Dh)
        cache.v[b, :, n0:n0 + m] = a.W_v(h).view(m, H, D // H).transpose(0, 1)
        k, v = cache.k[None, b, :, :n0 + m], cache.v[None, b, :, :n0 + m]  # (1, H, n0+m, Dh)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (1, H, m, Dh)
        x = x + a.W_o(out.transpose(1, 2).reshape(1, m, D))  # (1, m, D)
        x = x + block.ffn(block.ln2(x))
    cache.length = n0 + m
    return model.ln(x[0, -1])  # (D,)


class Session:
    """One user's running history; see the module docstring.

    ``Session(rec, history=())``, usually made by ``rec.session(history)``.
    ``cached``: True when keys/values are reused (exact), False when every
    ``top`` recomputes; ``reason`` explains; ``rebuilds`` counts cache
    rebuilds after the history outgrew ``maxlen``.
    """

    def __init__(self, rec, history=()) -> None:
        self._rec = rec
        self.history = check_ids(history, rec.n_items)
        self.reason = why_not_cached(rec.model)
        self.cached = self.reason is None
        self.rebuilds = 0
        self._cache = KVCache(rec.model) if self.cached else None
        self._hidden: Tensor | None = None  # (D,) state after the last item
        if self.cached and self.history:
            self._run(self.history[-rec.maxlen:])

    def _run(self, items: list[int]) -> None:
        with self._rec.lock:
            x = torch.tensor(items, device=self._cache.k.device)  # (m,)
            self._hidden = extend(self._rec.model, self._cache, x)

    def append(self, item_id: int) -> None:
        """Add one event (an internal id ``1..n_items``) to the history."""
        (item,) = check_ids([item_id], self._rec.n_items)
        self.history.append(item)
        if not self.cached:
            return
        if self._cache.length < self._rec.maxlen:
            self._run([item])
        else:  # the window slides: every position moves, start again
            self._cache.length = 0
            self.rebuilds += 1
            self._run(self.history[-self._rec.maxlen:])

    def extend(self, item_ids) -> None:
        for item in check_ids(item_ids, self._rec.n_items):
            self.append(item)

    def scores(self) -> Tensor:
        """``(N + 1,)`` fp32 scores after the history (like ``rec.scores``)."""
        if not self.cached or not self.history:
            return self._rec.scores(self.history)
        with self._rec.lock, torch.no_grad():
            E = self._rec.model.item_emb.weight  # (N+1, D)
            return (self._hidden[None] @ E.T)[0].float().cpu()  # (N+1,)

    def top(self, k: int = 10, exclude_seen: bool = True) -> list[tuple[int, float]]:
        """The ``k`` best ``(item_id, score)``, as ``rec.recommend(history, k)``."""
        k = check_k(k, self._rec.n_items)
        return top_items(self.scores(), self.history, k, exclude_seen)
