"""Generative retrieval over semantic IDs (lesson 10).

A causal transformer reads a user's history as a sequence of code tokens
(each item ``C`` tokens, its semantic ID) and *writes* the next item's codes
one token at a time. Beam search keeps the ``W`` best partial IDs; a prefix
trie of the catalogue's IDs masks every token that would lead to an ID no
item has, so every finished beam is a real item.

Design (a decoder-only reading of TIGER, Rajput et al. 2023, "Recommender
Systems with Generative Retrieval"; NOTE: TIGER is an encoder-decoder):

- **Tokens.** Item ``i`` with codes ``(c_0, .., c_{C-1})`` becomes the tokens
  ``1 + offset_t + c_t``, ``offset_t = sizes_0 + .. + sizes_{t-1}``: one
  shared vocabulary of ``1 + sum(sizes)`` ids, 0 = padding. A history of
  ``L`` items is ``L * C`` tokens, item-major.
- **Embeddings** ``x_p = E[token_p] + P[item position of p]``: the item
  position counts from the right as SASRec's ``"right"`` (the last history
  item at ``maxlen - 1``, the item being written at ``maxlen``), so more left
  padding changes nothing. No column embedding: the column vocabularies are
  disjoint, so ``E[token]`` already says which column a token is from.
- **Transformer**: :class:`~recattn_lessons.models.sasrec.Block` s with the
  token-level :func:`~recattn_lessons.models.sasrec.attention_mask` (causal,
  padding keys masked), then a LayerNorm. The state after token ``p``
  predicts token ``p + 1``, scored against the tied embeddings of that
  column's codes only: log p(c_t | ..) = log_softmax_t(h E_t^T), a softmax
  over ``sizes[t]`` codes.
- **Loss**: teacher forcing on the window's items followed by its last
  target, cross-entropy averaged over the ``C`` tokens of every target the
  window owns (``targets > 0``; with the default stride every real item but
  the first).
- **Decoding**: ``C`` steps of :func:`constrained_beam_step`; each recomputes
  the forward over history + prefix for all ``B x W`` beams (no KV cache, so
  a step costs one forward of ``L C + t`` tokens per beam).
  :meth:`GenerativeRetriever.score` puts each retrieved item's beam
  log-probability in a ``(B, N + 1)`` row and ``-inf`` elsewhere: the course's
  full ranking (pessimistic ties) then puts every item not retrieved last.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import SequentialRecommender, check_history, gather_candidates
from .sasrec import Block, SASRecConfig, attention_mask

__all__ = ["constrained_beam_step", "PrefixTrie", "GenerativeRetrieverConfig", "GenerativeRetriever"]


def constrained_beam_step(beam_scores: Tensor, log_probs: Tensor, allowed: Tensor,
                          beam_size: int) -> tuple[Tensor, Tensor, Tensor]:
    """One step of trie-constrained beam search.

    Args:
        beam_scores: ``(B, W)`` cumulative log-probability of each live beam
            (``-inf`` marks a dead or unused beam).
        log_probs: ``(B, W, V)`` log-probabilities of the next token after each beam.
        allowed: ``(B, W, V)`` bool, True where the trie allows token ``v`` after
            beam ``w``'s prefix.
        beam_size: how many continuations to keep.

    Returns:
        ``(scores, parent, token)``, each ``(B, beam_size)``, best first:
        ``scores = beam_scores[parent] + log_probs[parent, token]`` over the
        allowed continuations only (disallowed ones score ``-inf``), ties broken
        by the lower flat index ``parent * V + token``. When fewer than
        ``beam_size`` continuations are allowed, the rest score ``-inf``
        (dead beams the caller drops).
    """
    if log_probs.dim() != 3 or beam_scores.shape != log_probs.shape[:2]:
        raise ValueError(f"beam_scores must be (B, W) and log_probs (B, W, V) with the same B, W; "
                         f"got {tuple(beam_scores.shape)} and {tuple(log_probs.shape)}")
    if allowed.shape != log_probs.shape or allowed.dtype != torch.bool:
        raise ValueError(f"allowed must be a bool tensor shaped like log_probs {tuple(log_probs.shape)}, "
                         f"got {allowed.dtype} {tuple(allowed.shape)}")
    B, W, V = log_probs.shape
    if not 1 <= beam_size <= W * V:
        raise ValueError(f"beam_size must lie in 1..W*V={W * V}, got {beam_size}")
    total = beam_scores[:, :, None] + log_probs  # (B, W, V)
    total = total.masked_fill(~allowed, float("-inf")).reshape(B, W * V)  # (B, W*V)
    order = torch.sort(total, dim=1, descending=True, stable=True).indices[:, :beam_size]  # (B, beam)
    scores = total.gather(1, order)  # (B, beam)
    return scores, order // V, order % V


class PrefixTrie:
    """Every item's semantic-ID prefixes, as sorted integer keys.

    A prefix ``(c_0, .., c_{t-1})`` is the mixed-radix number
    ``key = ((c_0 s_1 + c_1) s_2 + ..) + c_{t-1}`` (``s_j`` = ``sizes[j]``).
    Level ``t`` keeps the sorted distinct keys of the items' length-``t+1``
    prefixes, so "may code ``v`` follow this prefix?" is one ``searchsorted``
    of ``key * s_t + v``: ``allowed`` tests all ``V_t`` codes of ``B`` prefixes
    in O(B V_t log N), and ``item_of`` looks full keys up the same way.
    Tensors only, no Python loop over items; memory O(N C).
    """

    def __init__(self, codes: Tensor, sizes: tuple[int, ...]) -> None:
        sizes = tuple(int(s) for s in sizes)
        if codes.dim() != 2 or codes.shape[1] != len(sizes) or codes.shape[0] < 2:
            raise ValueError(f"codes must be (n_items + 1, C={len(sizes)}) with row 0 = padding, "
                             f"got {tuple(codes.shape)}")
        if math.prod(sizes) >= 2 ** 62:
            raise ValueError(f"prod(sizes) = {math.prod(sizes)} does not fit an int64 key")
        c = codes[1:].long()  # (N, C) row 0 is padding
        if (c < 0).any() or (c >= torch.tensor(sizes, device=c.device)).any():
            raise ValueError(f"codes must lie in 0..sizes[j]-1 per column, sizes={sizes}")
        self.sizes, self.levels = sizes, []
        key = torch.zeros(len(c), dtype=torch.long, device=c.device)  # (N,)
        for t, s in enumerate(sizes):
            key = key * s + c[:, t]  # (N,) length-(t+1) prefixes
            self.levels.append(torch.unique(key))  # sorted distinct keys
        if len(self.levels[-1]) < len(c):
            raise ValueError(f"{len(c) - len(self.levels[-1])} items share their full semantic ID "
                             "with another; append a disambiguation column "
                             "(recattn_lessons.items.semantic_ids.add_disambiguation)")
        order = torch.argsort(key)  # full keys are unique: levels[-1] == key[order]
        self.items = order + 1  # (N,) item id of each sorted full key

    def to(self, device: torch.device | str) -> "PrefixTrie":
        self.levels = [k.to(device) for k in self.levels]
        self.items = self.items.to(device)
        return self

    def keys(self, prefixes: Tensor) -> Tensor:
        """``(..., t)`` codes -> ``(...)`` mixed-radix keys (0 for ``t = 0``)."""
        key = torch.zeros(prefixes.shape[:-1], dtype=torch.long, device=prefixes.device)
        for j in range(prefixes.shape[-1]):
            key = key * self.sizes[j] + prefixes[..., j]
        return key

    def _lookup(self, level: int, keys: Tensor) -> tuple[Tensor, Tensor]:
        """Positions of ``keys`` in level ``level`` and whether they are there."""
        table = self.levels[level]
        pos = torch.searchsorted(table, keys.reshape(-1)).clamp(max=len(table) - 1)
        found = table[pos] == keys.reshape(-1)
        return pos.view(keys.shape), found.view(keys.shape)

    def allowed(self, prefixes: Tensor) -> Tensor:
        """``(..., t)`` prefixes -> ``(..., sizes[t])`` bool: may code ``v`` come next?"""
        t = prefixes.shape[-1]
        if t >= len(self.sizes):
            raise ValueError(f"a prefix of {t} codes is already a full ID (C={len(self.sizes)})")
        v = torch.arange(self.sizes[t], device=prefixes.device)  # (V_t,)
        return self._lookup(t, self.keys(prefixes)[..., None] * self.sizes[t] + v)[1]

    def item_of(self, full_codes: Tensor) -> Tensor:
        """``(..., C)`` codes -> ``(...)`` item ids, 0 where no item has the tuple."""
        if full_codes.shape[-1] != len(self.sizes):
            raise ValueError(f"full_codes must end in C={len(self.sizes)}, got {tuple(full_codes.shape)}")
        pos, found = self._lookup(len(self.sizes) - 1, self.keys(full_codes))
        return torch.where(found, self.items[pos], 0)


@dataclass(frozen=True)
class GenerativeRetrieverConfig:
    n_items: int  # item ids run 1..n_items; 0 is padding
    sizes: tuple[int, ...]  # codebook size of each semantic-ID column (C columns)
    maxlen: int = 50  # history length in items (maxlen * C tokens)
    d_model: int = 64  # embedding and hidden size D
    n_heads: int = 1  # attention heads
    n_blocks: int = 2  # sasrec.Block s
    d_ff: int = 64  # feed-forward hidden size
    dropout: float = 0.2  # on embeddings, attention weights, sub-layer outputs
    beam_size: int = 20  # beams kept by generate() and score()
    constrained: bool = True  # mask codes the trie forbids (every beam a real item)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", tuple(int(s) for s in self.sizes))  # a JSON list too
        if len(self.sizes) < 1 or min(self.sizes) < 1:
            raise ValueError(f"sizes must be a non-empty tuple of positive ints, got {self.sizes}")
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be positive, got {self.beam_size}")
        if self.n_items < 1 or self.maxlen < 1:
            raise ValueError("n_items and maxlen must be positive")


class GenerativeRetriever(SequentialRecommender):
    """Decoder-only generative retrieval over semantic IDs; see the module docstring."""

    def __init__(self, cfg: GenerativeRetrieverConfig, codes: Tensor) -> None:
        super().__init__()
        C = len(cfg.sizes)
        if codes.dim() != 2 or codes.shape != (cfg.n_items + 1, C):
            raise ValueError(f"codes must be (n_items + 1 = {cfg.n_items + 1}, C = {C}) "
                             f"(row 0 = padding), got {tuple(codes.shape)}")
        self.cfg, self.n_items, self.C = cfg, cfg.n_items, C
        self.trie = PrefixTrie(codes, cfg.sizes)  # validates ranges and uniqueness
        first = 1 + torch.tensor((0,) + cfg.sizes[:-1]).cumsum(0)  # (C,) token of code 0 per column
        self.register_buffer("codes", codes.long().clone(), persistent=False)  # (N+1, C)
        self.register_buffer("offsets", first, persistent=False)  # (C,)
        block_cfg = SASRecConfig(cfg.n_items, cfg.maxlen, cfg.d_model, cfg.n_heads, cfg.n_blocks,
                                 cfg.d_ff, cfg.dropout)
        self.tok_emb = nn.Embedding(1 + sum(cfg.sizes), cfg.d_model, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.maxlen + 1, cfg.d_model)  # maxlen = the generated item
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(block_cfg) for _ in range(cfg.n_blocks))
        self.ln = nn.LayerNorm(cfg.d_model)
        nn.init.normal_(self.tok_emb.weight, std=cfg.d_model ** -0.5)
        nn.init.normal_(self.pos_emb.weight, std=cfg.d_model ** -0.5)
        with torch.no_grad():
            self.tok_emb.weight[0].zero_()

    def tokens(self, items: Tensor) -> Tensor:
        """``(B, L)`` item ids -> ``(B, L * C)`` tokens (item-major, 0 = padding)."""
        tok = torch.where(items[..., None] > 0, self.codes[items] + self.offsets, 0)  # (B, L, C)
        return tok.flatten(1)  # (B, L*C)

    def forward(self, tokens: Tensor, n_items: int) -> Tensor:
        """``(B, T)`` tokens of ``n_items`` history items (+ a partial item) -> ``(B, T, D)``.

        Token ``p`` sits at item position ``maxlen - n_items + p // C``: the
        last history item at ``maxlen - 1``, the item being written at ``maxlen``.
        """
        B, T = tokens.shape
        real = tokens != 0  # (B, T)
        pos = self.cfg.maxlen - n_items + torch.arange(T, device=tokens.device) // self.C  # (T,)
        x = self.drop(self.tok_emb(tokens) + self.pos_emb(pos)) * real[..., None]  # (B, T, D)
        mask = attention_mask(tokens)  # (B, 1, T, T) causal, padding keys masked
        for block in self.blocks:
            x, _ = block(x, mask, real)
        return self.ln(x) * real[..., None]  # (B, T, D)

    def column_log_probs(self, h: Tensor, t: int) -> Tensor:
        """``(..., D)`` states -> ``(..., sizes[t])`` log-softmax over column ``t``'s codes."""
        lo = 1 + sum(self.cfg.sizes[:t])  # token of column t's code 0
        hi = lo + self.cfg.sizes[t]
        return torch.log_softmax(h @ self.tok_emb.weight[lo:hi].T, dim=-1)

    def loss(self, batch) -> Tensor:
        inputs, targets = batch.inputs, batch.targets
        check_history(inputs, self.n_items)
        B, L = inputs.shape
        if L > self.cfg.maxlen:
            raise ValueError(f"inputs have length {L} > maxlen={self.cfg.maxlen}")
        has = targets > 0  # (B, L) item j's target y_j is owned by this window
        if (has[:, :-1] & (targets[:, :-1] != inputs[:, 1:])).any():
            raise ValueError("targets[:, j] must be inputs[:, j + 1] (or 0): build batches "
                             "with data.batching.sliding_windows")
        items = torch.cat([inputs, targets[:, -1:]], 1)  # (B, L+1) the window + last target
        tokens = self.tokens(items)  # (B, (L+1)*C)
        hidden = self.forward(tokens[:, :-1], L)  # (B, (L+1)*C - 1, D); the last token predicts nothing
        pred = torch.cat([hidden.new_zeros(B, 1, hidden.shape[-1]), hidden], 1)  # (B, (L+1)*C, D)
        pred = pred.view(B, L + 1, self.C, -1)[:, 1:]  # (B, L, C, D) states predicting y_j's codes
        codes = self.codes[targets]  # (B, L, C) the targets' codes
        total = sum(F.nll_loss(self.column_log_probs(pred[:, :, t][has], t), codes[:, :, t][has],
                               reduction="sum") for t in range(self.C))
        return total / (has.sum() * self.C).clamp(min=1)

    def _last_state(self, tokens: Tensor, n_items: int, chunk: int = 1 << 24) -> Tensor:
        """``(R, T)`` tokens -> ``(R, D)`` state of the last token, in row chunks
        of about ``chunk`` attention weights (memory O(chunk), not R T^2)."""
        rows = max(1, chunk // tokens.shape[1] ** 2)
        return torch.cat([self.forward(part, n_items)[:, -1] for part in tokens.split(rows)])

    @torch.no_grad()
    def generate(self, history: Tensor, beam_size: int | None = None, k: int | None = None,
                 constrained: bool | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Beam search over the ``C`` codes: ``(items, scores, codes)``, ``(B, k)``, ``(B, k)``,
        ``(B, k, C)``, best first.

        ``scores`` = sum over columns of log p(c_t | history, c_<t). Each step
        recomputes the forward over history + prefix for all ``B x W`` beams
        (no KV cache: C steps of one forward each). ``items`` is 0 where the
        tuple is no item (only unconstrained) or the beam died (score -inf,
        codes 0). Dropout is not switched off here: call ``model.eval()``.
        """
        check_history(history, self.n_items)
        B, L = history.shape
        W = self.cfg.beam_size if beam_size is None else beam_size
        k = W if k is None else k
        constrained = self.cfg.constrained if constrained is None else constrained
        if L > self.cfg.maxlen:
            raise ValueError(f"history has length {L} > maxlen={self.cfg.maxlen}; "
                             f"keep the last ones: history[:, -{self.cfg.maxlen}:]")
        if not 1 <= k <= W:
            raise ValueError(f"need 1 <= k <= beam_size, got k={k}, beam_size={W}")
        trie = self.trie.to(history.device)
        hist = self.tokens(history)  # (B, L*C)
        h = self._last_state(hist, L)[:, None]  # (B, 1, D) one beam: the empty prefix
        scores = h.new_zeros(B, 1)  # (B, 1)
        prefix = history.new_zeros(B, 1, 0)  # (B, W, t) codes so far
        for t in range(self.C):
            logp = self.column_log_probs(h, t)  # (B, W, V_t)
            ok = trie.allowed(prefix) if constrained else torch.ones_like(logp, dtype=torch.bool)
            keep = min(W, logp.shape[1] * logp.shape[2])
            scores, parent, code = constrained_beam_step(scores, logp, ok, keep)  # (B, keep)
            prefix = torch.cat([prefix.gather(1, parent[..., None].expand(-1, -1, t)),
                                code[..., None]], 2)  # (B, keep, t+1)
            if t + 1 < self.C:
                toks = torch.cat([hist[:, None].expand(-1, keep, -1),
                                  prefix + self.offsets[:t + 1]], 2)  # (B, keep, L*C + t + 1)
                h = self._last_state(toks.flatten(0, 1), L).view(B, keep, -1)  # (B, keep, D)
        live = torch.isfinite(scores)  # (B, keep)
        items = torch.where(live, trie.item_of(prefix), 0)  # (B, keep)
        prefix = prefix * live[..., None]  # dead beams: codes 0
        if keep < k:  # a catalogue smaller than k: pad with dead beams
            pad = k - keep
            items = torch.cat([items, items.new_zeros(B, pad)], 1)
            scores = torch.cat([scores, scores.new_full((B, pad), float("-inf"))], 1)
            prefix = torch.cat([prefix, prefix.new_zeros(B, pad, self.C)], 1)
        return items[:, :k], scores[:, :k], prefix[:, :k]

    def score(self, history: Tensor, candidates: Tensor | None = None) -> Tensor:
        """``(B, N + 1)``: each retrieved item's beam log-probability, ``-inf`` elsewhere."""
        check_history(history, self.n_items, candidates)
        items, scores, _ = self.generate(history)  # (B, W)
        out = scores.new_full((history.shape[0], self.n_items + 1), float("-inf"))
        out.scatter_(1, items, scores)  # invalid / dead beams land in column 0 ...
        out[:, 0] = float("-inf")  # ... which never competes
        return gather_candidates(out, candidates)
