"""What items are: side information fused with item ids (lesson 09).

An id embedding ``E[i]`` is learned from item ``i``'s interactions only: an item
with none keeps its random initialisation. Its **features** (here one token per
genre plus its title words,
:func:`recattn_lessons.data.item_features.feature_tokens`) are shared with
other items, so a representation built from them is meaningful even for such
a **cold item**. :class:`ItemEncoder` computes one table

    e_i = fuse(E[i], {F[t] : t a feature token of item i})       (N + 1, D)

for all items at once (9,067 items x 15 tokens is cheap), and SASRec uses that
table on **both** sides: to embed the history and to score every item. Three
fusions, with ``m_i`` the mean of item ``i``'s token embeddings (0 if it has
none):

- ``"sum"``:    e_i = E[i] + m_i
- ``"concat"``: e_i = W [E[i] ; m_i] + b, ``W`` of shape ``(D, 2D)``
- ``"cross"``:  e_i = E[i] + W_o attention(q = E[i] W_q, K = F_i W_k, V = F_i W_v),
  one query per item attending over its own tokens, padding masked
  (:func:`cross_attention_fusion`): the id chooses which of its features matter.

Dense content (lesson 10): :class:`ContentProjection` adds a learned linear
map of a fixed text embedding, ``e_i = E[i] + W t_i`` with ``t_i`` the item's
text vector (:func:`recattn_lessons.items.text.item_text_embeddings`), so two
films described alike start alike and a cold item is scored by its text.

Row 0 (padding) of the table is always zero. NOTE, two shortcuts that change
no number (tested against :func:`cross_attention_fusion` and
``MultiHeadAttention``): the cross fusion projects the token *vocabulary*
``(V, D)`` once and then gathers each item's keys and values (``V D^2``
instead of ``N T D^2`` multiply-adds: 3,121 vs 9,067 x 15 rows), and it
attends in groups of items with about as many tokens (padded to 1, 2, 4, 8
or 16), not all padded to the longest: MovieLens items have 4.9 tokens on
average and at most 15, so padding to 15 would triple the work (measured
3x faster per training step on one CPU thread). ``"sum"`` and ``"concat"``
take the mean with ``F.embedding_bag``, which skips the padding (5x faster
than gathering ``(N, T, D)`` and masking).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..attention import MultiHeadAttention, masked_softmax, scaled_dot_scores

__all__ = ["FUSIONS", "ItemEncoder", "ContentProjection", "cross_attention_fusion"]

FUSIONS = ("sum", "concat", "cross")


def cross_attention_fusion(id_emb: Tensor, feature_emb: Tensor, feature_mask: Tensor,
                           W_q: Tensor, W_k: Tensor, W_v: Tensor) -> tuple[Tensor, Tensor]:
    """Each item's id attends to its own feature tokens: ``(fused (N, D), weights (N, T))``.

    Defined in lesson 09. For item ``i`` with id embedding ``x_i`` (a row of
    ``id_emb`` ``(N, D)``) and feature embeddings ``F_i`` (``feature_emb[i]``,
    ``(T, D)``), ``feature_mask[i, t]`` True where token ``t`` is real:

        a_i = softmax_t( (x_i W_q) (F_i W_k)^T / sqrt(D) )  over real tokens only
        fused_i = x_i + a_i (F_i W_v)

    ``W_q``, ``W_k``, ``W_v`` are ``(D, D)`` matrices applied on the right
    (``x @ W``). An item without real tokens gets zero weights, so
    ``fused_i = x_i``. One head, no output projection: :class:`ItemEncoder`
    adds ``W_o`` after it (and biases, none here).
    """
    if id_emb.dim() != 2 or feature_emb.dim() != 3 or feature_mask.dim() != 2:
        raise ValueError(f"expected id_emb (N, D), feature_emb (N, T, D), feature_mask (N, T); got "
                         f"{tuple(id_emb.shape)}, {tuple(feature_emb.shape)}, {tuple(feature_mask.shape)}")
    N, T, D = feature_emb.shape
    if id_emb.shape != (N, D) or feature_mask.shape != (N, T):
        raise ValueError(f"id_emb must be (N={N}, D={D}) and feature_mask (N={N}, T={T}); got "
                         f"{tuple(id_emb.shape)} and {tuple(feature_mask.shape)}")
    if feature_mask.dtype != torch.bool:
        raise ValueError(f"feature_mask must be boolean (True = real token), got {feature_mask.dtype}")
    for name, W in (("W_q", W_q), ("W_k", W_k), ("W_v", W_v)):
        if W.shape != (D, D):
            raise ValueError(f"{name} must be (D, D) = ({D}, {D}), got {tuple(W.shape)}")
    q = (id_emb @ W_q)[:, None]  # (N, 1, D)
    k = feature_emb @ W_k  # (N, T, D)
    v = feature_emb @ W_v  # (N, T, D)
    weights = masked_softmax(scaled_dot_scores(q, k), feature_mask[:, None])  # (N, 1, T)
    return id_emb + (weights @ v)[:, 0], weights[:, 0]  # (N, D), (N, T)


class ItemEncoder(nn.Module):
    """``(N + 1, D)`` id table -> ``(N + 1, D)`` fused table; see the module docstring.

    ``tokens`` ``(N + 1, T)`` long, left-aligned (0 = padding) are data, not parameters:
    they are held as a buffer, so checkpoints carry them and ``.to(device)``
    moves them. ``n_tokens`` is the feature vocabulary size (ids ``0..n_tokens-1``).
    """

    def __init__(self, tokens: Tensor, n_tokens: int, d_model: int,
                 fusion: Literal["sum", "concat", "cross"] = "sum") -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.dtype != torch.long:
            shape = tuple(tokens.shape) if isinstance(tokens, Tensor) else type(tokens).__name__
            raise ValueError(f"item tokens must be an (n_items + 1, T) LongTensor, got {shape}; "
                             "build them with recattn_lessons.data.item_features.feature_tokens")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= n_tokens):
            raise ValueError(f"token ids must lie in 0..{n_tokens - 1}, got "
                             f"{int(tokens.min())}..{int(tokens.max())}")
        if bool((tokens[0] != 0).any()):
            raise ValueError("row 0 of the item tokens is the padding item and must be all 0")
        real = tokens != 0  # (N+1, T)
        if bool((real[:, 1:] & ~real[:, :-1]).any()):
            raise ValueError("item tokens must be left-aligned (padding 0 only after an item's "
                             "last real token), as feature_tokens builds them")
        self.fusion = fusion
        self.register_buffer("tokens", tokens.clone())  # (N+1, T)
        self.feature_emb = nn.Embedding(n_tokens, d_model, padding_idx=0)
        nn.init.normal_(self.feature_emb.weight, std=d_model ** -0.5)
        with torch.no_grad():
            self.feature_emb.weight[0].zero_()
        if fusion == "concat":
            self.proj = nn.Linear(2 * d_model, d_model)
        elif fusion == "cross":
            self.attn = MultiHeadAttention(d_model, 1, bias=False)

    def forward(self, id_table: Tensor, return_weights: bool = False):
        """``id_table`` ``(N + 1, D)`` -> fused ``(N + 1, D)``, row 0 zero.

        With ``return_weights=True`` (cross fusion only) also returns the
        ``(N + 1, T)`` attention weights over each item's tokens.
        """
        if id_table.dim() != 2 or id_table.shape[0] != self.tokens.shape[0]:
            raise ValueError(f"id_table must be (n_items + 1 = {self.tokens.shape[0]}, D), "
                             f"got {tuple(id_table.shape)}")
        if return_weights and self.fusion != "cross":
            raise ValueError(f"only fusion='cross' has attention weights, this is {self.fusion!r}")
        weights = None
        if self.fusion == "cross":
            attended, weights = self._cross(id_table, return_weights)  # (N+1, D)
            fused = id_table + self.attn.W_o(attended)
        else:  # mean of the real tokens' embeddings, 0 for an item without any
            pooled = F.embedding_bag(self.tokens, self.feature_emb.weight, mode="mean",
                                     padding_idx=0)  # (N+1, D)
            if self.fusion == "sum":
                fused = id_table + pooled
            else:
                fused = self.proj(torch.cat([id_table, pooled], dim=-1))  # (N+1, 2D) -> (N+1, D)
        fused = torch.cat([torch.zeros_like(fused[:1]), fused[1:]])  # padding row stays 0
        return (fused, weights) if return_weights else fused

    def _cross(self, id_table: Tensor, return_weights: bool) -> tuple[Tensor, Tensor | None]:
        """``softmax(q K^T / sqrt(D)) V`` per item over its real tokens: ``(N+1, D)``
        (and ``(N+1, T)`` weights), one group of items with 1, 2, 3-4, 5-8, ... tokens at a time."""
        a, tokens = self.attn, self.tokens  # (N+1, T)
        q = a.W_q(id_table)  # (N+1, D)
        k_vocab = a.W_k(self.feature_emb.weight)  # (V, D): project the vocabulary once
        v_vocab = a.W_v(self.feature_emb.weight)  # (V, D)
        count = (tokens != 0).sum(1)  # (N+1,)
        width = 2 ** torch.ceil(torch.log2(count.clamp(min=1).double())).long()  # (N+1,) 1, 2, 4, 8 ...
        rows, parts = [], []
        weights = id_table.new_zeros(tokens.shape) if return_weights else None  # (N+1, T)
        for w in width.unique().tolist():
            idx = (width == w).nonzero().flatten()  # (n,) the items of this group
            t = tokens[idx, :w]  # (n, w') with w' = min(w, T)
            k, v = F.embedding(t, k_vocab), F.embedding(t, v_vocab)  # (n, w', D)
            p = masked_softmax(scaled_dot_scores(q[idx, None], k), (t != 0)[:, None])  # (n, 1, w')
            rows.append(idx)
            parts.append((p @ v)[:, 0])  # (n, D)
            if return_weights:
                weights[idx, :t.shape[1]] = p[:, 0]
        attended = torch.cat(parts).index_select(0, torch.cat(rows).argsort())  # (N+1, D) item order
        return attended, weights


class ContentProjection(nn.Module):
    """``(N + 1, D)`` id table -> ``E[i] + W t_i`` for fixed content vectors ``t_i`` (lesson 10).

    ``vectors`` ``(N + 1, E)`` float (row 0, the padding, all zero) are data, held as a
    buffer and never trained; ``W`` ``(D, E)`` is learned, initialised at the scale of the
    id embeddings (std ``D ** -0.5`` for unit-norm vectors). Row 0 of the output is zero.
    """

    def __init__(self, vectors: Tensor, d_model: int) -> None:
        super().__init__()
        if not isinstance(vectors, Tensor) or vectors.dim() != 2 or not vectors.is_floating_point():
            shape = tuple(vectors.shape) if isinstance(vectors, Tensor) else type(vectors).__name__
            raise ValueError(f"item vectors must be an (n_items + 1, E) float tensor, got {shape}; "
                             "build them with recattn_lessons.items.text.item_text_embeddings")
        if bool((vectors[0] != 0).any()):
            raise ValueError("row 0 of the item vectors is the padding item and must be all 0")
        self.register_buffer("vectors", vectors.clone())  # (N+1, E)
        self.proj = nn.Linear(vectors.shape[1], d_model, bias=False)
        nn.init.normal_(self.proj.weight, std=d_model ** -0.5)

    def forward(self, id_table: Tensor) -> Tensor:
        if id_table.dim() != 2 or id_table.shape[0] != self.vectors.shape[0]:
            raise ValueError(f"id_table must be (n_items + 1 = {self.vectors.shape[0]}, D), "
                             f"got {tuple(id_table.shape)}")
        content = self.proj(self.vectors)  # (N+1, D); row 0 stays 0 (no bias)
        return id_table + content
